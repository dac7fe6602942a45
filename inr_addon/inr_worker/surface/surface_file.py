"""Writing an extracted surface to a mesh file: PLY and STL binary, OBJ and OFF as text; quads kept
where the format has polygons (all but STL), vertex colours where it has them (PLY, OBJ)."""

from __future__ import annotations

from pathlib import Path

import igl
import numpy as np

from ..fields.colour_field import linear_to_srgb, to_bytes
from . import quad_surface

SURFACE_SUFFIXES = (".obj", ".ply", ".off", ".stl")
COLOUR_SUFFIXES = (".obj", ".ply")  # OFF and STL surfaces are written without colours
_BINARY_SUFFIXES = (".ply", ".stl")  # spot at 512 (1.44M triangles): 36 MB as binary PLY, 55 MB as ASCII


def surface_suffix_problem(path: Path) -> str | None:
    """Why ``path`` cannot take a surface (its suffix), or None."""
    if path.suffix.lower() not in SURFACE_SUFFIXES:
        return f"{path}: write {', '.join(SURFACE_SUFFIXES[:-1])} or {SURFACE_SUFFIXES[-1]}"
    return None


def write_surface(path: Path, vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray | None = None) -> None:
    """Write a surface; the format follows the suffix (see :data:`SURFACE_SUFFIXES`). ``faces`` are triangles
    (F, 3), or quads (F, 4) where a -1 fourth index marks a triangle: OBJ, PLY and OFF keep the quads, STL
    splits them. ``colours``: linear RGB (V, 3) per vertex, written as sRGB into PLY and OBJ files."""
    if problem := surface_suffix_problem(path):
        raise OSError(problem)
    suffix = path.suffix.lower()
    vertices, faces = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    colours = colours if suffix in COLOUR_SUFFIXES else None
    if suffix == ".stl" or (faces.shape[1] == 3 and colours is None):
        igl.write_triangle_mesh(
            str(path),
            vertices,
            np.asarray(quad_surface.triangulated(faces), np.int64),
            encoding=igl.FileEncoding.Binary if suffix in _BINARY_SUFFIXES else igl.FileEncoding.Ascii,
        )
    else:
        _write_polygons(path, vertices, faces, colours)
    if not path.is_file():
        raise OSError(f"{path}: could not be written")


def _write_polygons(path: Path, vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray | None) -> None:
    """Triangles (F, 3), or quads and triangles (F, 4, -1 fourth index on a triangle), as OBJ, OFF (text) or
    PLY (binary little-endian); with ``colours``, PLY's uchar red green blue and OBJ's ``v x y z r g b``
    (sRGB 0..1, as MeshLab, Blender and trimesh read it)."""
    groups = [group for group in quad_surface.quads_and_triangles(faces) if len(group)]
    suffix = path.suffix.lower()
    with open(path, "wb") as file:
        if suffix == ".ply":
            vertex_record = [("position", "<f4", (3,))] + ([("colour", "u1", (3,))] if colours is not None else [])
            rows = np.empty(len(vertices), vertex_record)
            rows["position"] = vertices
            if colours is not None:
                rows["colour"] = to_bytes(colours)
            header = [
                "ply",
                "format binary_little_endian 1.0",
                f"element vertex {len(vertices)}",
                *(f"property float {axis}" for axis in "xyz"),
                *((f"property uchar {channel}" for channel in ("red", "green", "blue")) if colours is not None else ()),
                f"element face {len(faces)}",
                "property list uchar int vertex_indices",
                "end_header\n",
            ]
            file.write("\n".join(header).encode("ascii"))
            file.write(rows.tobytes())
            for group in groups:
                record = np.dtype([("count", "u1"), ("indices", "<i4", (group.shape[1],))])
                polygons = np.empty(len(group), record)
                polygons["count"], polygons["indices"] = group.shape[1], group
                file.write(polygons.tobytes())
            return
        one_based = suffix == ".obj"
        if one_based:
            if colours is not None:
                srgb = np.round(linear_to_srgb(colours) * 255) / 255
                lines = [np.char.add("v ", _rows_text(np.hstack([vertices, srgb]), "%.9g", colour_columns=3))]
            else:
                lines = [np.char.add("v ", _rows_text(vertices, "%.9g"))]
        else:
            lines = [np.array([f"OFF\n{len(vertices)} {len(faces)} 0"]), _rows_text(vertices, "%.9g")]
        for group in groups:
            prefix = "f " if one_based else f"{group.shape[1]} "
            lines.append(np.char.add(prefix, _rows_text(group + one_based, "%d")))
        file.write(("\n".join("\n".join(block) for block in lines if len(block)) + "\n").encode())


def _rows_text(array: np.ndarray, number_format: str, colour_columns: int = 0) -> np.ndarray:
    """Each row of ``array`` as one line of space-separated numbers (the last ``colour_columns`` as %.4g)."""
    formats = [number_format] * (array.shape[1] - colour_columns) + ["%.4g"] * colour_columns
    row_format = " ".join(formats)
    return np.array([row_format % tuple(row) for row in array.tolist()], dtype=str)
