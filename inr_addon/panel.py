"""The Neural Field tab in the 3D view's sidebar."""

from __future__ import annotations

import bpy

from . import field_store, image_data, properties, runner
from .operators.fit_image import IMAGE_FIELD_KEY


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
        column.prop(settings, "learned")

        job = runner.running(active.name) if active is not None else None
        if job is not None:
            layout.progress(factor=job.status.fraction, text=job.status.text())
            layout.operator("inr.cancel", icon="CANCEL").object_name = job.key
        else:
            if not image_data.is_image_empty(active):  # an image Empty gets its own Fit, in the Image section
                fit = layout.operator("inr.fit_mesh", text="Fit", icon="MESH_MONKEY")
                fit.preset, fit.resolution, fit.learned = settings.preset, settings.resolution, settings.learned
            row = layout.row()
            row.enabled = field_store.has_field(active)
            row.operator("inr.extract_mesh", text="Re-extract", icon="FILE_REFRESH").resolution = settings.resolution

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
        active = context.active_object
        fields = [obj for obj in context.selected_objects if field_store.has_field(obj)]
        all_fields = field_store.has_field(active) and len(fields) == len(context.selected_objects)
        if active is not None and active not in fields and field_store.has_field(active):
            fields.append(active)
        busy = active is not None and runner.running(active.name) is not None

        column = layout.column(align=True)
        column.prop(settings, "operation", text="")
        column.prop(settings, "blend")
        row = column.row()
        row.enabled = all_fields and len(fields) >= 2 and not busy
        combine = row.operator("inr.combine", icon="MOD_BOOLEAN")
        combine.operation, combine.blend, combine.resolution = settings.operation, settings.blend, resolution

        column = layout.column(align=True)
        column.prop(settings, "distance")
        column.prop(settings, "shell")
        row = column.row()
        row.enabled = field_store.has_field(active) and not busy and (settings.distance != 0 or settings.shell > 0)
        offset = row.operator("inr.offset", icon="MOD_SOLIDIFY")
        offset.distance, offset.shell, offset.resolution = settings.distance, settings.shell, resolution

        column = layout.column(align=True)
        column.prop(settings, "factor", slider=True)
        row = column.row()
        row.enabled = all_fields and len(fields) == 2 and not busy
        morph = row.operator("inr.morph", icon="MOD_SIMPLEDEFORM")
        morph.factor, morph.resolution = settings.factor, resolution

        if field_store.is_morph(active):
            box = layout.box()
            box.prop(active, f'["{field_store.FACTOR_KEY}"]', text="Morph factor", slider=True)
            row = box.row()
            row.enabled = not busy
            extract = row.operator("inr.extract_mesh", text="Re-extract at this factor", icon="FILE_REFRESH")
            extract.resolution = resolution
        layout.label(text="Blend and offset reach a tenth of the source's size", icon="INFO")


def draw_import_menu(menu: bpy.types.Menu, context: bpy.types.Context) -> None:
    """File > Import > Neural Field: a field file from ``inr_worker batch`` or ``fit --field``."""
    menu.layout.operator("inr.import_field", text="Neural Field (.safetensors)")


classes = (VIEW3D_PT_inr_neural_field, VIEW3D_PT_inr_modelling)
