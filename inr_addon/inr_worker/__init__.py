"""The worker: inputs to samples (:mod:`.sources`), the fields (:mod:`.fields`), fields to surfaces
(:mod:`.surface`), and the jobs, CLI and batch that use them. Runs in any Python that has torch, numpy,
libigl and scikit-image; never imports bpy. Only :mod:`.protocol`, :mod:`.memory` and
:mod:`.point_checks` (standard library and numpy) are imported by the Blender side."""
