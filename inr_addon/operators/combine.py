"""``inr.combine``: union, difference or intersection of the selected field objects, with a rounded blend."""

from __future__ import annotations

import bpy

from .. import runner
from ..properties import adaptivity_property, blend_property, operation_property, resolution_property, surface_property
from .modelling_job import ModellingJobOperator, field_inputs


class INR_OT_combine(ModellingJobOperator, bpy.types.Operator):
    """Combine the selected field objects, each under its current transform, into a new field object
    (for Difference: the active one minus the others)"""

    bl_idname = "inr.combine"
    bl_label = "Combine Fields"
    bl_options = {"REGISTER", "UNDO"}
    action = "Combine"

    operation: operation_property()
    blend: blend_property()
    resolution: resolution_property()
    surface: surface_property()
    adaptivity: adaptivity_property()

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT"

    def inputs(self, context: bpy.types.Context) -> list[bpy.types.Object]:
        if self.blend < 0:
            raise runner.JobError(f"the blend {self.blend:g} is negative")
        return field_inputs(context, 2)

    def settings(self) -> dict:
        return {"kind": self.operation, "blend": self.blend}

    def result_name(self, active: str) -> str:
        return f"{active}_{self.operation.lower()}"
