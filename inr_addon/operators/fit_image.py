"""``inr.fit_image``: a reference image as a 2D neural field (``IMAGE``), or its silhouette as a solid:
inflated (``SILHOUETTE``) or the visual hull of two or three image Empties (``HULL``)."""

from __future__ import annotations

import typing

import bpy
import numpy as np
from mathutils import Matrix

from .. import field_store, image_data, runner
from ..inr_worker import protocol
from ..preferences import get_preferences, worker_python_setting
from ..properties import preset_property
from .fit_mesh import SUFFIX, check_resolution
from .job_operator import WorkerJobOperator, jobs_root, new_surface_object, read_surface, select_only

MODE_ITEMS = [
    ("IMAGE", "Image", "Fit the picture as a field f(x, y) -> RGB(A) and write a new image <image>_inr from it"),
    ("SILHOUETTE", "Silhouette", "Inflate the active image's silhouette into a rounded solid"),
    ("HULL", "Hull", "The solid that agrees with the silhouettes of 2 or 3 selected image Empties"),
]
DEFAULT_CELLS = 256  # resolution 0 in SILHOUETTE and HULL
IMAGE_FIELD_KEY = "_inr_image_field"  # an image made by IMAGE mode keeps its field here
PARALLEL_COSINE = 0.985  # image Empties whose axes are closer than about 10 degrees look along one axis
BESIDE_GAP = 1.05  # the fitted image's Empty is placed this many image widths to the right of the source


def resolution_help() -> str:
    return (
        "IMAGE: width of the new image in pixels (0: the source's). SILHOUETTE, HULL: how fine the surface is, "
        f"in steps across its longest side ({protocol.MIN_RESOLUTION} to {protocol.MAX_RESOLUTION}; 0: {DEFAULT_CELLS})"
    )


def check_image_width(width: int) -> None:
    if not 1 <= width <= protocol.MAX_IMAGE_SIDE:
        raise runner.JobError(f"resolution {width} is outside 1 to {protocol.MAX_IMAGE_SIDE} pixels")


def image_height(width: int, image_size: tuple[int, int]) -> int:
    """The height that keeps the source's aspect ratio at ``width`` pixels."""
    return max(1, round(width * image_size[1] / image_size[0]))


def worker_pixels(pixels: np.ndarray, image: bpy.types.Image) -> np.ndarray:
    """Display pixels as the worker takes them: uint8 for 8-bit images, uint16 otherwise; alpha only if used."""
    channels = 4 if (pixels[..., 3] < 0.999).any() else 3
    integer = (np.uint8, 255) if not image.is_float and image.depth <= 32 else (np.uint16, 65535)
    out = np.empty((*pixels.shape[:2], channels), integer[0])
    for start in range(0, len(pixels), 256):  # in bands, to bound the temporaries for huge images
        band = pixels[start : start + 256, :, :channels]
        out[start : start + 256] = (band * integer[1] + 0.5).astype(integer[0])
    return out


class INR_OT_fit_image(WorkerJobOperator, bpy.types.Operator):
    """Fit the active reference image: as a continuous image, or its silhouette(s) as a solid"""

    bl_idname = "inr.fit_image"
    bl_label = "Fit Reference Image"
    bl_options = {"REGISTER", "UNDO"}
    action = "Fit"

    mode: bpy.props.EnumProperty(name="Mode", items=MODE_ITEMS, default="IMAGE")
    resolution: bpy.props.IntProperty(name="Resolution", description=resolution_help(), default=0, soft_min=0)
    thickness: bpy.props.FloatProperty(
        name="Thickness",
        description="Depth of the inflation: 1 makes a filled circle into a ball, 0.5 a half-thick lentil",
        default=1.0,
        soft_min=0.05,
        soft_max=4.0,
    )
    invert: bpy.props.BoolProperty(name="Invert", description="Use the other side of the mask as the silhouette")
    rounded: bpy.props.BoolProperty(
        name="Rounded", description="HULL: intersect the views' inflations instead of their extrusions"
    )
    image: bpy.props.StringProperty(
        name="Image", description="An image datablock to use instead of the active Empty's image"
    )
    preset: preset_property()
    steps: bpy.props.IntProperty(
        name="Steps", description="Training steps; 0 uses the preset's", default=0, min=0, options={"SKIP_SAVE"}
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT"

    def start_job(self, context: bpy.types.Context) -> runner.WorkerJob:
        self._empty_names: list[str] = []
        if self.mode == "IMAGE":
            return self._start_image(context)
        if not self.thickness > 0:
            raise runner.JobError(f"thickness {self.thickness:g} must be above 0")
        cells = self.resolution or DEFAULT_CELLS
        check_resolution(cells)
        sources = self._shape_sources(context)
        key = sources[0][0].name if sources[0][0] is not None else sources[0][1].name
        if runner.running(key) is not None:
            raise runner.JobError(f"{key} is already being fitted")
        python = runner.worker_python(worker_python_setting(context))
        arrays, colour_views = {}, []
        for index, (empty, image) in enumerate(sources):
            pixels = image_data.display_pixels(image)
            mask = image_data.silhouette_mask(pixels, self.invert, image.name)
            rect = image_data.image_rect(empty, image)
            if self.mode == "HULL":
                to_common, scale = image_data.rigid_frame(empty)
                rect = rect * np.repeat(scale[:2], 2)
            else:
                to_common = np.eye(4)
            arrays[f"mask_{index}"] = (image_data.reduce(mask, image_data.MASK_SIDE) >= 0.5).astype(np.uint8)
            arrays[f"to_common_{index}"] = to_common
            arrays[f"rect_{index}"] = rect
            colour_views.append((image_data.reduce(pixels[..., :3], image_data.COLOUR_SIDE), to_common, rect))
            del pixels, mask  # a huge image is held once at a time
        self._colour_views = image_data.colour_views_bytes(colour_views)
        self._empty_names = [empty.name for empty, _ in sources if empty is not None]
        spec = protocol.JobSpec(
            task="fit_shape",
            resolution=cells,
            preset=self.preset,
            device=get_preferences(context).device,
            steps=self.steps,
            mode=self.mode,
            thickness=self.thickness,
            rounded=self.rounded,
        )
        return runner.WorkerJob(jobs_root(), key, spec, python, {protocol.VIEWS_FILE: arrays})

    def _shape_sources(self, context: bpy.types.Context) -> list[tuple[bpy.types.Object | None, bpy.types.Image]]:
        """(image Empty or None, image) of each view, the active one first."""
        active = context.active_object
        if self.mode == "SILHOUETTE":
            if self.image:
                return [(active if image_data.is_image_empty(active) else None, self._named_image())]
            return [
                (
                    self._active_empty(context),
                    image_data.checked_image(typing.cast(bpy.types.Image | None, active.data), active.name),
                )
            ]
        empties = [obj for obj in context.selected_objects if image_data.is_image_empty(obj)]
        if image_data.is_image_empty(active):
            empties = [active] + [obj for obj in empties if obj != active]
        if len(empties) < 2:
            raise runner.JobError(
                f"HULL needs 2 or 3 selected image Empties that look along different axes; {len(empties)} selected"
            )
        if len(empties) > 3:
            raise runner.JobError(f"HULL takes 2 or 3 image Empties; {len(empties)} are selected")
        axes = [image_data.rigid_frame(empty)[0][:3, 2] for empty in empties]
        for first in range(len(empties)):
            for second in range(first + 1, len(empties)):
                if abs(float(np.dot(axes[first], axes[second]))) > PARALLEL_COSINE:
                    raise runner.JobError(
                        f"HULL: {empties[first].name} and {empties[second].name} look along the same axis; "
                        "use views from different sides (front, side, top)"
                    )
        return [
            (empty, image_data.checked_image(typing.cast(bpy.types.Image | None, empty.data), empty.name))
            for empty in empties
        ]

    def _active_empty(self, context: bpy.types.Context) -> bpy.types.Object:
        active = context.active_object
        if active is None:
            raise runner.JobError("no active object; select a reference image (Add > Image > Reference)")
        if not image_data.is_image_empty(active):
            kind = active.type.lower().replace("_", " ")
            article = "an" if kind[0] in "aeiou" else "a"
            raise runner.JobError(
                f"the active object {active.name} is {article} {kind}, not a reference image (Add > Image > Reference)"
            )
        return active

    def _named_image(self) -> bpy.types.Image:
        image: bpy.types.Image | None = bpy.data.images.get(self.image)
        if image is None:
            raise runner.JobError(f"there is no image named {self.image!r}")
        return image_data.checked_image(image, self.image)

    def _start_image(self, context: bpy.types.Context) -> runner.WorkerJob:
        if self.image:
            image, empty = self._named_image(), None
        else:
            empty = self._active_empty(context)
            image = image_data.checked_image(typing.cast(bpy.types.Image | None, empty.data), empty.name)
        width = self.resolution or image.size[0]
        check_image_width(width)
        key = empty.name if empty is not None else image.name
        if runner.running(key) is not None:
            raise runner.JobError(f"{key} is already being fitted")
        python = runner.worker_python(worker_python_setting(context))
        pixels = worker_pixels(image_data.display_pixels(image), image)
        self._empty_names = [empty.name] if empty is not None else []
        self._image_name = image.name
        spec = protocol.JobSpec(
            task="fit_image",
            resolution=protocol.MIN_RESOLUTION,
            preset=self.preset,
            device=get_preferences(context).device,
            steps=self.steps,
            width=width,
            height=image_height(width, (image.size[0], image.size[1])),
        )
        return runner.WorkerJob(jobs_root(), key, spec, python, {protocol.IMAGE_FILE: {"pixels": pixels}})

    def apply(self, context: bpy.types.Context, job: runner.WorkerJob) -> None:
        if job.spec.task == "fit_image":
            self._apply_image(context, job)
        else:
            self._apply_shape(context, job)

    def _apply_image(self, context: bpy.types.Context, job: runner.WorkerJob) -> None:
        source: bpy.types.Image | None = bpy.data.images.get(self._image_name)
        if source is None:
            raise runner.JobError(f"the image {self._image_name} was removed during the fit")
        with np.load(job.directory / protocol.RENDERED_FILE) as rendered:
            pixels = rendered["pixels"]
        field = (job.directory / protocol.IMAGE_FIELD_FILE).read_bytes()
        result = write_image(None, source.name + SUFFIX, pixels)
        result[IMAGE_FIELD_KEY] = field
        result["inr_source"] = source.name
        result["inr_source_size"] = list(source.size)
        result["inr_preset"] = job.spec.preset
        empty = bpy.data.objects.get(self._empty_names[0]) if self._empty_names else None
        if empty is not None:
            beside = empty.copy()
            beside.name = empty.name + SUFFIX
            beside.data = result
            rect = image_data.image_rect(empty, source)
            beside.matrix_world = empty.matrix_world @ Matrix.Translation((BESIDE_GAP * (rect[1] - rect[0]), 0, 0))
            for collection in empty.users_collection or [context.scene.collection]:
                collection.objects.link(beside)
            select_only(context, beside)
        self.report(
            {"INFO"},
            f"Fit {source.name}: {result.name} is {pixels.shape[1]}x{pixels.shape[0]}, field {len(field)} bytes",
        )

    def _apply_shape(self, context: bpy.types.Context, job: runner.WorkerJob) -> None:
        empties: list[bpy.types.Object | None] = [bpy.data.objects.get(name) for name in self._empty_names]
        if any(empty is None for empty in empties):
            raise runner.JobError("a reference image Empty was removed during the fit")
        vertices, triangles = read_surface(job)
        field = (job.directory / protocol.FIELD_FILE).read_bytes()
        name = job.key + SUFFIX
        result = new_surface_object(name, vertices, triangles)
        field_store.write_field(result, field, job.key, job.spec.preset, job.spec.resolution)
        result["inr_mode"] = job.spec.mode
        result[image_data.COLOUR_VIEWS_KEY] = self._colour_views
        image_data.paint_colours(result)
        first = empties[0] if empties else None
        collection = first.users_collection[0] if first is not None and first.users_collection else None
        (collection or context.scene.collection).objects.link(result)
        if job.spec.mode == "SILHOUETTE" and first is not None:
            result.matrix_world = first.matrix_world.copy()
        select_only(context, result)
        self.report(
            {"INFO"},
            f"Fit {job.spec.mode.lower()} of {job.key}: {result.name} has {len(vertices)} vertices, "
            f"{len(triangles)} triangles",
        )


def write_image(image: bpy.types.Image | None, name: str, pixels: np.ndarray) -> bpy.types.Image:
    """Write display pixels (height, width, 3 or 4) into ``image`` (a new one if None), packed into the .blend."""
    height, width, channels = pixels.shape
    if image is None:
        image = bpy.data.images.new(name, width, height, alpha=channels == 4)
    elif tuple(image.size) != (width, height):
        image.scale(width, height)
    rgba = np.ones((height, width, 4), np.float32)
    rgba[..., :channels] = pixels
    image.pixels.foreach_set(rgba.ravel())  # type: ignore[attr-defined]  # the stubs type pixels as float
    image.update()
    image.pack()
    return image
