"""``inr.resample_image``: rewrite an image made by ``inr.fit_image(mode='IMAGE')`` at a new width, from
the field stored with it, without training."""

from __future__ import annotations

import typing

import bpy
import numpy as np

from .. import image_data, runner
from ..inr_worker import protocol
from ..preferences import get_preferences, worker_python_setting
from .fit_image import IMAGE_FIELD_KEY, check_image_width, image_height, write_image
from .job_operator import WorkerJobOperator, jobs_root


class INR_OT_resample_image(WorkerJobOperator, bpy.types.Operator):
    """Rewrite a fitted image at another width from its stored field"""

    bl_idname = "inr.resample_image"
    bl_label = "Resample Fitted Image"
    bl_options = {"REGISTER", "UNDO"}
    action = "Resample"

    image: bpy.props.StringProperty(
        name="Image", description="An image made by Fit in IMAGE mode; empty: the active Empty's image"
    )
    resolution: bpy.props.IntProperty(
        name="Resolution", description="New width in pixels (0: the source's width)", default=0, soft_min=0
    )

    def start_job(self, context: bpy.types.Context) -> runner.WorkerJob:
        if self.image:
            image: bpy.types.Image | None = bpy.data.images.get(self.image)
            if image is None:
                raise runner.JobError(f"there is no image named {self.image!r}")
        else:
            active = context.active_object
            image = typing.cast(bpy.types.Image, active.data) if image_data.is_image_empty(active) else None
            if image is None:
                raise runner.JobError("name an image made by Fit (image=...) or make its image Empty active")
        field = image.get(IMAGE_FIELD_KEY)
        if not isinstance(field, bytes):
            raise runner.JobError(f"{image.name} has no fitted field; make one with Fit in Image mode")
        source_size = tuple(image.get("inr_source_size", image.size))
        width = self.resolution or int(source_size[0])
        check_image_width(width)
        if runner.running(image.name) is not None:
            raise runner.JobError(f"{image.name} already has a job running")
        python = runner.worker_python(worker_python_setting(context))
        spec = protocol.JobSpec(
            task="resample_image",
            resolution=protocol.MIN_RESOLUTION,
            device=get_preferences(context).device,
            width=width,
            height=image_height(width, source_size),
        )
        return runner.WorkerJob(jobs_root(), image.name, spec, python, {protocol.IMAGE_FIELD_FILE: bytes(field)})

    def apply(self, context: bpy.types.Context, job: runner.WorkerJob) -> None:
        image: bpy.types.Image | None = bpy.data.images.get(job.key)
        if image is None:
            raise runner.JobError(f"the image {job.key} was removed during the resampling")
        with np.load(job.directory / protocol.RENDERED_FILE) as rendered:
            pixels = rendered["pixels"]
        write_image(image, image.name, pixels)
        self.report({"INFO"}, f"Resampled {image.name} to {pixels.shape[1]}x{pixels.shape[0]}")
