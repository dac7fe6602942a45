"""``inr.check_worker``: run the worker once and report the torch version and device it finds."""

from __future__ import annotations

import json
import subprocess

import bpy

from .. import runner
from ..preferences import get_preferences, worker_python_setting

CHECK_TIMEOUT_S = 120


class INR_OT_check_worker(bpy.types.Operator):
    """Start the worker Python once and report the torch version and device it finds"""

    bl_idname = "inr.check_worker"
    bl_label = "Check Worker"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            python = runner.worker_python(worker_python_setting(context))
            completed = subprocess.run(
                runner.worker_command(python, "check", "--device", get_preferences(context).device),
                env=runner.worker_environment(),
                capture_output=True,
                text=True,
                timeout=CHECK_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
                check=False,  # a failure is reported from its output below
            )
        except runner.JobError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        except (OSError, subprocess.TimeoutExpired) as error:
            self.report({"ERROR"}, f"the worker Python could not be run: {error}")
            return {"CANCELLED"}
        if completed.returncode != 0:
            lines = (completed.stderr or completed.stdout).strip().splitlines()
            self.report({"ERROR"}, f"{python} cannot run the worker: {lines[-1] if lines else 'no output'}")
            return {"CANCELLED"}
        found = json.loads(completed.stdout.strip().splitlines()[-1])
        self.report({"INFO"}, f"Worker OK: torch {found['torch']} on {found['device'].upper()} ({python})")
        return {"FINISHED"}
