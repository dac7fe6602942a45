"""``inr.morph``: a shape between two field objects, at a factor that can be changed afterwards."""

from __future__ import annotations

import bpy

from .. import runner
from ..properties import adaptivity_property, factor_property, resolution_property, surface_property
from .modelling_job import ModellingJobOperator, field_inputs


class INR_OT_morph(ModellingJobOperator, bpy.types.Operator):
    """A new field object between the active field object (factor 0) and the other selected one (factor 1);
    its factor can be changed later in the sidebar, without recomputing anything else"""

    bl_idname = "inr.morph"
    bl_label = "Morph Fields"
    bl_options = {"REGISTER", "UNDO"}
    action = "Morph"

    factor: factor_property()
    resolution: resolution_property()
    surface: surface_property()
    adaptivity: adaptivity_property()

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT"

    def inputs(self, context: bpy.types.Context) -> list[bpy.types.Object]:
        if not 0.0 <= self.factor <= 1.0:
            raise runner.JobError(f"the factor {self.factor:g} is outside 0 to 1")
        return field_inputs(context, 2, 2)

    def settings(self) -> dict:
        return {"kind": "MORPH", "factor": self.factor}

    def result_name(self, active: str) -> str:
        return f"{active}_morph"
