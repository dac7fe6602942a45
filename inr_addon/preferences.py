"""Add-on preferences: the worker's Python and device."""

from __future__ import annotations

import typing

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

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "python_path")
        layout.prop(self, "device")
        layout.operator("inr.check_worker", icon="CONSOLE")


def get_preferences(context: bpy.types.Context) -> INR_AddonPreferences:
    return typing.cast(INR_AddonPreferences, context.preferences.addons[ADDON_ID].preferences)


def worker_python_setting(context: bpy.types.Context) -> str:
    """The configured worker Python as an absolute path, or "" for the default."""
    path = get_preferences(context).python_path
    return bpy.path.abspath(path) if path else ""


classes = (INR_AddonPreferences,)
