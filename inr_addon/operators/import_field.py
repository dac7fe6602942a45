"""``inr.import_field``: bring a field file (from ``inr_worker batch`` or ``fit --field``) into the scene
as a field object, extracted once so that it has geometry; Re-extract then works on it."""

from __future__ import annotations

from pathlib import Path

import bpy

from .. import field_store, runner
from ..inr_worker import protocol
from ..preferences import get_preferences, worker_python_setting
from ..properties import resolution_property
from .fit_mesh import SUFFIX, check_resolution
from .job_operator import WorkerJobOperator, jobs_root, new_surface_object, read_surface, select_only


class INR_OT_import_field(WorkerJobOperator, bpy.types.Operator):
    """Import a neural field file (.safetensors) as a new object with its surface; Re-extract then works on it"""

    bl_idname = "inr.import_field"
    bl_label = "Import Neural Field"
    bl_options = {"REGISTER", "UNDO"}
    action = "Import field"

    filepath: bpy.props.StringProperty(name="File Path", subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: bpy.props.StringProperty(default="*.safetensors", options={"HIDDEN"})
    resolution: resolution_property()

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT"

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if not self.filepath:
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return super().invoke(context, event)

    def start_job(self, context: bpy.types.Context) -> runner.WorkerJob:
        path = Path(bpy.path.abspath(self.filepath)) if self.filepath else None
        if path is None or not path.is_file():
            raise runner.JobError(f"{self.filepath or 'no file given'}: no such field file")
        check_resolution(self.resolution)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise runner.JobError(f"{path}: cannot be read ({error.strerror})") from error
        if problem := protocol.field_file_problem(data):
            raise runner.JobError(f"{path.name}: {problem}")
        try:
            protocol.check_field(data)
        except protocol.ProtocolError as error:
            raise runner.JobError(f"{path.name}: {str(error).replace('; re-fit this object', '')}") from error
        name = path.stem + SUFFIX
        if runner.running(name) is not None:
            raise runner.JobError(f"{path.name} is already being imported")
        python = runner.worker_python(worker_python_setting(context))
        spec = protocol.JobSpec(task="extract", resolution=self.resolution, device=get_preferences(context).device)
        return runner.WorkerJob(jobs_root(), name, spec, python, {protocol.FIELD_FILE: data})

    def apply(self, context: bpy.types.Context, job: runner.WorkerJob) -> None:
        vertices, triangles = read_surface(job)
        field = (job.directory / protocol.FIELD_FILE).read_bytes()
        result = new_surface_object(job.key, vertices, triangles)
        source_name = job.key.removesuffix(SUFFIX)
        metadata = protocol.check_field(field)
        if protocol.COMPOSITE_KEY in metadata:  # a Combine, Offset or Morph result (a morph gets its slider)
            field_store.write_composite(result, field, source_name, job.spec.resolution)
        else:
            field_store.write_field(result, field, source_name, metadata.get("preset", ""), job.spec.resolution)
        context.collection.objects.link(result)
        select_only(context, result)
        self.report({"INFO"}, f"Imported {result.name}: {len(vertices)} vertices, {len(triangles)} triangles")
