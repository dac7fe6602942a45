"""Fit on points in real Blender: a mesh without faces (File > Import > PLY of a scan), a Point Cloud object,
several of them as one; what Blender sends the worker, and what it refuses before any worker starts."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
from headless import ADDON, mesh_arrays
from meshmetrics import edge_counts
from test_blender import jobs_left, scene_state, worker_processes
from test_ui import draw_everything

from inr_worker import jobs, protocol


def addon_module(bpy, name: str):
    return sys.modules[bpy.context.preferences.addons[ADDON].module + "." + name]


def sphere_points(count: int) -> np.ndarray:
    """``count`` points spread evenly over the unit sphere (a Fibonacci lattice)."""
    index = np.arange(count) + 0.5
    z = 1 - 2 * index / count
    angle = np.pi * (1 + 5**0.5) * index
    ring = np.sqrt(1 - z**2)
    return np.stack([ring * np.cos(angle), ring * np.sin(angle), z], axis=1)


def select_only(bpy, *objects) -> None:
    for other in bpy.context.selected_objects:
        other.select_set(False)
    for obj in objects:
        obj.select_set(True)
    bpy.context.view_layer.objects.active = objects[0]


def faceless_mesh(bpy, name: str, points: np.ndarray, normals=None, colors=None, color_type="FLOAT_COLOR"):
    """A mesh object of ``points`` and nothing else, with a ``normal`` attribute and an active colour
    attribute (RGB, linear) when given; linked to the scene, selected and active."""
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(points))
    mesh.vertices.foreach_set("co", np.asarray(points, np.float32).ravel())
    if normals is not None:
        mesh.attributes.new("normal", "FLOAT_VECTOR", "POINT").data.foreach_set(
            "vector", np.asarray(normals, np.float32).ravel()
        )
    if colors is not None:
        attribute = mesh.color_attributes.new("Col", color_type, "POINT")
        rgba = np.ones((len(points), 4), np.float32)
        rgba[:, :3] = colors
        attribute.data.foreach_set("color", rgba.ravel())
        mesh.color_attributes.active_color = attribute
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    select_only(bpy, obj)
    return obj


def point_cloud(bpy, name: str, points: np.ndarray, normals=None, colors=None, color_type="FLOAT_COLOR"):
    """A Point Cloud object made as a user makes one (Object > Convert > Point Cloud), with the attributes."""
    faceless_mesh(bpy, name, points, normals, colors, color_type)
    assert bpy.ops.object.convert(target="POINTCLOUD") == {"FINISHED"}
    cloud = bpy.context.active_object
    assert cloud.type == "POINTCLOUD" and cloud.name == name and len(cloud.data.points) == len(points)
    return cloud


def write_ply(path, points: np.ndarray, normals: np.ndarray, colors: np.ndarray) -> None:
    """An ASCII PLY of vertices only, with normals and 8-bit colours, as a scanner writes one."""
    header = [
        "ply",
        "format ascii 1.0",
        f"element vertex {len(points)}",
        *(f"property float {axis}" for axis in ("x", "y", "z", "nx", "ny", "nz")),
        *(f"property uchar {channel}" for channel in ("red", "green", "blue")),
        "end_header",
    ]
    rows = [
        " ".join([*(f"{value:.6f}" for value in (*point, *normal)), *(str(value) for value in color)])
        for point, normal, color in zip(points, normals, np.round(colors * 255).astype(int), strict=True)
    ]
    path.write_text("\n".join(header + rows) + "\n")


# --- what Blender sends the worker ---------------------------------------------------------------


def test_the_points_arrays_of_a_point_cloud_and_a_faceless_mesh_in_the_active_ones_space(scene):
    bpy = pytest.importorskip("bpy")
    point_data = addon_module(bpy, "point_data")
    rng = np.random.default_rng(1)
    cloud_points, scan_points = sphere_points(150), sphere_points(120) * 0.5
    cloud_normals, scan_normals = cloud_points * 3, scan_points  # not unit length: sent as unit normals
    cloud_colors, scan_colors = rng.random((150, 3)), rng.random((120, 3))
    cloud = point_cloud(bpy, "cloud", cloud_points, cloud_normals, cloud_colors)
    cloud.location, cloud.rotation_euler, cloud.scale = (1, 2, 3), (0.3, 0, 0.5), (2, 2, 2)
    scan = faceless_mesh(bpy, "scan", scan_points, scan_normals, scan_colors, color_type="BYTE_COLOR")
    scan.location, scan.rotation_euler, scan.scale = (-4, 0, 1), (0, 1.1, 0.2), (1, 3, 0.5)
    bpy.context.view_layer.update()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    assert point_data.is_points(cloud, depsgraph) and point_data.is_points(scan, depsgraph)

    arrays = point_data.joined_points(cloud, [scan], depsgraph)

    assert set(arrays) == {"points", "normals", "colors"}
    assert all(array.dtype == np.float32 and array.shape == (270, 3) for array in arrays.values())
    to_cloud = np.linalg.inv(np.array(cloud.matrix_world)) @ np.array(scan.matrix_world)
    moved = scan_points @ to_cloud[:3, :3].T + to_cloud[:3, 3]
    assert np.allclose(arrays["points"], np.concatenate([cloud_points, moved]), atol=1e-5)
    turned = scan_normals @ np.linalg.inv(to_cloud[:3, :3])  # the inverse transpose, on row vectors
    expected = np.concatenate([cloud_normals, turned])
    assert np.allclose(arrays["normals"], expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)
    # still perpendicular to the scan's surface (an ellipsoid under the non-uniform scale): its tangents turn
    # with the matrix, its normals with the inverse transpose
    tangents = np.cross(scan_points, [0.0, 0.0, 1.0]) @ to_cloud[:3, :3].T
    assert np.abs(np.einsum("ij,ij->i", tangents, arrays["normals"][150:])).max() < 1e-4
    assert np.allclose(arrays["colors"][:150], cloud_colors, atol=1e-6)
    assert np.abs(arrays["colors"][150:] - scan_colors).max() < 0.01  # bytes (sRGB) read back as linear

    plain = faceless_mesh(bpy, "plain", sphere_points(100))  # no normal, no colour: neither is sent
    arrays = point_data.joined_points(cloud, [plain], bpy.context.evaluated_depsgraph_get())
    assert set(arrays) == {"points"} and arrays["points"].shape == (250, 3)


def test_a_mesh_with_faces_and_loose_vertices_is_a_mesh_and_a_faceless_one_is_points(scene):
    bpy = pytest.importorskip("bpy")
    point_data = addon_module(bpy, "point_data")
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    cube.data.vertices.add(500)  # loose vertices beside the faces: the mesh path ignores them
    scan = faceless_mesh(bpy, "scan", sphere_points(200))
    scan.modifiers.new("twice", "ARRAY")
    depsgraph = bpy.context.evaluated_depsgraph_get()
    assert not point_data.is_points(cube, depsgraph) and point_data.is_points(scan, depsgraph)
    assert point_data.point_count(scan, depsgraph) == 400  # after its modifiers
    assert len(point_data.joined_points(scan, [], depsgraph)["points"]) == 400


def test_a_points_fits_colours_become_the_results_active_colour_attribute(scene):
    bpy = pytest.importorskip("bpy")
    mesh_data = addon_module(bpy, "mesh_data")
    mesh = bpy.data.meshes.new("result")
    vertices = sphere_points(4)
    mesh_data.fill_mesh(mesh, vertices, np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]]))
    colors = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.25, 0.5, 0.75]], np.float32)
    mesh_data.add_point_colors(mesh, "Color", colors)
    attribute = mesh.color_attributes["Color"]
    assert (attribute.domain, attribute.data_type) == ("POINT", "FLOAT_COLOR")
    assert mesh.color_attributes.active_color_name == mesh.attributes.default_color_name == "Color"
    rgba = np.empty(16, np.float32)
    attribute.data.foreach_get("color", rgba)
    assert np.array_equal(rgba.reshape(4, 4), np.column_stack([colors, np.ones(4)]))


def test_the_fit_button_is_offered_for_a_faceless_mesh_and_a_point_cloud(scene):
    bpy = pytest.importorskip("bpy")
    faceless_mesh(bpy, "scan", sphere_points(200))
    assert draw_everything(bpy).operators("inr.fit_mesh")[0].enabled
    point_cloud(bpy, "cloud", sphere_points(200))
    assert draw_everything(bpy).operators("inr.fit_mesh")[0].enabled


# --- refused in Blender, before any worker or job file ------------------------------------------


def _too_few(bpy):
    faceless_mesh(bpy, "scan", sphere_points(99))
    return "scan: only 99 points; a points fit needs at least 100"


def _too_few_in_a_point_cloud(bpy):
    point_cloud(bpy, "cloud", sphere_points(99))
    return "cloud: only 99 points; a points fit needs at least 100"


def _nan(bpy):
    points = sphere_points(200)
    points[7] = np.nan
    faceless_mesh(bpy, "scan", points)
    return "scan: 1 of 200 points have NaN or infinite coordinates"


def _infinite_in_a_point_cloud(bpy):
    points = sphere_points(200)
    points[[3, 9], 2] = np.inf
    point_cloud(bpy, "cloud", points)
    return "cloud: 2 of 200 points have NaN or infinite coordinates"


def _one_plane(bpy):
    points = sphere_points(300)
    points[:, 2] = 0
    faceless_mesh(bpy, "scan", points)
    return "scan: all points lie on one plane; a points fit needs a solid's surface"


def _one_place(bpy):
    faceless_mesh(bpy, "scan", np.tile([1.0, 2.0, 3.0], (300, 1)))
    return "scan: all points are at one place; a points fit needs a surface's samples"


def _one_line(bpy):
    faceless_mesh(bpy, "scan", np.outer(np.linspace(-1, 1, 300), [1.0, 2.0, 3.0]))
    return "scan: all points lie on one line; a points fit needs a solid's surface"


def _flat_under_its_transform(bpy):
    """A disc, and a sphere that its transform flattens into the disc's plane."""
    disc = faceless_mesh(bpy, "disc", sphere_points(300) * [1, 1, 0])
    ball = faceless_mesh(bpy, "ball", sphere_points(300))
    ball.location, ball.scale = (3, 0, 0), (1, 1, 0)
    select_only(bpy, disc, ball)
    return "disc, ball: all points lie on one plane; a points fit needs a solid's surface"


def _faced_mesh_and_points(bpy):
    scan = faceless_mesh(bpy, "scan", sphere_points(300))
    bpy.ops.mesh.primitive_cube_add(location=(3, 0, 0))
    select_only(bpy, bpy.context.active_object, scan)
    return "Cube has faces and scan has none: fit meshes and point clouds separately"


def _points_and_faced_meshes(bpy):
    cloud = point_cloud(bpy, "cloud", sphere_points(300))
    bpy.ops.mesh.primitive_cube_add(location=(3, 0, 0))
    bpy.ops.mesh.primitive_monkey_add(location=(-3, 0, 0))
    select_only(bpy, cloud, *[obj for obj in bpy.data.objects if obj.name in ("Cube", "Suzanne")])
    return "Cube, Suzanne have faces and cloud has none: fit meshes and point clouds separately"


@pytest.mark.parametrize(
    "case",
    [
        _too_few,
        _too_few_in_a_point_cloud,
        _nan,
        _infinite_in_a_point_cloud,
        _one_plane,
        _one_place,
        _one_line,
        _flat_under_its_transform,
        _faced_mesh_and_points,
        _points_and_faced_meshes,
    ],
)
def test_bad_points_are_one_clear_error_and_change_nothing(scene, case):
    bpy = pytest.importorskip("bpy")
    message = case(bpy)
    bpy.context.view_layer.update()  # the transforms set by the case, in matrix_world
    before = scene_state(bpy)
    with pytest.raises(RuntimeError, match=re.escape(message)) as raised:
        bpy.ops.inr.fit_mesh(resolution=32)
    assert str(raised.value).strip() == f"Error: Fit: {message}"
    assert scene_state(bpy) == before
    assert not worker_processes() and not jobs_left(bpy)


@pytest.mark.parametrize(("resolution", "advice"), [(2048, "choose a lower resolution"), (16, "use fewer points")])
def test_points_too_many_for_memory_are_refused_from_their_count(scene, resolution, advice):
    """Enough points that the estimate exceeds the memory free now, all at the origin: had their positions been
    read and checked first, the message would be "all points are at one place"."""
    bpy = pytest.importorskip("bpy")
    memory = addon_module(bpy, "inr_worker.memory")
    free = memory.available_memory()
    if free is None:
        pytest.skip("this system does not say how much memory is free")
    lowest = memory.estimate_memory_for_points(0, protocol.MIN_RESOLUTION)
    over = (free - memory.estimate_memory_for_points(0, resolution)) // memory.BYTES_PER_POINT
    count = max(protocol.MIN_POINTS, over) + (free - lowest) // (4 * memory.BYTES_PER_POINT)  # a quarter more
    if (
        resolution != protocol.MIN_RESOLUTION
        and memory.estimate_memory_for_points(count, protocol.MIN_RESOLUTION) > free
    ):
        pytest.skip("so little memory is free that even the fewest points this needs are too many")
    if count > 40_000_000:
        pytest.skip(f"{count} points would take too long to make here")
    mesh = bpy.data.meshes.new("huge")
    mesh.vertices.add(count)
    huge = bpy.data.objects.new("huge", mesh)
    scene.collection.objects.link(huge)
    select_only(bpy, huge)
    before = scene_state(bpy)
    pattern = (
        f"Fit: fitting {count:,} points at resolution {resolution} needs about .* GB of memory, but only .* is free"
    )
    with pytest.raises(RuntimeError, match=pattern) as raised:
        bpy.ops.inr.fit_mesh(resolution=resolution)
    assert str(raised.value).strip().endswith(advice)
    assert scene_state(bpy) == before
    assert not worker_processes() and not jobs_left(bpy)
    bpy.data.objects.remove(huge)
    bpy.data.meshes.remove(mesh)


# --- end to end, with the worker ----------------------------------------------------------------


@pytest.mark.skipif(not hasattr(jobs, "fit_points"), reason="the worker cannot fit points yet (inr_worker.jobs)")
def test_fit_a_scanned_sphere_from_a_ply(scene, tmp_path):
    bpy = pytest.importorskip("bpy")
    points = sphere_points(2000)
    colors = np.stack([(points[:, 2] + 1) / 2, np.zeros(2000), (1 - points[:, 2]) / 2], axis=1)  # red top, blue bottom
    write_ply(tmp_path / "scan.ply", points, points, colors)
    assert bpy.ops.wm.ply_import(filepath=str(tmp_path / "scan.ply")) == {"FINISHED"}
    scan = bpy.context.active_object
    assert scan.type == "MESH" and len(scan.data.vertices) == 2000 and not scan.data.polygons
    scan.location, scan.scale = (1.0, -2.0, 0.5), (2.0, 2.0, 2.0)

    assert bpy.ops.inr.fit_mesh(resolution=32, preset="FAST") == {"FINISHED"}

    result = bpy.context.active_object
    assert result.name == "scan_inr" and result.select_get() and not scan.select_get()
    assert np.allclose(np.array(result.matrix_world), np.array(scan.matrix_world))
    assert result["inr_source"] == "scan" and result["inr_resolution"] == 32
    vertices, triangles = mesh_arrays(result)
    assert edge_counts(triangles) == (0, 0)  # closed and manifold
    radii = np.linalg.norm(vertices, axis=1)
    assert abs(np.median(radii) - 1) < 0.1 and radii.max() < 1.2, (radii.min(), radii.max())
    if "Color" in result.data.color_attributes:  # the worker sent the scan's colours on
        attribute = result.data.color_attributes["Color"]
        assert attribute.domain == "POINT" and result.data.color_attributes.active_color_name == "Color"
        rgba = np.empty(len(vertices) * 4, np.float32)
        attribute.data.foreach_get("color", rgba)
        top = vertices[:, 2] > 0.5
        assert rgba.reshape(-1, 4)[top, 0].mean() > rgba.reshape(-1, 4)[top, 2].mean()
    assert not worker_processes() and not jobs_left(bpy)
