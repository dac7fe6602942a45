"""Reference images in real Blender: inr.fit_image in its three modes, inr.resample_image, bad input."""

from __future__ import annotations

import math
import sys

import igl
import numpy as np
import pytest
from conftest import MESHES
from headless import ADDON, mesh_arrays
from meshmetrics import edge_counts, load
from test_blender import jobs_left, scene_state, worker_processes


def new_image(bpy, name: str, rgba: np.ndarray, float_buffer: bool = False):
    """An image datablock holding ``rgba`` (H, W, 4), row 0 at the bottom."""
    height, width = rgba.shape[:2]
    image = bpy.data.images.new(name, width, height, alpha=True, float_buffer=float_buffer)
    image.pixels.foreach_set(np.ascontiguousarray(rgba, np.float32).ravel())
    return image


def new_reference(bpy, name: str, image, size: float = 2.0, rotation=(0.0, 0.0, 0.0), location=(0.0, 0.0, 0.0)):
    """An image Empty as Add > Image > Reference makes it, active and selected."""
    empty = bpy.data.objects.new(name, None)
    empty.empty_display_type = "IMAGE"
    empty.data = image
    empty.empty_display_size = size
    empty.rotation_euler = [math.radians(angle) for angle in rotation]
    empty.location = location
    bpy.context.scene.collection.objects.link(empty)
    bpy.context.view_layer.update()
    bpy.context.view_layer.objects.active = empty
    empty.select_set(True)
    return empty


def pixel_centres(count: int, half: float) -> np.ndarray:
    return -half + (np.arange(count) + 0.5) * 2 * half / count


def occupancy(vertices: np.ndarray, triangles: np.ndarray, axes: list[np.ndarray]) -> np.ndarray:
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return (igl.fast_winding_number(vertices, triangles, points) > 0.5).reshape([len(axis) for axis in axes])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_silhouette_of_a_disc_is_a_ball_in_the_empty_frame_with_its_colours(scene):
    bpy = pytest.importorskip("bpy")
    side, radius_pixels = 96, 36
    y, x = np.meshgrid(np.arange(side) + 0.5, np.arange(side) + 0.5, indexing="ij")
    disc = (x - side / 2) ** 2 + (y - side / 2) ** 2 < radius_pixels**2
    rgba = np.zeros((side, side, 4), np.float32)
    rgba[disc] = (0.8, 0.1, 0.1, 1.0)  # a red disc on transparent pixels: the mask comes from alpha
    empty = new_reference(bpy, "Disc", new_image(bpy, "disc", rgba), 2.0, (90, 0, 30), (1.0, 2.0, 3.0))

    assert bpy.ops.inr.fit_image(mode="SILHOUETTE", resolution=48, preset="FAST", steps=150) == {"FINISHED"}
    result = bpy.context.active_object
    assert result.name == "Disc_inr" and result.select_get() and not empty.select_get()
    assert result.users_collection[0] == empty.users_collection[0]
    assert np.allclose(np.array(result.matrix_world), np.array(empty.matrix_world), atol=1e-6)
    vertices, triangles = mesh_arrays(result)
    assert edge_counts(triangles) == (0, 0)
    radius = radius_pixels / side * 2.0
    axis = pixel_centres(48, 1.0)
    solid = occupancy(vertices, triangles, [axis, axis, axis])
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1)
    assert iou(solid, np.linalg.norm(grid, axis=-1) <= radius) > 0.92  # 0.98 at full scale: README
    projected = occupancy(vertices, triangles, [pixel_centres(side, 1.0), pixel_centres(side, 1.0), axis]).any(2)
    assert iou(projected.T, disc) > 0.97  # mask rows are y, columns x

    colours = np.empty(len(result.data.vertices) * 4, np.float32)
    result.data.color_attributes["Color"].data.foreach_get("color_srgb", colours)
    assert np.allclose(np.median(colours.reshape(-1, 4)[:, :3], axis=0), (0.8, 0.1, 0.1), atol=0.02)

    assert bpy.ops.inr.extract_mesh(resolution=24) == {"FINISHED"}
    assert len(result.data.color_attributes["Color"].data) == len(result.data.vertices) < len(vertices)
    assert not worker_processes() and not jobs_left(bpy)


def spot_views(bpy, pixels: int, size: float):
    """Spot (scaled to ``size``) and image Empties of its silhouettes from the front, the right and the top."""
    vertices, triangles = load(str(MESHES / "spot.obj"))
    vertices = (vertices - (vertices.min(0) + vertices.max(0)) / 2) / (vertices.max(0) - vertices.min(0)).max() * size
    axis = pixel_centres(pixels, 0.55 * size)
    solid = occupancy(vertices, triangles, [axis, axis, axis])
    masks = {"front": solid.any(1).T, "right": solid.any(0).T, "top": solid.any(2).T}  # rows z, z, y
    rotations = {"front": (90, 0, 0), "right": (90, 0, 90), "top": (0, 0, 0)}
    empties = []
    for name, mask in masks.items():
        rgba = np.ones((pixels, pixels, 4), np.float32)
        rgba[mask, :3] = 0.05  # dark on light, opaque: the mask comes from luminance
        empties.append(new_reference(bpy, name, new_image(bpy, name, rgba), 1.1 * size, rotations[name]))
    return masks, axis, empties


def test_hull_of_three_views_agrees_with_every_silhouette(scene):
    bpy = pytest.importorskip("bpy")
    masks, axis, empties = spot_views(bpy, 64, 2.0)
    bpy.context.view_layer.objects.active = empties[0]
    assert bpy.ops.inr.fit_image(mode="HULL", resolution=64, preset="FAST", steps=200) == {"FINISHED"}
    result = bpy.context.active_object
    assert result.name == "front_inr" and np.allclose(np.array(result.matrix_world), np.eye(4), atol=1e-6)
    vertices, triangles = mesh_arrays(result)
    assert edge_counts(triangles) == (0, 0)
    fitted = occupancy(vertices, triangles, [axis, axis, axis])
    exact = masks["front"].T[:, None, :] & masks["right"].T[None, :, :] & masks["top"].T[:, :, None]
    assert iou(fitted, exact) > 0.9
    for projection_axis, name in ((1, "front"), (0, "right"), (2, "top")):
        assert iou(fitted.any(projection_axis).T, masks[name]) > 0.93, name
    assert "Color" in result.data.color_attributes
    assert not worker_processes() and not jobs_left(bpy)


def test_image_mode_writes_a_packed_image_that_resamples_from_its_field_alone(scene, tmp_path):
    bpy = pytest.importorskip("bpy")
    height, width = 24, 40
    y, x = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    linear = np.stack([x, y, 0.5 * (x + y), np.ones_like(x)], -1) ** 2.2  # a smooth ramp, stored linear
    source = new_image(bpy, "ramp", linear, float_buffer=True)
    empty = new_reference(bpy, "Ramp", source, 2.0)
    assert bpy.ops.inr.fit_image(mode="IMAGE", preset="FAST", steps=300) == {"FINISHED"}
    fitted = bpy.data.images["ramp_inr"]
    assert tuple(fitted.size) == (width, height) and fitted.packed_file is not None
    assert bpy.context.active_object.data == fitted and bpy.context.active_object != empty
    pixels = np.empty(width * height * 4, np.float32)
    fitted.pixels.foreach_get(pixels)
    displayed = np.clip(np.stack([x, y, 0.5 * (x + y)], -1), 0, 1)  # sRGB-encoding undoes the 2.2 power
    psnr = -10 * math.log10(float(((pixels.reshape(height, width, 4)[..., :3] - displayed) ** 2).mean()))
    assert psnr > 30, psnr

    path = tmp_path / "image.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    bpy.data.images.remove(bpy.data.images["ramp"])
    assert bpy.ops.inr.resample_image(image="ramp_inr", resolution=3 * width) == {"FINISHED"}
    assert tuple(bpy.data.images["ramp_inr"].size) == (3 * width, 3 * height)
    assert not worker_processes() and not jobs_left(bpy)


def _no_image(bpy):
    new_reference(bpy, "Empty", None)
    return {"mode": "SILHOUETTE"}, "Empty has no image"


def _missing_file(bpy):
    image = bpy.data.images.new("gone", 8, 8)
    image.source, image.filepath = "FILE", "/nonexistent/gone.png"
    new_reference(bpy, "Gone", image)
    return {"mode": "SILHOUETTE"}, "its file /nonexistent/gone.png is missing and not packed"


def _one_pixel(bpy):
    new_reference(bpy, "Dot", new_image(bpy, "dot", np.zeros((1, 1, 4))))
    return {"mode": "IMAGE"}, "is 1x1 pixels; it needs at least 2x2"


def _empty_mask(bpy):
    new_reference(bpy, "White", new_image(bpy, "white", np.ones((16, 16, 4))))
    return {"mode": "SILHOUETTE"}, "no silhouette found in white: the mask is empty"


def _full_mask(bpy):
    new_reference(bpy, "Black", new_image(bpy, "black", np.tile([0.0, 0.0, 0.0, 1.0], (16, 16, 1))))
    return {"mode": "SILHOUETTE"}, "no silhouette found in black: the mask covers the whole image"


def _hull_one_view(bpy):
    rgba = np.ones((16, 16, 4))
    rgba[4:12, 4:12, :3] = 0
    new_reference(bpy, "Front", new_image(bpy, "front", rgba), rotation=(90, 0, 0))
    return {"mode": "HULL"}, "HULL needs 2 or 3 selected image Empties that look along different axes; 1 selected"


def _hull_parallel_views(bpy):
    rgba = np.ones((16, 16, 4))
    rgba[4:12, 4:12, :3] = 0
    new_reference(bpy, "Front", new_image(bpy, "front", rgba), rotation=(90, 0, 0))
    new_reference(bpy, "Back", new_image(bpy, "back", rgba), rotation=(90, 0, 180))
    return {"mode": "HULL"}, "HULL: Back and Front look along the same axis"


def _mesh_active(bpy):
    bpy.ops.mesh.primitive_cube_add()
    return {"mode": "SILHOUETTE"}, "the active object Cube is a mesh, not a reference image"


def _zero_thickness(bpy):
    rgba = np.ones((16, 16, 4))
    rgba[4:12, 4:12, :3] = 0
    new_reference(bpy, "Square", new_image(bpy, "square", rgba))
    return {"mode": "SILHOUETTE", "thickness": 0.0}, "thickness 0 must be above 0"


@pytest.mark.parametrize(
    "make",
    [
        _no_image,
        _missing_file,
        _one_pixel,
        _empty_mask,
        _full_mask,
        _hull_one_view,
        _hull_parallel_views,
        _mesh_active,
        _zero_thickness,
    ],
)
def test_bad_input_is_one_line_and_leaves_the_scene_alone(scene, make):
    bpy = pytest.importorskip("bpy")
    arguments, message = make(bpy)
    before = scene_state(bpy)
    with pytest.raises(RuntimeError, match=message) as raised:
        bpy.ops.inr.fit_image(**arguments)
    assert "\n" not in str(raised.value).strip()
    assert scene_state(bpy) == before
    assert not worker_processes() and not jobs_left(bpy)


def test_resample_needs_a_fitted_image(scene):
    bpy = pytest.importorskip("bpy")
    new_image(bpy, "plain", np.ones((4, 4, 4)))
    with pytest.raises(RuntimeError, match="plain has no fitted field; make one with Fit in Image mode"):
        bpy.ops.inr.resample_image(image="plain", resolution=8)


def test_a_packed_16_bit_png_is_read_as_it_displays_after_its_file_is_gone(scene, tmp_path):
    bpy = pytest.importorskip("bpy")
    from PIL import Image

    image_data = sys.modules[ADDON].image_data
    ramp = np.tile(np.linspace(0, 65535, 33).astype(np.uint16), (20, 1))  # 33 x 20, grey, 16 bits
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    image = bpy.data.images.load(str(path))
    image.pack()
    path.unlink()
    assert image.is_float  # Blender keeps 16-bit PNGs as linear floats
    assert image_data.checked_image(image, "ramp16") == image
    pixels = image_data.display_pixels(image)
    assert pixels.shape == (20, 33, 4)
    assert np.allclose(pixels[..., 0], ramp[::-1] / 65535, atol=2e-3)  # back to the file's (display) values
