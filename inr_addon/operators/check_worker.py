"""``inr.check_worker``: report the worker Python's version, torch and devices, or exactly why it cannot work."""

from __future__ import annotations

import bpy

from .. import runner, worker_env
from ..preferences import get_preferences, worker_python_setting


class INR_OT_check_worker(bpy.types.Operator):
    """Start the worker Python and report its Python and torch versions and the devices torch sees"""

    bl_idname = "inr.check_worker"
    bl_label = "Check Worker"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            python = worker_python_setting(context) or runner.worker_python("")
            report = worker_env.check_python(python, get_preferences(context).device)
        except (runner.JobError, worker_env.WorkerPythonError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, report.summary())
        return {"FINISHED"}
