"""Writing an extracted surface to a mesh file: PLY and STL binary, OBJ and OFF as text; vertex colours
(8-bit sRGB) into PLY (``red green blue`` uchar) and OBJ (the common ``v x y z r g b`` extension)."""

from __future__ import annotations

from pathlib import Path

import igl
import numpy as np

from .colour_field import linear_to_srgb, to_bytes

SURFACE_SUFFIXES = (".obj", ".ply", ".off", ".stl")
COLOUR_SUFFIXES = (".obj", ".ply")  # OFF and STL surfaces are written without colours
_BINARY_SUFFIXES = (".ply", ".stl")  # spot at 512 (1.44M triangles): 36 MB as binary PLY, 55 MB as ASCII


def surface_suffix_problem(path: Path) -> str | None:
    """Why ``path`` cannot take a surface (its suffix), or None."""
    if path.suffix.lower() not in SURFACE_SUFFIXES:
        return f"{path}: write {', '.join(SURFACE_SUFFIXES[:-1])} or {SURFACE_SUFFIXES[-1]}"
    return None


def write_surface(path: Path, vertices: np.ndarray, triangles: np.ndarray, colours: np.ndarray | None = None) -> None:
    """Write a surface; the format follows the suffix (see :data:`SURFACE_SUFFIXES`). ``colours``: linear
    RGB (V, 3) per vertex, written as sRGB into PLY and OBJ files."""
    if problem := surface_suffix_problem(path):
        raise OSError(problem)
    suffix = path.suffix.lower()
    if colours is not None and suffix == ".ply":
        _write_coloured_ply(path, vertices, triangles, colours)
    elif colours is not None and suffix == ".obj":
        _write_coloured_obj(path, vertices, triangles, colours)
    else:
        igl.write_triangle_mesh(
            str(path),
            np.asarray(vertices, np.float64),
            np.asarray(triangles, np.int64),
            encoding=igl.FileEncoding.Binary if suffix in _BINARY_SUFFIXES else igl.FileEncoding.Ascii,
        )
    if not path.is_file():
        raise OSError(f"{path}: could not be written")


def _write_coloured_ply(path: Path, vertices: np.ndarray, triangles: np.ndarray, colours: np.ndarray) -> None:
    """Binary little-endian PLY: float x y z and uchar red green blue a vertex, int indices a face."""
    rows = np.empty(len(vertices), [("position", "<f4", 3), ("colour", "u1", 3)])
    rows["position"], rows["colour"] = vertices, to_bytes(colours)
    faces = np.empty(len(triangles), [("count", "u1"), ("corners", "<i4", 3)])
    faces["count"], faces["corners"] = 3, triangles
    header = "\n".join(
        [
            "ply",
            "format binary_little_endian 1.0",
            f"element vertex {len(vertices)}",
            *(f"property float {axis}" for axis in "xyz"),
            *(f"property uchar {channel}" for channel in ("red", "green", "blue")),
            f"element face {len(triangles)}",
            "property list uchar int vertex_indices",
            "end_header\n",
        ]
    )
    with open(path, "wb") as file:
        file.write(header.encode("ascii"))
        file.write(rows.tobytes())
        file.write(faces.tobytes())


def _write_coloured_obj(path: Path, vertices: np.ndarray, triangles: np.ndarray, colours: np.ndarray) -> None:
    """OBJ with ``v x y z r g b`` (sRGB 0..1, rounded to 8 bits, as MeshLab, Blender and trimesh read it)."""
    srgb = np.round(linear_to_srgb(colours) * 255) / 255
    with open(path, "w", encoding="ascii") as file:
        np.savetxt(file, np.hstack([vertices, srgb]), fmt="v %.9g %.9g %.9g %.4g %.4g %.4g")
        np.savetxt(file, np.asarray(triangles, np.int64) + 1, fmt="f %d %d %d")
