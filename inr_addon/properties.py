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


def learned_property() -> bpy.props.BoolProperty:
    return bpy.props.BoolProperty(
        name="Learned",
        description="Meshes: also train a small learned residual on top of the sampled distances, for detail "
        "between the grid's points (slower, larger field; see the manual for when it pays)",
        default=False,
    )


class INR_SceneSettings(bpy.types.PropertyGroup):
    preset: preset_property()
    resolution: resolution_property()
    learned: learned_property()


OPERATION_ITEMS = [
    ("UNION", "Union", "Everything inside any of the selected shapes"),
    ("DIFFERENCE", "Difference", "The active shape minus the other selected ones"),
    ("INTERSECT", "Intersect", "Only what is inside all of the selected shapes"),
]


def operation_property() -> bpy.props.EnumProperty:
    return bpy.props.EnumProperty(name="Operation", items=OPERATION_ITEMS, default="UNION")


def blend_property() -> bpy.props.FloatProperty:
    return bpy.props.FloatProperty(
        name="Blend",
        description="Radius of the rounded fillet where the shapes meet, in world units; 0 is a sharp boolean. "
        "At most about a tenth of each source's size (the distances a field knows)",
        default=0.0,
        soft_min=0.0,
        subtype="DISTANCE",
    )


def distance_property() -> bpy.props.FloatProperty:
    return bpy.props.FloatProperty(
        name="Distance",
        description="Grow (> 0) or shrink (< 0) the shape by this world distance; "
        "at most about a tenth of the source's size (the distances a field knows)",
        default=0.0,
        subtype="DISTANCE",
    )


def shell_property() -> bpy.props.FloatProperty:
    return bpy.props.FloatProperty(
        name="Shell",
        description="Hollow the shape into a wall this thick around an inner cavity (world units); 0 keeps it solid",
        default=0.0,
        soft_min=0.0,
        subtype="DISTANCE",
    )


def factor_property() -> bpy.props.FloatProperty:
    return bpy.props.FloatProperty(
        name="Factor",
        description="0 is the active shape, 1 the other selected one",
        default=0.5,
        soft_min=0.0,
        soft_max=1.0,
        subtype="FACTOR",
    )


class INR_ModellingSettings(bpy.types.PropertyGroup):
    operation: operation_property()
    blend: blend_property()
    distance: distance_property()
    shell: shell_property()
    factor: factor_property()


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


classes = (INR_SceneSettings, INR_ModellingSettings, INR_ImageSettings)


def scene_settings(scene: bpy.types.Scene) -> INR_SceneSettings:
    """The scene's Neural Field settings (registered at run time, so unknown to a type checker)."""
    return scene.inr_settings  # type: ignore[attr-defined]


def modelling_settings(scene: bpy.types.Scene) -> INR_ModellingSettings:
    """The scene's Modelling settings (registered at run time, so unknown to a type checker)."""
    return scene.inr_modelling  # type: ignore[attr-defined]


def image_settings(scene: bpy.types.Scene) -> INR_ImageSettings:
    """The scene's Image settings (registered at run time, so unknown to a type checker)."""
    return scene.inr_image_settings  # type: ignore[attr-defined]


def register() -> None:
    bpy.types.Scene.inr_settings = bpy.props.PointerProperty(type=INR_SceneSettings)  # type: ignore[attr-defined]
    bpy.types.Scene.inr_modelling = bpy.props.PointerProperty(type=INR_ModellingSettings)  # type: ignore[attr-defined]
    bpy.types.Scene.inr_image_settings = bpy.props.PointerProperty(type=INR_ImageSettings)  # type: ignore[attr-defined]


def unregister() -> None:
    del bpy.types.Scene.inr_image_settings  # type: ignore[attr-defined]
    del bpy.types.Scene.inr_modelling  # type: ignore[attr-defined]
    del bpy.types.Scene.inr_settings  # type: ignore[attr-defined]
