"""Neural Field Remesh: fit a neural field to a mesh in a worker process and bring back its
surface, as one closed solid, at any resolution.

The Blender side (this package) imports only bpy and numpy; the worker (``inr_worker``)
runs in a separate Python that has torch.
"""

from __future__ import annotations

import atexit

import bpy

from . import operators, panel, preferences, properties, runner, worker_env

classes = (*preferences.classes, *properties.classes, *operators.classes, *panel.classes)


@bpy.app.handlers.persistent
def _stop_jobs_on_load(*_args: object) -> None:
    runner.stop_all()


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    properties.register()
    bpy.types.TOPBAR_MT_file_import.append(panel.draw_import_menu)
    bpy.app.handlers.load_pre.append(_stop_jobs_on_load)
    atexit.register(runner.stop_all)
    atexit.register(runner.stop_ready_worker)
    if preferences.ADDON_ID in bpy.context.preferences.addons:  # else not yet: the first job starts it
        preferences.update_ready_worker(bpy.context)


def unregister() -> None:
    runner.stop_all()
    runner.stop_ready_worker()
    if worker_env.active() is not None:
        worker_env.active().cancel()
    atexit.unregister(runner.stop_all)
    atexit.unregister(runner.stop_ready_worker)
    if _stop_jobs_on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_stop_jobs_on_load)
    bpy.types.TOPBAR_MT_file_import.remove(panel.draw_import_menu)
    properties.unregister()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
