"""``inr.worker_setup``: make the worker's Python (a virtual environment with torch) and use it as Worker Python.

Scripts and background mode wait for it; a button starts it and an application timer follows it, so that
Blender stays responsive (the preferences show its progress line and can cancel it).
"""

from __future__ import annotations

import atexit
import functools
import typing
from pathlib import Path

import bpy

from .. import worker_env
from ..preferences import ADDON_ID, INR_AddonPreferences, get_preferences

TIMER_INTERVAL_S = 0.25
OFFLINE_MESSAGE = (
    "Set Up Worker downloads packages, and online access is off: turn on Preferences > System > Network > "
    "Allow Online Access, or set Worker Python to an existing Python with torch and press Check Worker"
)


def setup_root(directory: str) -> Path:
    """The folder that holds the environment: ``directory``, or the add-on's user folder."""
    if directory:
        return Path(bpy.path.abspath(directory))
    root = bpy.utils.extension_path_user(ADDON_ID, create=True)
    if not root or not Path(root).is_dir():
        raise worker_env.SetupError("Blender could not make the add-on's user folder")
    return Path(root)


def redraw_preferences() -> None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()


def _use(setup: worker_env.WorkerSetup) -> Path:
    """Point Worker Python at the finished environment; SetupError if the set-up did not finish."""
    python = setup.check_result()
    addon: bpy.types.Addon | None = bpy.context.preferences.addons.get(ADDON_ID)
    if addon is not None:  # the add-on may have been disabled while the set-up ran
        typing.cast(INR_AddonPreferences, addon.preferences).python_path = str(python)
    return python


def _follow(setup: worker_env.WorkerSetup) -> float | None:
    """Application timer: advance the set-up; at its end apply it and stop."""
    if not setup.poll():
        redraw_preferences()
        return TIMER_INTERVAL_S
    worker_env.set_active(None)
    atexit.unregister(setup.cancel)
    try:
        _use(setup)
    except worker_env.SetupError:
        pass  # the preferences show the message and the log
    print(f"inr: {setup.message}", flush=True)
    redraw_preferences()
    return None


class INR_OT_worker_setup(bpy.types.Operator):
    """Make a Python environment with torch for the training worker, in the add-on's user folder, and use it"""

    bl_idname = "inr.worker_setup"
    bl_label = "Set Up Worker"

    torch_build: bpy.props.EnumProperty(
        name="Torch Build",
        items=[
            ("CPU", "CPU", "CPU-only torch: the smaller download, runs on any computer (and MPS on Apple silicon)"),
            ("CUDA", "CUDA", "torch with CUDA, for NVIDIA GPUs (a download of several GB)"),
        ],
        default="CPU",
    )
    directory: bpy.props.StringProperty(
        name="Folder",
        description="Where to make the environment; empty: the add-on's user folder",
        subtype="DIR_PATH",
        default="",
        options={"SKIP_SAVE"},
    )

    @classmethod
    def description(cls, context: bpy.types.Context, properties: bpy.types.OperatorProperties) -> str:
        return (
            f"Download torch ({properties.torch_build}) and the worker's packages into a new Python environment "
            "in the add-on's user folder, and use it as Worker Python. Blender's own Python is not touched"
        )

    def execute(self, context: bpy.types.Context) -> set[str]:
        setup = self._start(context)
        if setup is None:
            return {"CANCELLED"}
        try:
            setup.wait(self._print_status if bpy.app.background else None)
        except KeyboardInterrupt:
            setup.cancel()
        finally:
            worker_env.set_active(None)
        try:
            _use(setup)
        except worker_env.SetupCancelled as cancelled:
            self.report({"WARNING"}, str(cancelled))
            return {"CANCELLED"}
        except worker_env.SetupError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, setup.message)
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if context.window is None:
            return self.execute(context)
        setup = self._start(context)
        if setup is None:
            return {"CANCELLED"}
        atexit.register(setup.cancel)
        bpy.app.timers.register(functools.partial(_follow, setup), first_interval=TIMER_INTERVAL_S)
        self.report({"INFO"}, f"Setting up the worker in the background; the log is {setup.log_path}")
        return {"FINISHED"}

    def _start(self, context: bpy.types.Context) -> worker_env.WorkerSetup | None:
        running = worker_env.active()
        if running is not None:
            self.report({"ERROR"}, f"Set Up Worker is already running ({running.status()}); wait, or press Cancel")
            return None
        if not bpy.app.online_access:
            self.report({"ERROR"}, OFFLINE_MESSAGE)
            return None
        if self.torch_build == "CUDA" and "CUDA" not in worker_env.offered_builds():
            self.report({"ERROR"}, "Set Up Worker: no NVIDIA GPU found (nvidia-smi lists none); use the CPU build")
            return None
        try:
            config = worker_env.SetupConfig(
                root=setup_root(self.directory),
                torch_build=self.torch_build,
                index_url=get_preferences(context).index_url.strip(),
            )
            setup = worker_env.WorkerSetup(config)
        except worker_env.SetupError as error:
            self.report({"ERROR"}, f"Set Up Worker: {error}")
            return None
        worker_env.set_active(setup)
        return setup

    def _print_status(self, line: str) -> None:
        step = line.split(":", 1)[0]
        if step != getattr(self, "_last_step", None):
            self._last_step = step
            print(f"inr: {line}", flush=True)
