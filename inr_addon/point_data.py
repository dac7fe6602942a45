"""Points out of Blender as numpy arrays: the vertices of a mesh without faces (what File > Import > PLY
makes of a scan) or the points of a point cloud, with their ``normal`` and colour attributes."""

from __future__ import annotations

import typing

import bpy
import numpy as np

NORMAL_ATTRIBUTE = "normal"  # the name File > Import > PLY gives a point's normal

Geometry = bpy.types.Mesh | bpy.types.PointCloud
ArrayAttribute = bpy.types.FloatVectorAttribute | bpy.types.FloatColorAttribute | bpy.types.ByteColorAttribute


def evaluated_geometry(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> Geometry:
    """The object's mesh or point cloud with its modifiers applied."""
    return typing.cast(Geometry, obj.evaluated_get(depsgraph).data)


def is_points(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> bool:
    """Whether the object is points: a point cloud, or a mesh that has no faces after its modifiers."""
    if obj.type == "POINTCLOUD":
        return True
    return obj.type == "MESH" and evaluated_geometry(obj, depsgraph).attributes.domain_size("FACE") == 0


def point_count(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> int:
    """How many points ``object_points`` would read, without reading them."""
    return evaluated_geometry(obj, depsgraph).attributes.domain_size("POINT")


def read_attribute(attribute: bpy.types.Attribute, key: str, width: int) -> np.ndarray:
    """An attribute's values as a (N, width) float64 array."""
    data = typing.cast(ArrayAttribute, attribute).data
    values = np.empty(len(data) * width, dtype=np.float32)
    data.foreach_get(key, values)
    return values.reshape(-1, width).astype(np.float64)


def color_attribute(geometry: Geometry) -> bpy.types.Attribute | None:
    """The colour attribute on points that stands for the object's colour: a mesh's active colour attribute
    when it is on points, a point cloud's active attribute when it is a colour, else its first colour."""
    if isinstance(geometry, bpy.types.Mesh):
        active = geometry.color_attributes.active_color
        return active if active is not None and active.domain == "POINT" else None
    colors = list(geometry.color_attributes)
    active = geometry.attributes.active
    return active if active in colors else (colors[0] if colors else None)


def object_points(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> dict[str, np.ndarray]:
    """``points`` (N, 3) float64 in object space, with ``normals`` (N, 3) from a vector attribute named
    ``normal`` and ``colors`` (N, 3) linear RGB from the colour attribute, where the object has them."""
    geometry = evaluated_geometry(obj, depsgraph)
    arrays = {"points": read_attribute(geometry.attributes["position"], "vector", 3)}
    normal: bpy.types.Attribute | None = geometry.attributes.get(NORMAL_ATTRIBUTE)
    if normal is not None and normal.domain == "POINT" and normal.data_type == "FLOAT_VECTOR":
        arrays["normals"] = read_attribute(normal, "vector", 3)
    color = color_attribute(geometry)
    if color is not None:
        arrays["colors"] = read_attribute(color, "color", 4)[:, :3]  # byte colours read as linear floats too
    return arrays


def unit_normals(normals: np.ndarray) -> np.ndarray | None:
    """The normals scaled to length 1, or None when any is zero or not finite (the fit then finds its own)."""
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    if not (np.isfinite(lengths).all() and (lengths > 0).all()):
        return None
    return normals / lengths


def joined_points(
    active: bpy.types.Object, others: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph
) -> dict[str, np.ndarray]:
    """The objects' points in the active object's space, each under its world transform, as float32:
    ``points``, and ``normals`` and ``colors`` when every object has them (normals turned by each transform's
    inverse transpose and made unit length; colours clipped to 0..1)."""
    to_active = np.array(active.matrix_world.inverted_safe())
    parts = []
    for obj in [active, *others]:
        arrays = object_points(obj, depsgraph)
        if obj is not active:
            matrix = to_active @ np.array(obj.matrix_world)
            arrays["points"] = arrays["points"] @ matrix[:3, :3].T + matrix[:3, 3]
            if "normals" in arrays:  # pinv: a zero scale has no inverse
                arrays["normals"] = arrays["normals"] @ np.linalg.pinv(matrix[:3, :3])
        parts.append(arrays)
    joined = {"points": np.concatenate([part["points"] for part in parts]).astype(np.float32)}
    if all("normals" in part for part in parts):
        normals = unit_normals(np.concatenate([part["normals"] for part in parts]))
        if normals is not None:
            joined["normals"] = normals.astype(np.float32)
    if all("colors" in part for part in parts):
        joined["colors"] = np.clip(np.concatenate([part["colors"] for part in parts]), 0, 1).astype(np.float32)
    return joined
