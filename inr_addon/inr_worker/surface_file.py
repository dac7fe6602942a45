"""Writing an extracted surface to a mesh file: PLY and STL binary, OBJ and OFF as text."""

from __future__ import annotations

from pathlib import Path

import igl
import numpy as np

from . import quad_surface

SURFACE_SUFFIXES = (".obj", ".ply", ".off", ".stl")
_BINARY_SUFFIXES = (".ply", ".stl")  # spot at 512 (1.44M triangles): 36 MB as binary PLY, 55 MB as ASCII


def surface_suffix_problem(path: Path) -> str | None:
    """Why ``path`` cannot take a surface (its suffix), or None."""
    if path.suffix.lower() not in SURFACE_SUFFIXES:
        return f"{path}: write {', '.join(SURFACE_SUFFIXES[:-1])} or {SURFACE_SUFFIXES[-1]}"
    return None


def write_surface(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a surface; the format follows the suffix (see :data:`SURFACE_SUFFIXES`). ``faces`` are triangles
    (F, 3), or quads (F, 4) where a -1 fourth index marks a triangle: OBJ, PLY and OFF keep the quads, STL
    splits them."""
    if problem := surface_suffix_problem(path):
        raise OSError(problem)
    suffix = path.suffix.lower()
    if faces.shape[1] == 4 and suffix != ".stl":
        _write_polygons(path, np.asarray(vertices, np.float64), np.asarray(faces, np.int64))
    else:
        binary = suffix in _BINARY_SUFFIXES
        igl.write_triangle_mesh(
            str(path),
            np.asarray(vertices, np.float64),
            np.asarray(quad_surface.triangulated(faces), np.int64),
            encoding=igl.FileEncoding.Binary if binary else igl.FileEncoding.Ascii,
        )
    if not path.is_file():
        raise OSError(f"{path}: could not be written")


def _write_polygons(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Quads and triangles (F, 4, -1 fourth index on a triangle) as OBJ, OFF (text) or PLY (binary)."""
    is_triangle = faces[:, 3] < 0
    groups = [faces[~is_triangle], faces[is_triangle, :3]]
    suffix = path.suffix.lower()
    with open(path, "wb") as file:
        if suffix == ".ply":
            file.write(
                (
                    f"ply\nformat binary_little_endian 1.0\nelement vertex {len(vertices)}\n"
                    "property float x\nproperty float y\nproperty float z\n"
                    f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
                ).encode()
            )
            file.write(np.ascontiguousarray(vertices, "<f4").tobytes())
            for group in groups:
                record = np.dtype([("count", "u1"), ("indices", "<i4", (group.shape[1],))])
                rows = np.empty(len(group), record)
                rows["count"], rows["indices"] = group.shape[1], group
                file.write(rows.tobytes())
            return
        one_based = suffix == ".obj"
        if one_based:
            lines = [np.char.add("v ", _rows_text(vertices, "%.9g"))]
        else:
            lines = [np.array([f"OFF\n{len(vertices)} {len(faces)} 0"]), _rows_text(vertices, "%.9g")]
        for group in groups:
            prefix = "f " if one_based else f"{group.shape[1]} "
            lines.append(np.char.add(prefix, _rows_text(group + one_based, "%d")))
        file.write(("\n".join("\n".join(block) for block in lines if len(block)) + "\n").encode())


def _rows_text(array: np.ndarray, number_format: str) -> np.ndarray:
    """Each row of ``array`` as one line of space-separated numbers."""
    row_format = " ".join([number_format] * array.shape[1])
    return np.array([row_format % tuple(row) for row in array.tolist()], dtype=str)
