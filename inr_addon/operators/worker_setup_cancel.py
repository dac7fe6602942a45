"""``inr.worker_setup_cancel``: stop a running Set Up Worker; the old Worker Python stays."""

from __future__ import annotations

import bpy

from .. import worker_env


class INR_OT_worker_setup_cancel(bpy.types.Operator):
    """Stop setting up the worker and delete the half-made environment; Worker Python keeps its value"""

    bl_idname = "inr.worker_setup_cancel"
    bl_label = "Cancel"

    def execute(self, context: bpy.types.Context) -> set[str]:
        setup = worker_env.active()
        if setup is None:
            self.report({"WARNING"}, "Set Up Worker is not running")
            return {"CANCELLED"}
        setup.cancel()
        return {"FINISHED"}
