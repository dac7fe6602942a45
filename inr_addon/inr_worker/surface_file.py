"""Writing an extracted surface to a mesh file: PLY and STL binary, OBJ and OFF as text."""

from __future__ import annotations

from pathlib import Path

import igl
import numpy as np

SURFACE_SUFFIXES = (".obj", ".ply", ".off", ".stl")
_BINARY_SUFFIXES = (".ply", ".stl")  # spot at 512 (1.44M triangles): 36 MB as binary PLY, 55 MB as ASCII


def surface_suffix_problem(path: Path) -> str | None:
    """Why ``path`` cannot take a surface (its suffix), or None."""
    if path.suffix.lower() not in SURFACE_SUFFIXES:
        return f"{path}: write {', '.join(SURFACE_SUFFIXES[:-1])} or {SURFACE_SUFFIXES[-1]}"
    return None


def write_surface(path: Path, vertices: np.ndarray, triangles: np.ndarray) -> None:
    """Write a surface; the format follows the suffix (see :data:`SURFACE_SUFFIXES`)."""
    if problem := surface_suffix_problem(path):
        raise OSError(problem)
    binary = path.suffix.lower() in _BINARY_SUFFIXES
    igl.write_triangle_mesh(
        str(path),
        np.asarray(vertices, np.float64),
        np.asarray(triangles, np.int64),
        encoding=igl.FileEncoding.Binary if binary else igl.FileEncoding.Ascii,
    )
    if not path.is_file():
        raise OSError(f"{path}: could not be written")
