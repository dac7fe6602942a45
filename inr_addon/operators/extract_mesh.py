"""``inr.extract_mesh``: re-extract the stored field of the active object at a new resolution."""

from __future__ import annotations

import typing

import bpy

from .. import colour_data, field_store, image_data, mesh_data, runner
from ..inr_worker import memory, protocol
from ..preferences import get_preferences, worker_python_setting, worker_threads
from ..properties import adaptivity_property, resolution_property, surface_property
from .fit_mesh import check_resolution
from .job_operator import WorkerJobOperator, jobs_root, read_surface, read_surface_colors


class INR_OT_extract_mesh(WorkerJobOperator, bpy.types.Operator):
    """Replace the active object's mesh with its neural field's surface at a new resolution, without training"""

    bl_idname = "inr.extract_mesh"
    bl_label = "Re-extract Surface"
    bl_options = {"REGISTER", "UNDO"}
    action = "Re-extract"

    resolution: resolution_property()
    surface: surface_property()
    adaptivity: adaptivity_property()
    factor: bpy.props.FloatProperty(
        name="Factor",
        description="For a morph: the factor to extract at (0 the first shape, 1 the second); -1 keeps the stored one",
        default=-1.0,
        options={"SKIP_SAVE"},
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT"

    def start_job(self, context: bpy.types.Context) -> runner.WorkerJob:
        target = context.active_object
        if target is None:
            raise runner.JobError("no active object; select an object made by Fit")
        if target.type != "MESH" or not field_store.has_field(target):
            raise runner.JobError(f"{target.name} has no fitted field; select an object made by Fit")
        check_resolution(self.resolution)
        if runner.running(target.name) is not None:
            raise runner.JobError(f"{target.name} already has a job running")
        scale = self.resolution / max(1, target.get("inr_resolution", self.resolution))
        needed = memory.estimate_memory_for_triangles(len(typing.cast(bpy.types.Mesh, target.data).polygons) * scale**2)
        if problem := memory.shortfall(needed, self.resolution):
            raise runner.JobError(problem)
        field = field_store.read_field(target)
        if self.factor != -1.0 or field_store.is_morph(target):
            if not field_store.is_morph(target):
                raise runner.JobError(f"{target.name} is not a morph; the factor applies only to morphs")
            factor = self.factor if self.factor != -1.0 else float(target[field_store.FACTOR_KEY])
            if not 0.0 <= factor <= 1.0:
                raise runner.JobError(f"the factor {factor:g} is outside 0 to 1")
            field = field_store.with_factor(field, factor)
        python = runner.worker_python(worker_python_setting(context))
        spec = protocol.JobSpec(
            task="extract",
            resolution=self.resolution,
            surface_kind=self.surface,
            adaptivity=self.adaptivity,
            device=get_preferences(context).device,
            threads=worker_threads(context),
        )
        return runner.WorkerJob(jobs_root(), target.name, spec, python, {protocol.FIELD_FILE: field})

    def apply(self, context: bpy.types.Context, job: runner.WorkerJob) -> None:
        target: bpy.types.Object | None = bpy.data.objects.get(job.key)
        if target is None or not isinstance(target.data, bpy.types.Mesh):
            raise runner.JobError(f"the object {job.key} was removed during the extraction")
        vertices, triangles = read_surface(job)
        mesh_data.fill_mesh(target.data, vertices, triangles)
        image_data.paint_colours(target)  # solids from reference images keep their colours
        colours = read_surface_colors(job, len(vertices))
        if colours is not None:  # the field's own colours (an existing material is kept)
            colour_data.write_colours(target, colours)
        target["inr_resolution"] = job.spec.resolution
        if field_store.is_morph(target):  # the factor it was extracted at becomes the stored one
            field_store.write_composite(
                target, (job.directory / protocol.FIELD_FILE).read_bytes(), target["inr_source"], job.spec.resolution
            )
        self.report({"INFO"}, f"Re-extracted {target.name} at {job.spec.resolution}: {len(vertices)} vertices")
