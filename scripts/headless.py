"""Blender from the bpy wheel with a throwaway user profile and the add-on installed from its zip,
as the demo, the benchmark and the tests use it."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

ADDON = "bl_ext.user_default.inr_addon"


def start_blender(zip_path: Path):
    """Import bpy with a fresh temporary profile, install and enable the zip; returns bpy.

    Must run before anything else in the process imports bpy.
    """
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="inr_addon_profile_")
    import bpy

    result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                      enable_on_install=True)
    if result != {"FINISHED"} or ADDON not in bpy.context.preferences.addons:
        raise RuntimeError(f"could not install and enable {zip_path}")
    return bpy
