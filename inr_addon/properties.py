"""Scene settings that the sidebar panel edits and passes to the operators."""

from __future__ import annotations

import bpy

from .inr_worker import protocol

PRESET_ITEMS = [(name, label, description) for name, label, description in protocol.PRESETS]


def resolution_property(default: int = 256) -> bpy.props.IntProperty:
    # No hard min/max: out-of-range values from scripts get an error message, not a silent clamp.
    return bpy.props.IntProperty(
        name="Resolution",
        description="How fine the new surface is: the number of steps across the object's longest side "
        f"({protocol.MIN_RESOLUTION} to {protocol.MAX_RESOLUTION}). Each doubling gives about 4 times the faces "
        "and memory and takes 3 to 4 times longer: 256 makes a head about 300,000 triangles (about 7 MB in a "
        ".blend), 512 about 1.2 million (about 28 MB). Re-extract changes it without fitting again",
        default=default,
        soft_min=protocol.MIN_RESOLUTION,
        soft_max=protocol.MAX_RESOLUTION,
    )


def preset_property() -> bpy.props.EnumProperty:
    return bpy.props.EnumProperty(
        name="Preset",
        description="How much detail the stored field keeps, which bounds what Re-extract can show",
        items=PRESET_ITEMS,
        default="BALANCED",
    )


SURFACE_ITEMS = [(name, label, description) for name, label, description in protocol.SURFACES]


def surface_property() -> bpy.props.EnumProperty:
    return bpy.props.EnumProperty(
        name="Surface",
        description="The new surface's faces: triangles, or quads that keep sharp edges (for sculpting and subdivision)",
        items=SURFACE_ITEMS,
        default="TRIANGLES",
    )


def adaptivity_property() -> bpy.props.FloatProperty:
    low, high = protocol.ADAPTIVITY_RANGE
    return bpy.props.FloatProperty(
        name="Adaptivity",
        description="Merge flat parts into larger triangles (0: none; 0.5 keeps about half the vertices, 1 a "
        "quarter). Above 0 the surface is triangles, as with Voxel Remesh's Adaptivity",
        default=0.0,
        min=low,
        max=high,
        subtype="FACTOR",
    )


SELECTION_ITEMS = [
    (
        "SELECTED",
        "Selected",
        (
            "Every selected mesh (or point cloud), each where it stands, fused into one solid placed at the active "
            "one; cameras, lights and other objects are left out"
        ),
    ),
    ("ACTIVE", "Active", "Only the active mesh or point cloud"),
]


def selection_property() -> bpy.props.EnumProperty:
    return bpy.props.EnumProperty(
        name="Selection", description="What Fit uses", items=SELECTION_ITEMS, default="SELECTED"
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
    surface: surface_property()
    adaptivity: adaptivity_property()
    selection: selection_property()
    learned: learned_property()


OPERATION_ITEMS = [
    ("UNION", "Union", "Everything inside any of the selected shapes"),
    ("DIFFERENCE", "Difference", "The active shape minus the other selected ones"),
    ("INTERSECT", "Intersect", "Only what is inside all of the selected shapes"),
]


def operation_property() -> bpy.props.EnumProperty:
    return bpy.props.EnumProperty(
        name="Operation", description="How Combine joins the selected shapes", items=OPERATION_ITEMS, default="UNION"
    )


def blend_property() -> bpy.props.FloatProperty:
    return bpy.props.FloatProperty(
        name="Fillet Radius",
        description="Round off the edges where the shapes meet, with a fillet of this radius (scene units); "
        "0 keeps the edges sharp. At most about a tenth of each shape's size",
        default=0.0,
        soft_min=0.0,
        subtype="DISTANCE",
    )


def distance_property() -> bpy.props.FloatProperty:
    return bpy.props.FloatProperty(
        name="Distance",
        description="Grow (above 0) or shrink (below 0) the shape by this distance in scene units, "
        "at most about a tenth of its size",
        default=0.0,
        subtype="DISTANCE",
    )


def shell_property() -> bpy.props.FloatProperty:
    return bpy.props.FloatProperty(
        name="Shell",
        description="Hollow the shape out, leaving a wall this thick (scene units); 0 keeps it solid",
        default=0.0,
        soft_min=0.0,
        subtype="DISTANCE",
    )


def factor_property() -> bpy.props.FloatProperty:
    return bpy.props.FloatProperty(
        name="Morph Factor",
        description="Where the morph stops between the two shapes: 0 is the active one, 1 the other selected one, "
        "0.5 halfway",
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
        description="Image: width in pixels (0: the source's). Silhouette, Hull: how fine the surface is, in steps "
        "across its longest side (0: 256)",
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
