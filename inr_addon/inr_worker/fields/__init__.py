"""The fields behind one interface (distance at points, bounds): the stored band and its learned residual,
the trained grid field for points, the image field, colours, the composite operations, and the field file."""
