"""What Combine, Offset and Morph share: check the selected field objects, place them relative to
the result, run one "operate" job (no training) and add its surface as a new field object."""

from __future__ import annotations

import bpy
import mathutils
import numpy as np

from .. import colour_data, field_store, runner
from ..inr_worker import protocol
from ..preferences import get_preferences, worker_python_setting
from .fit_mesh import check_resolution
from .job_operator import (
    WorkerJobOperator,
    jobs_root,
    new_surface_object,
    read_surface,
    read_surface_colors,
    select_only,
)


def rigid_part(matrix: mathutils.Matrix) -> mathutils.Matrix:
    """The matrix's location and rotation, without scale: the result's space measures world distances."""
    location, rotation, _ = matrix.decompose()
    return mathutils.Matrix.Translation(location) @ rotation.to_matrix().to_4x4()


def field_inputs(context: bpy.types.Context, least: int, most: int | None = None) -> list[bpy.types.Object]:
    """The active object first, then the other selected ones; all must be field objects."""
    active = context.active_object
    needed = f"{least} field objects" if least == most else f"{least} or more field objects" if least > 1 else None
    if active is None:
        raise runner.JobError(f"no active object; select {needed or 'a field object'} (objects made by Fit)")
    objects = [active] + [obj for obj in context.selected_objects if obj != active]
    for obj in objects:
        if obj.type != "MESH" or not field_store.has_field(obj):
            raise runner.JobError(f"{obj.name} is not a field object; fit it first (Neural Field > Fit)")
    if len(objects) < least or (most is not None and len(objects) > most):
        raise runner.JobError(
            f"select {needed} (the active one and {'one other' if least == most == 2 else 'the others'}); "
            f"{len(objects)} selected"
        )
    return objects


class ModellingJobOperator(WorkerJobOperator):
    """Mixin: subclasses give ``inputs(context)``, ``settings()`` (the operation) and ``result_name(active)``."""

    def inputs(self, context: bpy.types.Context) -> list[bpy.types.Object]:
        raise NotImplementedError

    resolution: int  # each operator declares it as a Blender property
    surface: str  # likewise
    adaptivity: float  # likewise

    def settings(self) -> dict:
        raise NotImplementedError

    def result_name(self, active: str) -> str:
        raise NotImplementedError

    def start_job(self, context: bpy.types.Context) -> runner.WorkerJob:
        objects = self.inputs(context)
        check_resolution(self.resolution)
        active = objects[0]
        if runner.running(active.name) is not None:
            raise runner.JobError(f"{active.name} already has a job running")
        place = rigid_part(active.matrix_world)
        to_result = place.inverted()
        files: dict[str, bytes | dict[str, np.ndarray]] = {
            f"input_{index}.safetensors": field_store.read_current_field(obj) for index, obj in enumerate(objects)
        }
        placements = [[float(value) for value in np.array(to_result @ obj.matrix_world).ravel()] for obj in objects]
        python = runner.worker_python(worker_python_setting(context))
        spec = protocol.JobSpec(
            task="operate",
            resolution=self.resolution,
            surface_kind=self.surface,
            adaptivity=self.adaptivity,
            device=get_preferences(context).device,
            operation={**self.settings(), "inputs": list(files), "placements": placements},
        )
        self._placement = place
        self._names = [obj.name for obj in objects]
        return runner.WorkerJob(jobs_root(), active.name, spec, python, files)

    def apply(self, context: bpy.types.Context, job: runner.WorkerJob) -> None:
        vertices, triangles = read_surface(job)
        field = (job.directory / protocol.FIELD_FILE).read_bytes()
        active: bpy.types.Object | None = bpy.data.objects.get(self._names[0])
        name = self.result_name(self._names[0])
        result = new_surface_object(name, vertices, triangles)
        colours = read_surface_colors(job, len(vertices))
        if colours is not None:  # the inputs' colours, carried through the operation
            colour_data.write_colours(result, colours)
        kind = job.spec.operation["kind"].lower()
        field_store.write_composite(result, field, f"{kind} of {', '.join(self._names)}", job.spec.resolution)
        collection = active.users_collection[0] if active is not None and active.users_collection else None
        (collection or context.scene.collection).objects.link(result)
        result.matrix_world = self._placement
        select_only(context, result)
        self.report({"INFO"}, f"{self.action} made {result.name}: {len(vertices)} vertices, {len(triangles)} triangles")
