"""``inr.cancel``: stop running fits and extractions."""

from __future__ import annotations

import bpy

from .. import runner


class INR_OT_cancel(bpy.types.Operator):
    """Stop the running neural field jobs (of one object, if named)"""

    bl_idname = "inr.cancel"
    bl_label = "Cancel"

    object_name: bpy.props.StringProperty(name="Object", description="Only this object's job; empty: all jobs")

    def execute(self, context: bpy.types.Context) -> set[str]:
        jobs = [job for job in runner.all_running() if not self.object_name or job.key == self.object_name]
        if not jobs:
            self.report({"INFO"}, "No job is running")
            return {"CANCELLED"}
        for job in jobs:
            job.cancel()
        return {"FINISHED"}
