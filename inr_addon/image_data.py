"""Reference images out of Blender as numpy arrays: pixels as they display, silhouette masks, where an
image Empty draws its image, and the reference colours painted onto a fitted solid."""

from __future__ import annotations

import io
import os
import typing

import bpy
import numpy as np

from . import runner

MASK_SIDE = 1024  # masks sent to the worker have at most this many pixels a side
COLOUR_SIDE = 512  # colour views stored with a solid, for painting it after each extraction
COLOUR_VIEWS_KEY = "_inr_colour_views"
COLOUR_ATTRIBUTE = "Color"
ALPHA_MEANINGFUL_FRACTION = 0.001  # alpha is used for the mask when at least this share of pixels is transparent


def is_image_empty(obj: bpy.types.Object | None) -> bool:
    return obj is not None and obj.type == "EMPTY" and obj.empty_display_type == "IMAGE"


def checked_image(image: bpy.types.Image | None, owner: str) -> bpy.types.Image:
    """The image, loaded, or a JobError that says why it cannot be used."""
    if image is None:
        raise runner.JobError(f"{owner} has no image; pick one in its Object Data properties")
    if image.source in ("FILE", "SEQUENCE", "MOVIE") and image.packed_file is None:
        path = bpy.path.abspath(image.filepath, library=image.library)
        if not os.path.isfile(path):
            raise runner.JobError(f"the image {image.name} cannot be read: its file {path} is missing and not packed")
    width, height = image.size
    if width * height == 0:
        raise runner.JobError(f"the image {image.name} cannot be read: Blender finds no pixels in it")
    if width * height < 4 or min(width, height) < 2:
        raise runner.JobError(f"the image {image.name} is {width}x{height} pixels; it needs at least 2x2")
    return image


def _is_linear(image: bpy.types.Image) -> bool:
    """Whether the pixel values Blender hands out are linear light (then they are encoded for display)."""
    settings = image.colorspace_settings
    if settings.is_data:
        return False
    if image.is_float:
        return True  # float buffers hold scene-linear values
    name = settings.name.lower()
    return "linear" in name or "aces" in name


def linear_to_display(values: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (linear light to display values), clipped to [0, 1], in place."""
    np.clip(values, 0.0, 1.0, out=values)
    low = values <= 0.0031308
    encoded = 1.055 * np.power(values, 1 / 2.4) - 0.055
    encoded[low] = values[low] * 12.92
    values[...] = encoded
    return values


def display_pixels(image: bpy.types.Image) -> np.ndarray:
    """The image as it displays: (height, width, 4) float32 in [0, 1], row 0 at the bottom."""
    width, height = image.size
    channels = image.channels
    flat = np.empty(width * height * channels, np.float32)
    image.pixels.foreach_get(flat)  # type: ignore[attr-defined]  # the stubs type pixels as float
    pixels = flat.reshape(height, width, channels)
    if channels < 3:
        grey = pixels[..., :1]
        alpha = pixels[..., 1:2] if channels == 2 else np.ones_like(grey)
        pixels = np.concatenate([grey, grey, grey, alpha], axis=-1)
    elif channels == 3:
        pixels = np.concatenate([pixels, np.ones_like(pixels[..., :1])], axis=-1)
    if _is_linear(image):
        for start in range(0, height, 256):  # in bands, to bound the temporaries for huge images
            linear_to_display(pixels[start : start + 256, :, :3])
    np.clip(pixels, 0.0, 1.0, out=pixels)
    return pixels


def has_meaningful_alpha(pixels: np.ndarray) -> bool:
    return bool((pixels[..., 3] < 0.5).mean() >= ALPHA_MEANINGFUL_FRACTION)


def silhouette_mask(pixels: np.ndarray, invert: bool, name: str) -> np.ndarray:
    """Alpha where it is meaningful, else dark-on-light luminance; ``invert`` flips it. Raises if empty or full."""
    if has_meaningful_alpha(pixels):
        mask = pixels[..., 3] >= 0.5
    else:
        luminance = pixels[..., 0] * 0.2126 + pixels[..., 1] * 0.7152 + pixels[..., 2] * 0.0722
        mask = luminance < 0.5
    if invert:
        mask = ~mask
    if not mask.any():
        raise runner.JobError(f"no silhouette found in {name}: the mask is empty (try Invert)")
    if mask.all():
        raise runner.JobError(f"no silhouette found in {name}: the mask covers the whole image (try Invert)")
    return mask


def reduce(array: np.ndarray, side: int) -> np.ndarray:
    """Box-filter ``array`` (H, W, ...) so that its longer side is at most ``side`` pixels."""
    factor = int(np.ceil(max(array.shape[:2]) / side))
    if factor <= 1:
        return array
    height, width = array.shape[0] // factor * factor, array.shape[1] // factor * factor
    cropped = array[:height, :width].astype(np.float32)
    return cropped.reshape(height // factor, factor, width // factor, factor, *array.shape[2:]).mean((1, 3))


def image_rect(obj: bpy.types.Object | None, image: bpy.types.Image) -> np.ndarray:
    """(x0, x1, y0, y1): where the Empty draws the image in its local XY plane (as Blender's overlay does).

    Without an Empty: an image one unit across its longer side, centred on the origin.
    """
    width, height = image.size
    aspect_x, aspect_y = image.display_aspect[0], image.display_aspect[1]
    scaled_x, scaled_y = width * aspect_x, height * aspect_y
    fraction_x, fraction_y = (1.0, scaled_y / scaled_x) if scaled_x >= scaled_y else (scaled_x / scaled_y, 1.0)
    size = obj.empty_display_size if obj is not None else 1.0
    offset = tuple(obj.empty_image_offset) if obj is not None else (-0.5, -0.5)
    x0, y0 = size * fraction_x * offset[0], size * fraction_y * offset[1]
    return np.array([x0, x0 + size * fraction_x, y0, y0 + size * fraction_y])


def rigid_frame(obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """The Empty's world matrix without its scale (4, 4), and its scale (3,)."""
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    scale = np.linalg.norm(matrix[:3, :3], axis=0)
    rigid = matrix.copy()
    rigid[:3, :3] /= np.where(scale > 0, scale, 1.0)
    return rigid, scale


def colour_views_bytes(views: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bytes:
    """Pack (display RGB, to_common, rect) of each view for :func:`paint_colours` (npz, no pickle)."""
    arrays = {}
    for index, (rgb, to_common, rect) in enumerate(views):
        small = reduce(rgb, COLOUR_SIDE)
        arrays[f"rgb_{index}"] = (np.clip(small, 0, 1) * 255 + 0.5).astype(np.uint8)
        arrays[f"to_common_{index}"] = to_common
        arrays[f"rect_{index}"] = rect
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def paint_colours(obj: bpy.types.Object) -> None:
    """Give each vertex the colour of the reference view that sees it most head-on (a point colour attribute)."""
    data = obj.get(COLOUR_VIEWS_KEY)
    if not isinstance(data, bytes):
        return
    mesh = typing.cast(bpy.types.Mesh, obj.data)
    count = len(mesh.vertices)
    positions = np.empty(count * 3, np.float32)
    mesh.vertices.foreach_get("co", positions)
    normals = np.empty(count * 3, np.float32)
    mesh.vertex_normals.foreach_get("vector", normals)
    positions, normals = positions.reshape(-1, 3).astype(np.float64), normals.reshape(-1, 3)
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        views = [
            (arrays[f"rgb_{i}"], arrays[f"to_common_{i}"], arrays[f"rect_{i}"])
            for i in range(sum(1 for name in arrays.files if name.startswith("rgb_")))
        ]
    facing = np.stack([np.abs(normals @ to_common[:3, 2]) for _, to_common, _ in views], axis=1)
    chosen = facing.argmax(1)
    colours = np.ones((count, 4), np.float32)
    for index, (rgb, to_common, rect) in enumerate(views):
        which = chosen == index
        plane = (positions[which] - to_common[:3, 3]) @ to_common[:3, :3]
        height, width = rgb.shape[:2]
        column = np.clip(((plane[:, 0] - rect[0]) / (rect[1] - rect[0]) * width).astype(np.int64), 0, width - 1)
        row = np.clip(((plane[:, 1] - rect[2]) / (rect[3] - rect[2]) * height).astype(np.int64), 0, height - 1)
        colours[which, :3] = rgb[row, column] / 255.0
    attribute = typing.cast(bpy.types.ByteColorAttribute | None, mesh.color_attributes.get(COLOUR_ATTRIBUTE))
    if attribute is None or attribute.domain != "POINT" or attribute.data_type != "BYTE_COLOR":
        if attribute is not None:
            mesh.color_attributes.remove(attribute)
        attribute = typing.cast(
            bpy.types.ByteColorAttribute, mesh.color_attributes.new(COLOUR_ATTRIBUTE, "BYTE_COLOR", "POINT")
        )
    attribute.data.foreach_set("color_srgb", colours.ravel())
    mesh.color_attributes.active_color = attribute
    mesh.color_attributes.render_color_index = mesh.color_attributes.active_color_index
