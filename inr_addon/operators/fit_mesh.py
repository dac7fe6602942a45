"""``inr.fit_mesh``: fit a neural field to the selected meshes or point clouds (or the active one) and add
its surface as a new object."""

from __future__ import annotations

import bpy
import numpy as np

from .. import colour_data, field_store, mesh_data, point_data, runner
from ..inr_worker import memory, point_checks, protocol
from ..preferences import get_preferences, worker_python_setting, worker_threads
from ..properties import (
    adaptivity_property,
    learned_property,
    preset_property,
    resolution_property,
    selection_property,
    surface_property,
)
from .job_operator import (
    WorkerJobOperator,
    jobs_root,
    new_surface_object,
    read_surface,
    read_surface_colors,
    select_only,
)

SUFFIX = "_inr"
FITTED_TYPES = ("MESH", "POINTCLOUD")


def check_resolution(resolution: int) -> None:
    if not protocol.MIN_RESOLUTION <= resolution <= protocol.MAX_RESOLUTION:
        raise runner.JobError(
            f"resolution {resolution} is outside {protocol.MIN_RESOLUTION} to {protocol.MAX_RESOLUTION}"
        )


def joined_triangles(
    active: bpy.types.Object, others: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph
) -> dict[str, np.ndarray]:
    """The meshes' triangles in the active object's space, each under its world transform, and each
    triangle's part (object) number.

    The winding number of the joined triangles is the sum of the parts', so the fitted solid is
    the union of their solids (the worker drops faces buried inside other parts); a mirroring
    transform has its triangles turned to keep them outward.
    """
    to_active = np.array(active.matrix_world.inverted())
    all_vertices, all_triangles, parts, count = [], [], [], 0
    for part, obj in enumerate([active, *others]):
        vertices, triangles = mesh_data.evaluated_triangles(obj, depsgraph)
        if obj is not active:
            matrix = to_active @ np.array(obj.matrix_world)
            vertices = vertices @ matrix[:3, :3].T + matrix[:3, 3]
            if np.linalg.det(matrix[:3, :3]) < 0:
                triangles = triangles[:, ::-1]
        all_vertices.append(vertices)
        all_triangles.append(triangles + count)
        parts.append(np.full(len(triangles), part, dtype=np.int32))
        count += len(vertices)
    mesh = {"vertices": np.concatenate(all_vertices), "triangles": np.concatenate(all_triangles)}
    return {**mesh, "parts": np.concatenate(parts)} if others else mesh


def mesh_arrays(
    objects: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph, resolution: int
) -> dict[str, np.ndarray]:
    """The job's mesh file: the objects' triangles joined at the first one, checked to be finite and to fit
    in memory."""
    mesh = joined_triangles(objects[0], objects[1:], depsgraph)
    if not np.isfinite(mesh["vertices"]).all():
        names = ", ".join(obj.name for obj in objects)
        raise runner.JobError(
            f"{names} {'have' if len(objects) > 1 else 'has'} vertices with NaN or infinite coordinates"
        )
    needed = memory.estimate_memory_for_mesh(mesh["vertices"], mesh["triangles"], resolution)
    if problem := memory.shortfall(needed, resolution):
        raise runner.JobError(problem)
    return mesh


def points_memory_problem(count: int, resolution: int) -> str | None:
    """Why fitting ``count`` points at ``resolution`` would not fit in the memory free now, or None."""
    free = memory.available_memory()
    needed = memory.estimate_memory_for_points(count, resolution)
    if free is None or needed <= free:
        return None
    too_many = memory.estimate_memory_for_points(count, protocol.MIN_RESOLUTION) > free
    return (
        f"fitting {count:,} points at resolution {resolution} needs about {memory.format_bytes(needed)} of memory, "
        f"but only {memory.format_bytes(free)} is free; "
        + ("use fewer points" if too_many else "choose a lower resolution")
    )


def points_arrays(
    objects: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph, resolution: int
) -> dict[str, np.ndarray]:
    """The job's points file: the objects' points joined at the first one; refused from their count alone when
    they would not fit in memory, then checked to describe a surface."""
    if problem := points_memory_problem(sum(point_data.point_count(obj, depsgraph) for obj in objects), resolution):
        raise runner.JobError(problem)
    arrays = point_data.joined_points(objects[0], objects[1:], depsgraph)
    try:
        point_checks.check_points(arrays["points"], arrays.get("normals"))
    except point_checks.PointsError as error:
        raise runner.JobError(f"{', '.join(obj.name for obj in objects)}: {error}") from error
    return arrays


def mixed_selection(faced: list[str], points: list[str]) -> str:
    """The refusal of a selection of meshes with faces and of points."""
    verbs = ["has" if len(names) == 1 else "have" for names in (faced, points)]
    return (
        f"{', '.join(faced)} {verbs[0]} faces and {', '.join(points)} {verbs[1]} none: "
        "fit meshes and point clouds separately"
    )


def fitted_objects(
    context: bpy.types.Context, selection: str
) -> tuple[bpy.types.Object, list[bpy.types.Object], list[str]]:
    """The object the result is placed at and named after, the other objects fitted with it, and the names of
    the selected objects left out. With ``selection='SELECTED'`` an active object that is not a mesh or a point
    cloud (a camera, a light) is left out too, and the first selected mesh takes its place."""
    active = context.active_object
    selected = [obj for obj in context.selected_objects if obj != active]
    if selection == "SELECTED" and (active is None or active.type not in FITTED_TYPES):
        fittable = [obj for obj in selected if obj.type in FITTED_TYPES]
        if fittable:
            others = [obj.name for obj in ([active] if active is not None else []) + selected if obj not in fittable]
            return fittable[0], fittable[1:], others
    if active is None:
        raise runner.JobError("no active object; select a mesh or a point cloud")
    if active.type not in FITTED_TYPES:
        kind = active.type.lower().replace("_", " ")
        article = "an" if kind[0] in "aeiou" else "a"
        raise runner.JobError(f"the active object {active.name} is {article} {kind}, not a mesh or a point cloud")
    used = [obj for obj in selected if obj.type in FITTED_TYPES] if selection == "SELECTED" else []
    return active, used, [obj.name for obj in selected if obj not in used]


class INR_OT_fit_mesh(WorkerJobOperator, bpy.types.Operator):
    """Fit a neural field to the selected meshes (modifiers applied; loose vertices beside faces are ignored),
    or to the points of point clouds and meshes without faces, as one solid at the active one, and add its
    surface as a new object"""

    bl_idname = "inr.fit_mesh"
    bl_label = "Fit Neural Field"
    bl_options = {"REGISTER", "UNDO"}
    action = "Fit"

    resolution: resolution_property()
    surface: surface_property()
    adaptivity: adaptivity_property()
    preset: preset_property()
    steps: bpy.props.IntProperty(
        name="Refinement Steps",
        description="Point clouds: training steps, 0 uses the preset's. Meshes need none (0): their distances "
        "are measured exactly; more steps refit them and take longer",
        default=0,
        min=0,
        options={"SKIP_SAVE"},
    )
    selection: selection_property()
    learned: learned_property()

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT"

    def start_job(self, context: bpy.types.Context) -> runner.WorkerJob:
        source, used, unused = fitted_objects(context, self.selection)
        check_resolution(self.resolution)
        if runner.running(source.name) is not None:
            raise runner.JobError(f"{source.name} is already being fitted")
        python = runner.worker_python(worker_python_setting(context))
        if unused:
            self.report(
                {"INFO"},
                f"Fitting {', '.join([source.name] + [obj.name for obj in used])}; "
                f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not used"
                + ("" if self.selection == "ACTIVE" else " (not a mesh or a point cloud)"),
            )
        self._fitted_names = [source.name] + [obj.name for obj in used]
        depsgraph = context.evaluated_depsgraph_get()
        objects = [source, *used]
        point_names = [obj.name for obj in objects if point_data.is_points(obj, depsgraph)]
        if point_names and len(point_names) < len(objects):
            faced_names = [obj.name for obj in objects if obj.name not in point_names]
            raise runner.JobError(mixed_selection(faced_names, point_names))
        files: dict[str, bytes | dict[str, np.ndarray]]
        if point_names:
            task, files = "fit_points", {protocol.POINTS_FILE: points_arrays(objects, depsgraph, self.resolution)}
        else:
            task, files = "fit", {protocol.MESH_FILE: mesh_arrays(objects, depsgraph, self.resolution)}
            warnings: list[str] = []
            colours = colour_data.joined_colours(objects, depsgraph, warnings)
            for warning in warnings:  # what could not be read is fitted without its colour
                self.report({"WARNING"}, warning)
            if colours is not None:
                files[protocol.COLOUR_FILE] = colours
        spec = protocol.JobSpec(
            task=task,
            resolution=self.resolution,
            surface_kind=self.surface,
            adaptivity=self.adaptivity,
            preset=self.preset,
            device=get_preferences(context).device,
            steps=self.steps,
            learned=self.learned and task == "fit",
            threads=worker_threads(context),
        )
        return runner.WorkerJob(jobs_root(), source.name, spec, python, files)

    def apply(self, context: bpy.types.Context, job: runner.WorkerJob) -> None:
        source: bpy.types.Object | None = bpy.data.objects.get(job.key)
        if source is None:
            raise runner.JobError(f"the source object {job.key} was removed during the fit")
        vertices, triangles = read_surface(job)
        colors = read_surface_colors(job, len(vertices))
        field = (job.directory / protocol.FIELD_FILE).read_bytes()
        name = source.name + SUFFIX
        result = new_surface_object(name, vertices, triangles)
        if colors is not None:
            colour_data.write_colours(result, colors)
        field_store.write_field(result, field, source.name, job.spec.preset, job.spec.resolution)
        collection = source.users_collection[0] if source.users_collection else context.scene.collection
        collection.objects.link(result)
        result.matrix_world = source.matrix_world.copy()
        select_only(context, result)
        names = getattr(self, "_fitted_names", [source.name])
        fitted = f"Fit {source.name}" if len(names) == 1 else f"Fitted {len(names)} objects as one: {', '.join(names)}"
        faces = "faces" if triangles.shape[1] == 4 else "triangles"
        self.report({"INFO"}, f"{fitted}; {result.name} has {len(vertices)} vertices, {len(triangles)} {faces}")
