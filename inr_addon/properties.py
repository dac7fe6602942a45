"""Scene settings that the sidebar panel edits and passes to the operators."""

from __future__ import annotations

import bpy

from .inr_worker import protocol

PRESET_ITEMS = [(name, label, description) for name, label, description in protocol.PRESETS]


def resolution_property(default: int = 256) -> bpy.props.IntProperty:
    # No hard min/max: out-of-range values from scripts get an error message, not a silent clamp.
    return bpy.props.IntProperty(
        name="Resolution",
        description=f"Marching-cubes cells along the longest side of the source's bounding box "
        f"({protocol.MIN_RESOLUTION} to {protocol.MAX_RESOLUTION})",
        default=default,
        soft_min=protocol.MIN_RESOLUTION,
        soft_max=protocol.MAX_RESOLUTION,
    )


def preset_property() -> bpy.props.EnumProperty:
    return bpy.props.EnumProperty(
        name="Preset", description="Speed and detail of the fit", items=PRESET_ITEMS, default="BALANCED"
    )


class INR_SceneSettings(bpy.types.PropertyGroup):
    preset: preset_property()
    resolution: resolution_property()


classes = (INR_SceneSettings,)


def scene_settings(scene: bpy.types.Scene) -> INR_SceneSettings:
    """The scene's Neural Field settings (registered at run time, so unknown to a type checker)."""
    return scene.inr_settings  # type: ignore[attr-defined]


def register() -> None:
    bpy.types.Scene.inr_settings = bpy.props.PointerProperty(type=INR_SceneSettings)  # type: ignore[attr-defined]


def unregister() -> None:
    del bpy.types.Scene.inr_settings  # type: ignore[attr-defined]
