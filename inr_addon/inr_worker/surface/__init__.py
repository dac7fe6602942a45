"""A field to a surface: marching cubes in chunks, the dual quads, vertices onto the surface, adaptivity,
mesh files."""
