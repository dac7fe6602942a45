"""``inr.worker_remove``: delete the environment that Set Up Worker made, and stop using it."""

from __future__ import annotations

import bpy

from .. import runner, worker_env
from ..preferences import get_preferences, worker_python_setting
from .worker_setup import setup_root


class INR_OT_worker_remove(bpy.types.Operator):
    """Delete the worker environment made by Set Up Worker; clears Worker Python if it pointed there"""

    bl_idname = "inr.worker_remove"
    bl_label = "Remove Worker"

    directory: bpy.props.StringProperty(
        name="Folder",
        description="The folder the environment was made in; empty: the add-on's user folder",
        subtype="DIR_PATH",
        default="",
        options={"SKIP_SAVE"},
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        if worker_env.active() is not None:
            self.report({"ERROR"}, "Remove Worker: Set Up Worker is running; cancel it first")
            return {"CANCELLED"}
        try:
            env_dir = worker_env.environment_dir(setup_root(self.directory))
            if any(worker_env.inside(job.python, env_dir) for job in runner.all_running()):
                raise worker_env.SetupError("a fit or re-extraction is running with it; cancel it first")
            worker_env.remove_environment(env_dir.parent)
        except worker_env.SetupError as error:
            self.report({"ERROR"}, f"Remove Worker: {error}")
            return {"CANCELLED"}
        setting = worker_python_setting(context)
        cleared = bool(setting) and worker_env.inside(setting, env_dir)
        if cleared:
            get_preferences(context).python_path = ""
        self.report({"INFO"}, f"Removed {env_dir}" + ("; Worker Python is now empty" if cleared else ""))
        return {"FINISHED"}
