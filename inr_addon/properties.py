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


class INR_ImageSettings(bpy.types.PropertyGroup):
    """The panel's Image section (passed to ``inr.fit_image``)."""

    mode: bpy.props.EnumProperty(
        name="Mode",
        items=[
            ("IMAGE", "Image", "Fit the picture itself as a continuous image <image>_inr"),
            ("SILHOUETTE", "Silhouette", "Inflate the silhouette into a rounded solid"),
            ("HULL", "Hull", "The visual hull of 2 or 3 selected image Empties (front, side, top)"),
        ],
        default="SILHOUETTE",
    )
    resolution: bpy.props.IntProperty(
        name="Resolution",
        description="Image: width in pixels (0: the source's). Silhouette, Hull: marching-cubes cells (0: 256)",
        default=0,
        min=0,
        max=protocol.MAX_IMAGE_SIDE,
    )
    thickness: bpy.props.FloatProperty(
        name="Thickness", description="1 makes a filled circle into a ball", default=1.0, min=0.01, soft_max=4.0
    )
    invert: bpy.props.BoolProperty(name="Invert", description="Use the other side of the mask")
    rounded: bpy.props.BoolProperty(name="Rounded", description="Hull: intersect inflations, for organic shapes")


classes = (INR_SceneSettings, INR_ImageSettings)


def register() -> None:
    bpy.types.Scene.inr_settings = bpy.props.PointerProperty(type=INR_SceneSettings)
    bpy.types.Scene.inr_image_settings = bpy.props.PointerProperty(type=INR_ImageSettings)


def unregister() -> None:
    del bpy.types.Scene.inr_image_settings
    del bpy.types.Scene.inr_settings
