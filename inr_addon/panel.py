"""The Neural Field tab in the 3D view's sidebar."""

from __future__ import annotations

import bpy

from . import field_store, image_data, runner
from .operators.fit_image import IMAGE_FIELD_KEY


class VIEW3D_PT_inr_neural_field(bpy.types.Panel):
    bl_label = "Neural Field"
    bl_idname = "VIEW3D_PT_inr_neural_field"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Neural Field"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.inr_settings
        active = context.active_object
        column = layout.column()
        column.prop(settings, "preset")
        column.prop(settings, "resolution")

        job = runner.running(active.name) if active is not None else None
        if job is not None:
            layout.progress(factor=job.status.fraction, text=job.status.text())
            layout.operator("inr.cancel", icon="CANCEL").object_name = job.key
        else:
            fit = layout.operator("inr.fit_mesh", text="Fit", icon="MESH_MONKEY")
            fit.preset, fit.resolution = settings.preset, settings.resolution
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
    settings, preset = context.scene.inr_image_settings, context.scene.inr_settings.preset
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
    if image is not None and IMAGE_FIELD_KEY in image:
        box.operator("inr.resample_image", text="Resample", icon="FILE_REFRESH").resolution = settings.resolution


classes = (VIEW3D_PT_inr_neural_field,)
