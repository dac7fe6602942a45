"""Add-on preferences: the worker's Python, device and threads."""

from __future__ import annotations

import os

import bpy

from .inr_worker import protocol

ADDON_ID = __package__


class INR_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    python_path: bpy.props.StringProperty(
        name="Worker Python",
        description="Python interpreter with torch, numpy, libigl and scikit-image that runs the training "
        "worker. Empty: Blender's own Python, if it can import torch",
        subtype="FILE_PATH",
        default="",
    )
    device: bpy.props.EnumProperty(
        name="Device",
        description="Where the worker trains and evaluates the field",
        items=[(name, name.capitalize() if name != "MPS" else "MPS", f"Use {name}") for name in protocol.DEVICES],
        default="AUTO",
    )
    threads: bpy.props.IntProperty(
        name="Threads",
        description="CPU threads the worker may use. 0: all cores but one, so that Blender stays responsive",
        min=0,
        max=1024,
        default=0,
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "python_path")
        layout.prop(self, "device")
        layout.prop(self, "threads")
        layout.operator("inr.check_worker", icon="CONSOLE")


def get_preferences(context: bpy.types.Context) -> INR_AddonPreferences:
    return context.preferences.addons[ADDON_ID].preferences


def worker_python_setting(context: bpy.types.Context) -> str:
    """The configured worker Python as an absolute path, or "" for the default."""
    path = get_preferences(context).python_path
    return bpy.path.abspath(path) if path else ""


def worker_threads(context: bpy.types.Context) -> int:
    """Threads for a worker job: the preference, or all cores but one; 0 (all) in background mode."""
    threads = get_preferences(context).threads
    if threads or bpy.app.background:
        return threads
    return max(1, (os.cpu_count() or 2) - 1)


classes = (INR_AddonPreferences,)
