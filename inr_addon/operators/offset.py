"""``inr.offset``: grow, shrink or hollow a field object by a world distance."""

from __future__ import annotations

import bpy

from .. import runner
from ..properties import adaptivity_property, distance_property, resolution_property, shell_property, surface_property
from .modelling_job import ModellingJobOperator, field_inputs


class INR_OT_offset(ModellingJobOperator, bpy.types.Operator):
    """Grow or shrink the active field object, or hollow it into a wall around a cavity, as a new field object.
    Reaches at most about a tenth of the source's size: the distances its field knows"""

    bl_idname = "inr.offset"
    bl_label = "Offset Field"
    bl_options = {"REGISTER", "UNDO"}
    action = "Offset"

    distance: distance_property()
    shell: shell_property()
    resolution: resolution_property()
    surface: surface_property()
    adaptivity: adaptivity_property()

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT"

    def inputs(self, context: bpy.types.Context) -> list[bpy.types.Object]:
        if self.shell < 0:
            raise runner.JobError(f"the shell thickness {self.shell:g} is negative")
        if self.distance == 0 and self.shell == 0:
            raise runner.JobError("nothing to do: set a distance or a shell thickness")
        objects = field_inputs(context, 1)
        if len(objects) > 1:
            self.report({"INFO"}, f"Offsetting the active object {objects[0].name}; the others are not used")
        return objects[:1]

    def settings(self) -> dict:
        return {"kind": "OFFSET", "distance": self.distance, "shell": self.shell}

    def result_name(self, active: str) -> str:
        return f"{active}_{'shell' if self.shell > 0 else 'offset'}"
