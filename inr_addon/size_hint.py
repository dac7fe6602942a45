"""What a resolution will cost, before Fit or Re-extract runs: the expected triangle count and .blend size.

Marching cubes at cell size ``h`` makes about ``TRIANGLES_PER_CELL_AREA × area / h²`` triangles: 2.7 to 3.4
(mean 2.9) over the shared test meshes at 256, closed and open alike (an open mesh's solid is its winding
number's, which is no thicker than the mesh). A field object's own surface scales with the square of the
resolution instead, which is exact up to the surface's detail.
"""

from __future__ import annotations

import dataclasses

import bpy
import numpy as np

from . import field_store

TRIANGLES_PER_CELL_AREA = 2.9
BLEND_BYTES_PER_TRIANGLE = 22  # a Fit result saved in a .blend (positions, corners, faces, edges, smooth flags)
LARGE_TRIANGLES = 1_000_000

_areas: dict[tuple[int, int, int], float] = {}  # (mesh pointer, vertex count, polygon count) -> object-space area


@dataclasses.dataclass(frozen=True)
class SizeHint:
    triangles: int

    @property
    def large(self) -> bool:
        return self.triangles >= LARGE_TRIANGLES

    def text(self) -> str:
        megabytes = self.triangles * BLEND_BYTES_PER_TRIANGLE / 1e6
        size = f"{megabytes:.2g}" if megabytes < 100 else f"{megabytes:.0f}"
        return f"About {format_count(self.triangles)} triangles, {size} MB in the .blend"


def format_count(count: int) -> str:
    """1234 -> "1,200"; 307000 -> "310k"; 1240000 -> "1.2M" (two significant figures)."""
    rounded = float(f"{count:.2g}")
    if rounded >= 1e6:
        return f"{rounded / 1e6:g}M"
    if rounded >= 1e4:
        return f"{rounded / 1e3:g}k"
    return f"{int(rounded):,}"


def _mesh_area(mesh: bpy.types.Mesh) -> float:
    key = (mesh.as_pointer(), len(mesh.vertices), len(mesh.polygons))
    if key not in _areas:
        if len(_areas) > 64:
            _areas.clear()
        areas = np.empty(len(mesh.polygons), np.float32)
        mesh.polygons.foreach_get("area", areas)
        _areas[key] = float(areas.sum(dtype=np.float64))
    return _areas[key]


def _corners(obj: bpy.types.Object, matrix: np.ndarray) -> np.ndarray:
    return np.array(obj.bound_box) @ matrix[:3, :3].T + matrix[:3, 3]


def size_hint(objects: list[bpy.types.Object], resolution: int) -> SizeHint | None:
    """The expected surface of fitting ``objects`` together (or of re-extracting a field object) at
    ``resolution``; None where it cannot be told (points, nothing with faces)."""
    if not objects or resolution <= 0:
        return None
    first = objects[0]
    if len(objects) == 1 and field_store.has_field(first) and first.type == "MESH":
        stored = first.get("inr_resolution")
        triangles = len(first.data.polygons)  # type: ignore[union-attr]  # a field object is a mesh
        if isinstance(stored, int) and stored > 0 and triangles:
            return SizeHint(round(triangles * (resolution / stored) ** 2))
    # Like the fit: every object in the first one's space, where the cells are laid out.
    to_first = np.linalg.inv(np.array(first.matrix_world))
    area, corners = 0.0, []
    for obj in objects:
        if obj.type != "MESH" or not len(obj.data.polygons):  # type: ignore[union-attr]
            return None
        matrix = to_first @ np.array(obj.matrix_world)
        area += _mesh_area(obj.data) * abs(np.linalg.det(matrix[:3, :3])) ** (2 / 3)  # type: ignore[arg-type]
        corners.append(_corners(obj, matrix))
    longest = np.ptp(np.concatenate(corners), axis=0).max()
    if not area or not longest > 0:
        return None
    return SizeHint(round(TRIANGLES_PER_CELL_AREA * area * (resolution / longest) ** 2))
