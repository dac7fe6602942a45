"""What the Fit and Re-extract operators share: start a worker job, then either wait for it
(scripts, background mode) or follow it from a modal timer (the UI), and apply its result."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from .. import mesh_data, runner
from ..inr_worker import protocol
from ..preferences import ADDON_ID, update_ready_worker

TIMER_INTERVAL_S = 0.1


def jobs_root() -> Path:
    """The folder for job files, in the add-on's user directory."""
    try:
        root = bpy.utils.extension_path_user(ADDON_ID, path="jobs", create=True)
    except OSError as error:
        raise runner.JobError(f"cannot write the job files: {error}") from error
    if not root or not Path(root).is_dir():  # Blender returns "" when it cannot make the folder
        raise runner.JobError("cannot write the job files: Blender could not make the add-on's job folder")
    return Path(root).resolve()


def redraw_sidebars(context: bpy.types.Context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def read_surface(job: runner.WorkerJob) -> tuple[np.ndarray, np.ndarray]:
    """The vertices and faces that the job's worker wrote: triangles (F, 3), or, where it wrote quads, quads
    and triangles as (F, 4) with a -1 fourth index on each triangle (see ``mesh_data.fill_mesh``)."""
    with np.load(job.directory / protocol.SURFACE_FILE) as surface:
        vertices, triangles = surface["vertices"], surface["triangles"]
        if "quads" not in surface.files:
            return vertices, triangles
        padded = np.concatenate([triangles, np.full((len(triangles), 1), -1, triangles.dtype)], 1)
        return vertices, np.concatenate([surface["quads"], padded])


def read_surface_colors(job: runner.WorkerJob, vertex_count: int) -> np.ndarray | None:
    """The (V, 3) colours in 0..1 that the job's worker wrote for the surface's vertices, if it wrote any."""
    with np.load(job.directory / protocol.SURFACE_FILE) as surface:
        if "colors" not in surface.files:
            return None
        colors = surface["colors"]
    if colors.shape != (vertex_count, 3):
        raise runner.JobError(f"the worker wrote colours of shape {colors.shape} for {vertex_count} vertices")
    return colors


def new_surface_object(name: str, vertices: np.ndarray, triangles: np.ndarray) -> bpy.types.Object:
    """A new mesh object (not yet linked to a collection) holding the surface."""
    mesh = bpy.data.meshes.new(name)
    mesh_data.fill_mesh(mesh, vertices, triangles)
    return bpy.data.objects.new(name, mesh)


def select_only(context: bpy.types.Context, obj: bpy.types.Object) -> None:
    """Make ``obj`` the only selected object and the active one."""
    for selected in context.selected_objects:
        selected.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj


class WorkerJobOperator(bpy.types.Operator):
    """Mixin for an operator that runs one worker job. Subclasses define ``start_job`` and ``apply``.

    ``execute`` (scripts) runs the job to its end before returning; ``invoke`` (buttons) follows it
    from a timer so that Blender stays responsive, and Esc cancels it.
    """

    action = "job"  # for messages: "Fit", "Re-extract"

    def start_job(self, context: bpy.types.Context) -> runner.WorkerJob:
        raise NotImplementedError

    def apply(self, context: bpy.types.Context, job: runner.WorkerJob) -> None:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        try:
            job.wait(self._print_stage if bpy.app.background else None)
        except KeyboardInterrupt:
            job.cancel()
        return self._finish(context, job)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if context.window is None:
            return self.execute(context)
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        self._job = job
        self._timer = context.window_manager.event_timer_add(TIMER_INTERVAL_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "ESC" and event.value == "PRESS":
            self._job.cancel()
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        ended = self._job.poll()
        redraw_sidebars(context)
        if not ended:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._finish(context, self._job)

    def _start(self, context: bpy.types.Context) -> runner.WorkerJob | None:
        try:
            job = self.start_job(context)
        except (runner.JobError, protocol.ProtocolError) as error:
            self.report({"ERROR"}, f"{self.action}: {error}")
            return None
        runner.start(job)
        return job

    def _finish(self, context: bpy.types.Context, job: runner.WorkerJob) -> set[str]:
        try:
            job.check_result()
            self.apply(context, job)
        except runner.JobCancelled:
            self.report({"WARNING"}, f"{self.action} cancelled")
            return {"CANCELLED"}
        except (runner.JobError, protocol.ProtocolError) as error:
            self.report({"ERROR"}, f"{self.action} failed: {error}")
            return {"CANCELLED"}
        finally:
            runner.finish(job)
            update_ready_worker(context)  # the next job's worker loads while the user looks at this one's result
        return {"FINISHED"}

    def _print_stage(self, status: runner.Status) -> None:
        line = status.text()
        if line != getattr(self, "_last_line", None):
            self._last_line = line
            if status.stage != "training" or status.step in (0, status.steps):
                print(f"inr: {line}", flush=True)
