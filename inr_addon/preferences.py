"""Add-on preferences: the worker's Python, device and threads, and whether a worker waits ready."""

# No `from __future__ import annotations` here: Blender would evaluate the properties' annotations from
# strings, without this module's names, which the update callback needs.
import os
import typing
from pathlib import Path

import bpy

from . import runner, worker_env
from .inr_worker import protocol

ADDON_ID = __package__
DEVICE_HELP = {
    "AUTO": "An NVIDIA GPU (CUDA) or an Apple GPU (MPS) when the worker's torch finds one, else the CPU",
    "CPU": "The processor: works everywhere",
    "CUDA": "An NVIDIA GPU; needs a CUDA build of torch in the worker (Set Up Worker (CUDA))",
    "MPS": "The GPU of an Apple silicon Mac",
}
READY_WORKER_MB = 270  # what a ready worker holds while it waits: Python with torch and the worker imported
DEVICE_ITEMS = [(name, "Auto" if name == "AUTO" else name, DEVICE_HELP[name]) for name in protocol.DEVICES]


class INR_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    python_path: bpy.props.StringProperty(
        name="Worker Python",
        description="The Python that runs the worker: one with torch, numpy, libigl, scikit-image and "
        "fast-simplification (Set Up Worker makes one). Empty: Blender's own Python, if it can import torch",
        subtype="FILE_PATH",
        default="",
    )
    device: bpy.props.EnumProperty(
        name="Device",
        description="Which processor the worker computes fields on",
        items=DEVICE_ITEMS,
        default="AUTO",
    )
    index_url: bpy.props.StringProperty(
        name="Index URL",
        description="Package index for Set Up Worker, for a studio mirror (pip's --index-url). Empty: pip's own "
        "configuration, with the PyTorch index for the CPU-only build where pip's index lacks it",
        default="",
    )
    threads: bpy.props.IntProperty(
        name="Threads",
        description="CPU threads the worker may use. 0: all cores but one, so that Blender stays responsive",
        min=0,
        max=1024,
        default=0,
    )
    keep_worker_ready: bpy.props.BoolProperty(
        name="Keep a Worker Ready",
        description="Start each job's worker process ahead, so that a job does not wait for torch to load "
        f"(about a second and a half); the waiting process holds about {READY_WORKER_MB} MB of memory",
        default=True,
        update=lambda self, context: update_ready_worker(context),
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "python_path")
        layout.prop(self, "device")
        layout.prop(self, "threads")
        layout.prop(self, "keep_worker_ready")
        layout.operator("inr.check_worker", icon="CONSOLE")
        self.draw_worker_setup(layout.box())

    def draw_worker_setup(self, box: bpy.types.UILayout) -> None:
        box.label(text="Worker environment (torch in its own Python, never in Blender's)")
        setup = worker_env.active()
        if setup is not None:
            box.label(text=setup.status(), icon="TIME")
            box.operator("inr.worker_setup_cancel", icon="CANCEL")
        else:
            if not bpy.app.online_access:
                box.label(text="Set Up Worker needs Preferences > System > Network > Allow Online Access", icon="ERROR")
            row = box.row()
            row.enabled = bpy.app.online_access
            for build in worker_env.offered_builds():
                row.operator("inr.worker_setup", text=f"Set Up Worker ({build})", icon="IMPORT").torch_build = build
            root = Path(bpy.utils.extension_path_user(ADDON_ID))
            if worker_env.environment_dir(root).exists():
                box.operator("inr.worker_remove", icon="TRASH")
            if worker_env.last_message:
                box.label(text=worker_env.last_message)
        box.prop(self, "index_url")
        log = worker_env.log_path(Path(bpy.utils.extension_path_user(ADDON_ID)))
        if setup is not None or log.is_file():
            box.operator("wm.path_open", text="Open Set-Up Log", icon="TEXT").filepath = str(
                setup.log_path if setup else log
            )


def get_preferences(context: bpy.types.Context) -> INR_AddonPreferences:
    return typing.cast(INR_AddonPreferences, context.preferences.addons[ADDON_ID].preferences)


def worker_python_setting(context: bpy.types.Context) -> str:
    """The configured worker Python as an absolute path, or "" for the default."""
    path = get_preferences(context).python_path
    return bpy.path.abspath(path) if path else ""


def worker_threads(context: bpy.types.Context) -> int:
    """Threads for a worker job: the preference, or all cores but one; 0 (all) in background mode."""
    threads = get_preferences(context).threads
    if threads or bpy.app.background:
        return threads
    return max(1, (os.cpu_count() or 2) - 1)


def update_ready_worker(context: bpy.types.Context) -> None:
    """Start a ready worker with the configured Python where the preference asks for one, else end it."""
    if not get_preferences(context).keep_worker_ready:
        runner.stop_ready_worker()
        return
    try:
        runner.start_ready_worker(runner.worker_python(worker_python_setting(context)))
    except runner.JobError:  # no worker Python yet: the first job says why
        runner.stop_ready_worker()


classes = (INR_AddonPreferences,)
