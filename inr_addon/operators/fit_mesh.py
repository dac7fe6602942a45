"""``inr.fit_mesh``: fit a neural field to the active mesh and add its surface as a new object."""

from __future__ import annotations

import bpy
import numpy as np

from .. import field_store, mesh_data, runner
from ..inr_worker import memory, protocol
from ..preferences import get_preferences, worker_python_setting, worker_threads
from ..properties import preset_property, resolution_property
from .job_operator import WorkerJobOperator, jobs_root

SUFFIX = "_inr"


def check_resolution(resolution: int) -> None:
    if not protocol.MIN_RESOLUTION <= resolution <= protocol.MAX_RESOLUTION:
        raise runner.JobError(
            f"resolution {resolution} is outside {protocol.MIN_RESOLUTION} to {protocol.MAX_RESOLUTION}"
        )


class INR_OT_fit_mesh(WorkerJobOperator, bpy.types.Operator):
    """Fit a neural field to the active mesh (modifiers applied) and add its surface as a new solid"""

    bl_idname = "inr.fit_mesh"
    bl_label = "Fit Neural Field"
    bl_options = {"REGISTER", "UNDO"}
    action = "Fit"

    resolution: resolution_property()
    preset: preset_property()
    steps: bpy.props.IntProperty(
        name="Steps", description="Training steps; 0 uses the preset's", default=0, min=0, options={"SKIP_SAVE"}
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT"

    def start_job(self, context: bpy.types.Context) -> runner.WorkerJob:
        source = context.active_object
        if source is None:
            raise runner.JobError("no active object; select a mesh")
        if source.type != "MESH":
            kind = source.type.lower().replace("_", " ")
            article = "an" if kind[0] in "aeiou" else "a"
            raise runner.JobError(f"the active object {source.name} is {article} {kind}, not a mesh")
        check_resolution(self.resolution)
        if runner.running(source.name) is not None:
            raise runner.JobError(f"{source.name} is already being fitted")
        python = runner.worker_python(worker_python_setting(context))
        others = [obj.name for obj in context.selected_objects if obj != source]
        if others:
            self.report(
                {"INFO"},
                f"Fitting the active object {source.name}; {len(others)} other selected object(s) are not used",
            )
        vertices, triangles = mesh_data.evaluated_triangles(source, context.evaluated_depsgraph_get())
        if len(triangles) == 0:
            raise runner.JobError(f"{source.name} has no faces")
        if not np.isfinite(vertices).all():
            raise runner.JobError(f"{source.name} has vertices with NaN or infinite coordinates")
        needed = memory.estimate_memory_for_mesh(vertices, triangles, self.resolution)
        if problem := memory.shortfall(needed, self.resolution):
            raise runner.JobError(problem)
        spec = protocol.JobSpec(
            task="fit",
            resolution=self.resolution,
            preset=self.preset,
            device=get_preferences(context).device,
            steps=self.steps,
            threads=worker_threads(context),
        )
        return runner.WorkerJob(
            jobs_root(), source.name, spec, python, {protocol.MESH_FILE: {"vertices": vertices, "triangles": triangles}}
        )

    def apply(self, context: bpy.types.Context, job: runner.WorkerJob) -> None:
        source: bpy.types.Object | None = bpy.data.objects.get(job.key)
        if source is None:
            raise runner.JobError(f"the source object {job.key} was removed during the fit")
        with np.load(job.directory / protocol.SURFACE_FILE) as surface:
            vertices, triangles = surface["vertices"], surface["triangles"]
        field = (job.directory / protocol.FIELD_FILE).read_bytes()
        name = source.name + SUFFIX
        mesh = bpy.data.meshes.new(name)
        mesh_data.fill_mesh(mesh, vertices, triangles)
        result = bpy.data.objects.new(name, mesh)
        field_store.write_field(result, field, source.name, job.spec.preset, job.spec.resolution)
        collection = source.users_collection[0] if source.users_collection else context.scene.collection
        collection.objects.link(result)
        result.matrix_world = source.matrix_world.copy()
        for selected in context.selected_objects:
            selected.select_set(False)
        result.select_set(True)
        context.view_layer.objects.active = result
        self.report(
            {"INFO"}, f"Fit {source.name}: {result.name} has {len(vertices)} vertices, {len(triangles)} triangles"
        )
