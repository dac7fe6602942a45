"""The worker: sampling, the neural field, training and extraction. Runs in any Python that has
torch, numpy, libigl and scikit-image; never imports bpy. Only :mod:`.protocol` and :mod:`.memory`
(the memory estimates, numpy only) are imported by the Blender side."""
