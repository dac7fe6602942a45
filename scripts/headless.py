"""Blender from the bpy wheel with a throwaway user profile and the add-on installed from its zip,
as the demo, the benchmark and the tests use it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

ADDON = "bl_ext.user_default.inr_addon"


def start_blender(zip_path: Path):
    """Import bpy with a fresh temporary profile, install and enable the zip; returns bpy.

    Must run before anything else in the process imports bpy.
    """
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="inr_addon_profile_")
    import bpy

    result = bpy.ops.extensions.package_install_files(
        filepath=str(zip_path), repo="user_default", enable_on_install=True
    )
    if result != {"FINISHED"} or ADDON not in bpy.context.preferences.addons:
        raise RuntimeError(f"could not install and enable {zip_path}")
    return bpy


def select_only(bpy, obj) -> None:
    """Make ``obj`` the only selected object and the active one: what Fit and Voxel Remesh then act on."""
    for other in list(bpy.context.selected_objects):
        other.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj


def mesh_arrays(obj) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and triangles (T, 3) int64 of a mesh object's own data, object space."""
    mesh = obj.data
    mesh.calc_loop_triangles()
    vertices = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", vertices)
    triangles = np.empty(len(mesh.loop_triangles) * 3, np.int32)
    mesh.loop_triangles.foreach_get("vertices", triangles)
    return vertices.reshape(-1, 3).astype(np.float64), triangles.reshape(-1, 3).astype(np.int64)


def workbench_settings(scene, width: int, height: int) -> None:
    """The project's pictures: Workbench, studio light, object colours, cavity, on white, at width x height."""
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light, shading.color_type, shading.show_cavity = "STUDIO", "OBJECT", True
    shading.background_type, shading.background_color = "VIEWPORT", (1.0, 1.0, 1.0)
    scene.render.resolution_x, scene.render.resolution_y = width, height
