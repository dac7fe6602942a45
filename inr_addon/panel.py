"""The Neural Field tab in the 3D view's sidebar."""

from __future__ import annotations

import bpy

from . import field_store, image_data, properties, runner
from .operators.fit_image import IMAGE_FIELD_KEY
from .operators.fit_mesh import fitted_objects
from .size_hint import size_hint


class VIEW3D_PT_inr_neural_field(bpy.types.Panel):
    bl_label = "Neural Field"
    bl_idname = "VIEW3D_PT_inr_neural_field"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Neural Field"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = properties.scene_settings(context.scene)
        active = context.active_object
        column = layout.column()
        column.prop(settings, "preset")
        column.prop(settings, "resolution")
        column.prop(settings, "surface")
        column.prop(settings, "adaptivity", slider=True)
        column.prop(settings, "learned")

        job = runner.running(active.name) if active is not None else None
        if job is not None:
            layout.progress(factor=job.status.fraction, text=job.status.text())
            layout.operator("inr.cancel", icon="CANCEL").object_name = job.key
        else:
            if not image_data.is_image_empty(active):  # an image Empty gets its own Fit, in the Image section
                draw_fit(layout, context, settings)
            row = layout.row()
            row.enabled = field_store.has_field(active)
            extract = row.operator("inr.extract_mesh", text="Re-extract", icon="FILE_REFRESH")
            extract.resolution, extract.surface = settings.resolution, settings.surface
            extract.adaptivity = settings.adaptivity
            if field_store.has_field(active):
                draw_size_hint(layout, size_hint([active], settings.resolution), "Re-extract")
            else:
                draw_reason(layout, "Re-extract: select an object made by Fit")

        if image_data.is_image_empty(active) and job is None:
            draw_image_section(layout.box(), context)

        if field_store.has_field(active):
            box = layout.box()
            box.label(text=f"Field of {active.get('inr_source', '?')} ({active.get('inr_preset', '?').title()})")
            box.label(text=f"Extracted at {active.get('inr_resolution', '?')}")

        others = [other for other in runner.all_running() if other is not job]
        for other in others:
            row = layout.row()
            row.label(text=f"{other.key}: {other.status.text()}")
            row.operator("inr.cancel", text="", icon="X").object_name = other.key


def draw_fit(layout: bpy.types.UILayout, context: bpy.types.Context, settings: properties.INR_SceneSettings) -> None:
    """Selection, Fit (saying how many objects it fuses, or why it is greyed out) and what the result will cost."""
    layout.row().prop(settings, "selection", expand=True)
    try:
        source, others, _ = fitted_objects(context, settings.selection)
    except runner.JobError as error:
        row = layout.row()
        row.enabled = False
        row.operator("inr.fit_mesh", text="Fit", icon="MESH_MONKEY")
        layout.label(text=f"Fit: {error}", icon="INFO")
        return
    text = f"Fit {len(others) + 1} Objects as One" if others else "Fit"
    fit = layout.operator("inr.fit_mesh", text=text, icon="MESH_MONKEY")
    fit.preset, fit.resolution, fit.selection = settings.preset, settings.resolution, settings.selection
    fit.learned, fit.surface, fit.adaptivity = settings.learned, settings.surface, settings.adaptivity
    if others:
        layout.label(text=", ".join(obj.name for obj in [source, *others]))
    if not field_store.has_field(source):
        draw_size_hint(layout, size_hint([source, *others], settings.resolution), "Fit")


def draw_size_hint(layout: bpy.types.UILayout, hint, action: str) -> None:
    """What the surface at the panel's resolution will weigh; a warning icon from a million triangles."""
    if hint is not None:
        layout.label(text=f"{action}: {hint.text()}", icon="ERROR" if hint.large else "INFO")


def draw_image_section(box: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """Mode, resolution, thickness, invert and Fit for the active reference image."""
    settings = properties.image_settings(context.scene)
    preset = properties.scene_settings(context.scene).preset
    box.label(text="Image", icon="IMAGE_REFERENCE")
    box.prop(settings, "mode")
    box.prop(settings, "resolution")
    if settings.mode != "IMAGE":
        box.prop(settings, "thickness")
        box.prop(settings, "invert")
    if settings.mode == "HULL":
        box.prop(settings, "rounded")
    fit = box.operator("inr.fit_image", text="Fit", icon="IMAGE_REFERENCE")
    fit.mode, fit.resolution, fit.preset = settings.mode, settings.resolution, preset
    fit.thickness, fit.invert, fit.rounded = settings.thickness, settings.invert, settings.rounded
    image = context.active_object.data
    if image is not None and IMAGE_FIELD_KEY in image:  # type: ignore[operator]  # an image Empty's data is an Image
        box.operator("inr.resample_image", text="Resample", icon="FILE_REFRESH").resolution = settings.resolution


class VIEW3D_PT_inr_modelling(bpy.types.Panel):
    """Combine, offset and morph field objects: no training, about one re-extraction each."""

    bl_label = "Modelling"
    bl_idname = "VIEW3D_PT_inr_modelling"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Neural Field"
    bl_parent_id = "VIEW3D_PT_inr_neural_field"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = properties.modelling_settings(context.scene)
        resolution = properties.scene_settings(context.scene).resolution
        surface = properties.scene_settings(context.scene).surface
        adaptivity = properties.scene_settings(context.scene).adaptivity
        active = context.active_object
        busy = active is not None and runner.running(active.name) is not None

        reasons = modelling_reasons(context, settings)

        column = layout.column(align=True)
        column.label(text="Combine", icon="MOD_BOOLEAN")
        column.prop(settings, "operation")
        column.prop(settings, "blend")
        row = column.row()
        row.enabled = reasons["combine"] is None
        combine = row.operator("inr.combine", icon="MOD_BOOLEAN")
        combine.operation, combine.blend, combine.resolution = settings.operation, settings.blend, resolution
        combine.surface, combine.adaptivity = surface, adaptivity
        draw_reason(column, reasons["combine"])

        column = layout.column(align=True)
        column.label(text="Offset", icon="MOD_SOLIDIFY")
        column.prop(settings, "distance")
        column.prop(settings, "shell")
        row = column.row()
        row.enabled = reasons["offset"] is None
        offset = row.operator("inr.offset", icon="MOD_SOLIDIFY")
        offset.distance, offset.shell, offset.resolution = settings.distance, settings.shell, resolution
        offset.surface, offset.adaptivity = surface, adaptivity
        draw_reason(column, reasons["offset"])

        column = layout.column(align=True)
        column.label(text="Morph", icon="MOD_SIMPLEDEFORM")
        column.prop(settings, "factor", slider=True)
        row = column.row()
        row.enabled = reasons["morph"] is None
        morph = row.operator("inr.morph", icon="MOD_SIMPLEDEFORM")
        morph.factor, morph.resolution, morph.surface = settings.factor, resolution, surface
        morph.adaptivity = adaptivity
        draw_reason(column, reasons["morph"])

        if field_store.is_morph(active):
            box = layout.box()
            box.prop(active, f'["{field_store.FACTOR_KEY}"]', text="Morph factor", slider=True)
            row = box.row()
            row.enabled = not busy
            extract = row.operator("inr.extract_mesh", text="Re-extract at this factor", icon="FILE_REFRESH")
            extract.resolution, extract.surface, extract.adaptivity = resolution, surface, adaptivity
        layout.label(text="Fillet radius, distance and shell reach a tenth of a shape's size", icon="INFO")


def draw_reason(layout: bpy.types.UILayout, reason: str | None) -> None:
    """Under a greyed-out button: why it is greyed out."""
    if reason is not None:
        layout.label(text=reason, icon="INFO")


def modelling_reasons(context: bpy.types.Context, settings: properties.INR_ModellingSettings) -> dict[str, str | None]:
    """Why Combine, Offset and Morph cannot run on the selection (None: they can)."""
    active = context.active_object
    selected = [obj for obj in context.selected_objects if obj != active]
    fields = ([active] if field_store.has_field(active) else []) + [
        obj for obj in selected if field_store.has_field(obj)
    ]
    not_fields = [obj.name for obj in selected if not field_store.has_field(obj)]
    if active is None or not field_store.has_field(active):
        what = "no active object" if active is None else f"{active.name} was not made by Fit"
        needs = f"{what}: select objects made by Fit"
        return {"combine": needs, "offset": needs, "morph": needs}
    if runner.running(active.name) is not None:
        busy = f"{active.name} has a job running"
        return {"combine": busy, "offset": busy, "morph": busy}
    pair: str | None = None
    if not_fields:
        pair = f"{', '.join(not_fields)} {'was' if len(not_fields) == 1 else 'were'} not made by Fit"
    elif len(fields) < 2:
        pair = "select a second object made by Fit"
    offset = None if settings.distance != 0 or settings.shell > 0 else "set a Distance or a Shell above 0"
    morph = pair if pair is not None or len(fields) == 2 else "select exactly two objects made by Fit"
    return {"combine": pair, "offset": offset, "morph": morph}


def draw_import_menu(menu: bpy.types.Menu, context: bpy.types.Context) -> None:
    """File > Import > Neural Field: a field file from ``inr_worker batch`` or ``fit --field``."""
    menu.layout.operator("inr.import_field", text="Neural Field (.safetensors)")


classes = (VIEW3D_PT_inr_neural_field, VIEW3D_PT_inr_modelling)
