"""The Neural Field tab in the 3D view's sidebar."""

from __future__ import annotations

import bpy

from . import field_store, properties, runner


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

        if field_store.has_field(active):
            box = layout.box()
            box.label(text=f"Field of {active.get('inr_source', '?')} ({active.get('inr_preset', '?').title()})")
            box.label(text=f"Extracted at {active.get('inr_resolution', '?')}")

        others = [other for other in runner.all_running() if other is not job]
        for other in others:
            row = layout.row()
            row.label(text=f"{other.key}: {other.status.text()}")
            row.operator("inr.cancel", text="", icon="X").object_name = other.key


classes = (VIEW3D_PT_inr_neural_field,)
