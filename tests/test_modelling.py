"""Modelling with fields in real Blender with the real worker: fitting several objects as one,
combine, offset, shell and morph, chains that stand alone, and bad input. One fit per module."""

from __future__ import annotations

import json

import igl
import numpy as np
import pytest
from headless import mesh_arrays
from meshmetrics import edge_counts
from test_blender import jobs_left, scene_state, worker_processes

from inr_worker import protocol

RESOLUTION = 40
FIELD_KEY = "_inr_field"


def world_arrays(obj) -> tuple[np.ndarray, np.ndarray]:
    vertices, triangles = mesh_arrays(obj)
    matrix = np.array(obj.matrix_world)
    return vertices @ matrix[:3, :3].T + matrix[:3, 3], triangles


def inside(mesh: tuple[np.ndarray, np.ndarray], points: np.ndarray) -> np.ndarray:
    return np.abs(igl.fast_winding_number(mesh[0], mesh[1], points)) > 0.5


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def box_points(*meshes, count: int = 60_000) -> np.ndarray:
    low = np.min([m[0].min(0) for m in meshes], 0)
    high = np.max([m[0].max(0) for m in meshes], 0)
    pad = (high - low) * 0.05
    return np.random.default_rng(0).uniform(low - pad, high + pad, (count, 3))


def components(triangles: np.ndarray) -> int:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]]])
    size = triangles.max() + 1
    return connected_components(coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(size, size)))[0]


@pytest.fixture(scope="module")
def fitted(addon):
    """Fit a sphere and a cube, selected together, as one field; returns what is needed to rebuild it."""
    bpy = addon
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_cube_add(size=1.2, location=(0.9, 0.0, 0.0), rotation=(0.0, 0.0, 0.5))
    cube = bpy.context.active_object
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.8, location=(0.0, 0.0, 0.2))
    sphere = bpy.context.active_object
    cube.select_set(True)
    sources = [world_arrays(sphere), world_arrays(cube)]
    assert bpy.ops.inr.fit_mesh(resolution=RESOLUTION, preset="FAST", steps=150) == {"FINISHED"}
    result = bpy.context.active_object
    assert result.name == "Sphere_inr"
    assert np.allclose(np.array(result.matrix_world), np.array(sphere.matrix_world))
    return {
        "field": bytes(result[FIELD_KEY]),
        "mesh": mesh_arrays(result),
        "sources": sources,
        "fitted": world_arrays(result),
    }


def field_object(bpy, fitted: dict, name: str, location=(0, 0, 0), rotation=(0, 0, 0), scale=(1, 1, 1)):
    """A field object like one made by Fit, from the module's fitted field."""
    mesh = bpy.data.meshes.new(name)
    vertices, triangles = fitted["mesh"]
    mesh.from_pydata(vertices.tolist(), [], triangles.tolist())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj[FIELD_KEY] = fitted["field"]
    obj["inr_source"], obj["inr_preset"], obj["inr_resolution"] = "Sphere", "FAST", RESOLUTION
    obj.location, obj.rotation_euler, obj.scale = location, rotation, scale
    bpy.context.view_layer.update()
    return obj


def select(bpy, active, *others) -> None:
    for obj in bpy.context.selected_objects:
        obj.select_set(False)
    for obj in (active, *others):
        obj.select_set(True)
    bpy.context.view_layer.objects.active = active


def test_several_selected_meshes_fit_as_one_solid(fitted):
    points = box_points(*fitted["sources"])
    expected = inside(fitted["sources"][0], points) | inside(fitted["sources"][1], points)
    assert iou(inside(fitted["fitted"], points), expected) > 0.93
    assert edge_counts(fitted["fitted"][1]) == (0, 0)
    assert components(fitted["fitted"][1]) == 1  # no pocket where the parts' faces crossed inside


def test_booleans_match_the_exact_boolean_and_follow_the_transforms(scene, fitted):
    bpy = pytest.importorskip("bpy")
    a = field_object(bpy, fitted, "A")
    b = field_object(bpy, fitted, "B", location=(0.7, 0.5, 0.3), rotation=(0.4, 0.0, 1.1))
    exact = {
        "UNION": lambda x, y: x | y,
        "DIFFERENCE": lambda x, y: x & ~y,
        "INTERSECT": lambda x, y: x & y,
    }
    for step, operation in enumerate(exact):
        if step == 2:  # move and scale the other input: the result follows
            b.location, b.scale = (0.2, -0.6, 0.1), (1.3, 0.8, 1.0)
            bpy.context.view_layer.update()
        select(bpy, a, b)
        assert bpy.ops.inr.combine(operation=operation, blend=0.0, resolution=RESOLUTION) == {"FINISHED"}
        result = bpy.context.active_object
        assert result.name == f"A_{operation.lower()}" and result.select_get() and not a.select_get()
        mesh_a, mesh_b, made = world_arrays(a), world_arrays(b), world_arrays(result)
        points = box_points(mesh_a, mesh_b)
        score = iou(inside(made, points), exact[operation](inside(mesh_a, points), inside(mesh_b, points)))
        assert score > 0.96, (operation, score)
        assert edge_counts(made[1]) == (0, 0)
    assert not worker_processes() and not jobs_left(bpy)


def test_blend_changes_the_surface_only_near_the_intersection(scene, fitted):
    bpy = pytest.importorskip("bpy")
    a = field_object(bpy, fitted, "A")
    b = field_object(bpy, fitted, "B", location=(0.0, 0.0, 1.1), rotation=(0.0, 1.2, 0.0))
    radius = 0.12
    surfaces = {}
    for blend in (0.0, radius):
        select(bpy, a, b)
        assert bpy.ops.inr.combine(operation="UNION", blend=blend, resolution=RESOLUTION) == {"FINISHED"}
        surfaces[blend] = world_arrays(bpy.context.active_object)
    sharp, blended = surfaces[0.0], surfaces[radius]
    moved = np.sqrt(igl.point_mesh_squared_distance(blended[0], *sharp)[0])
    cell = np.ptp(sharp[0], 0).max() / RESOLUTION
    near_a = np.abs(igl.signed_distance(blended[0], *world_arrays(a))[0])
    near_b = np.abs(igl.signed_distance(blended[0], *world_arrays(b))[0])
    near_curve = (near_a < 2 * radius) & (near_b < 2 * radius)
    assert moved.max() > radius / 4  # the fillet is there
    assert moved[~near_curve].max() < cell, moved[~near_curve].max()  # and nowhere else
    assert edge_counts(blended[1]) == (0, 0)


def test_offset_and_shell(scene, fitted):
    bpy = pytest.importorskip("bpy")
    source = field_object(bpy, fitted, "S", location=(2, 0, 0), scale=(1.5, 1.5, 1.5))
    reference = world_arrays(source)
    cell = np.ptp(reference[0], 0).max() / RESOLUTION
    for distance in (0.1, -0.1):
        select(bpy, source)
        assert bpy.ops.inr.offset(distance=distance, resolution=RESOLUTION) == {"FINISHED"}
        grown = world_arrays(bpy.context.active_object)
        signed = igl.signed_distance(grown[0], *reference)[0]
        assert abs(np.mean(signed) - distance) < cell and np.abs(signed - distance).mean() < cell
        assert edge_counts(grown[1]) == (0, 0)
    wall = 0.1
    select(bpy, source)
    assert bpy.ops.inr.offset(shell=wall, resolution=2 * RESOLUTION) == {"FINISHED"}
    shell = bpy.context.active_object
    assert shell.name == "S_shell"
    vertices, triangles = world_arrays(shell)
    signed = igl.signed_distance(vertices, *reference)[0]
    cavity = signed < -wall / 2
    assert components(triangles) == 2 and cavity.any() and edge_counts(triangles) == (0, 0)
    assert abs(np.median(-signed[cavity]) - wall) < 0.1 * wall, np.median(-signed[cavity])


def test_morph_factors_and_re_extraction_at_another_factor(scene, fitted):
    bpy = pytest.importorskip("bpy")
    a = field_object(bpy, fitted, "A")
    b = field_object(bpy, fitted, "B", location=(0.3, 0.2, 0.0), rotation=(0.0, 0.0, 1.5), scale=(0.8, 0.8, 1.2))
    select(bpy, a, b)
    assert bpy.ops.inr.morph(factor=0.0, resolution=RESOLUTION) == {"FINISHED"}
    morph = bpy.context.active_object
    assert morph.name == "A_morph" and morph["inr_factor"] == 0.0
    points = box_points(world_arrays(a), world_arrays(b))
    for factor, target in ((0.0, a), (1.0, b)):
        assert bpy.ops.inr.extract_mesh(factor=factor, resolution=RESOLUTION) == {"FINISHED"}
        assert morph["inr_factor"] == factor
        assert iou(inside(world_arrays(morph), points), inside(world_arrays(target), points)) > 0.97
    for factor in (0.3, 0.7):
        morph["inr_factor"] = factor  # the sidebar's slider; Re-extract applies it
        assert bpy.ops.inr.extract_mesh(resolution=RESOLUTION) == {"FINISHED"}
        triangles = mesh_arrays(morph)[1]
        assert components(triangles) == 1 and edge_counts(triangles) == (0, 0)


def test_a_result_saved_to_a_file_imports_as_a_field_object(scene, fitted, tmp_path):
    bpy = pytest.importorskip("bpy")
    a = field_object(bpy, fitted, "A")
    b = field_object(bpy, fitted, "B", location=(0.3, 0.0, 0.0))
    select(bpy, a, b)
    assert bpy.ops.inr.morph(factor=0.4, resolution=RESOLUTION) == {"FINISHED"}
    morph = bpy.context.active_object
    path = tmp_path / "blend.safetensors"
    path.write_bytes(bytes(morph[FIELD_KEY]))
    assert bpy.ops.inr.import_field(filepath=str(path), resolution=RESOLUTION) == {"FINISHED"}
    imported = bpy.context.active_object
    assert imported.name == "blend_inr" and imported["inr_factor"] == pytest.approx(0.4)
    assert len(mesh_arrays(imported)[1]) == len(mesh_arrays(morph)[1])
    imported["inr_factor"] = 1.0
    assert bpy.ops.inr.extract_mesh(resolution=RESOLUTION) == {"FINISHED"}


def test_a_chain_stands_alone_after_its_inputs_are_deleted(scene, fitted, tmp_path):
    bpy = pytest.importorskip("bpy")
    a = field_object(bpy, fitted, "A")
    b = field_object(bpy, fitted, "B", location=(0.8, 0.0, 0.0), rotation=(0.3, 0.0, 0.0))
    select(bpy, a, b)
    assert bpy.ops.inr.combine(operation="UNION", resolution=RESOLUTION) == {"FINISHED"}
    union = bpy.context.active_object
    assert bpy.ops.inr.offset(distance=0.05, resolution=RESOLUTION) == {"FINISHED"}
    chain = bpy.context.active_object
    expected = world_arrays(chain)
    for obj in (a, b, union):
        bpy.data.objects.remove(obj)
    path = tmp_path / "chain.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    reopened = bpy.data.objects["A_union_offset"]
    select(bpy, reopened)
    assert bpy.ops.inr.extract_mesh(resolution=RESOLUTION) == {"FINISHED"}
    again = world_arrays(reopened)
    assert len(again[0]) == len(expected[0]) and np.allclose(again[0], expected[0], atol=1e-5)
    assert bpy.ops.inr.extract_mesh(resolution=2 * RESOLUTION) == {"FINISHED"}
    assert len(reopened.data.vertices) > 3 * len(expected[0])
    assert not worker_processes() and not jobs_left(bpy)


def _nothing_selected(bpy, fitted):
    field_object(bpy, fitted, "A")
    bpy.context.view_layer.objects.active = None
    return "combine", {}, "Combine: no active object; select 2 or more field objects"


def _only_one(bpy, fitted):
    select(bpy, field_object(bpy, fitted, "A"))
    return "combine", {}, "Combine: select 2 or more field objects .*1 selected"


def _not_a_field(bpy, fitted):
    a = field_object(bpy, fitted, "A")
    bpy.ops.mesh.primitive_cube_add()
    select(bpy, a, bpy.context.active_object)
    return "combine", {}, "Combine: Cube is not a field object"


def _morph_needs_two(bpy, fitted):
    select(bpy, *(field_object(bpy, fitted, name) for name in "ABC"))
    return "morph", {}, "Morph: select 2 field objects .*3 selected"


def _shell_thicker_than_the_shape(bpy, fitted):
    # a thin wedge: the cube's far edge of one copy inside the sphere of another, beside it
    select(bpy, field_object(bpy, fitted, "A"), field_object(bpy, fitted, "B", location=(2.4, 0, 0)))
    assert bpy.ops.inr.combine(operation="INTERSECT", resolution=RESOLUTION) == {"FINISHED"}
    return "offset", {"shell": 0.1}, "Offset failed: the shell of 0.1 is thicker than the shape"


def _offset_beyond_the_truncation(bpy, fitted):
    select(bpy, field_object(bpy, fitted, "A"))
    return "offset", {"distance": 1.0}, "Offset failed: an offset of 1 is more than these fields know"


def _nothing_left(bpy, fitted):
    select(bpy, field_object(bpy, fitted, "A"), field_object(bpy, fitted, "B", location=(5, 0, 0)))
    return "combine", {"operation": "INTERSECT"}, "Combine failed: nothing is left: the shapes do not overlap"


def _deleted_input(bpy, fitted):
    a = field_object(bpy, fitted, "A")
    broken = {"inputs": 2, "kind": "UNION", "blend": 0.0, "distance": 0.0, "shell": 0.0, "factor": 0.5}
    metadata = {"format": protocol.FIELD_FORMAT, "format_version": str(protocol.FIELD_FORMAT_VERSION)}
    data = protocol.replace_metadata(a[FIELD_KEY], {**metadata, "composite": json.dumps(broken)})
    del a[FIELD_KEY]  # Blender keeps only the bytes before the first zero when bytes are assigned over bytes
    a[FIELD_KEY] = data
    select(bpy, a)
    return "extract_mesh", {}, "refers to input 1, which is not stored in it .*deleted before"


def _factor_on_a_plain_field(bpy, fitted):
    select(bpy, field_object(bpy, fitted, "A"))
    return "extract_mesh", {"factor": 0.5}, "A is not a morph"


@pytest.mark.parametrize(
    "case",
    [
        _nothing_selected,
        _only_one,
        _not_a_field,
        _morph_needs_two,
        _shell_thicker_than_the_shape,
        _offset_beyond_the_truncation,
        _nothing_left,
        _deleted_input,
        _factor_on_a_plain_field,
    ],
)
def test_bad_input_is_one_clear_error_and_changes_nothing(scene, fitted, case):
    bpy = pytest.importorskip("bpy")
    operator, arguments, message = case(bpy, fitted)
    before = scene_state(bpy)
    with pytest.raises(RuntimeError, match=message) as raised:
        getattr(bpy.ops.inr, operator)(resolution=RESOLUTION, **arguments)
    assert "Traceback" not in str(raised.value) and len(str(raised.value).strip().splitlines()) == 1
    assert scene_state(bpy) == before
    assert not worker_processes() and not jobs_left(bpy)


def test_the_modelling_panel_sits_in_the_neural_field_tab(addon):
    panel = addon.types.VIEW3D_PT_inr_modelling
    assert panel.bl_parent_id == "VIEW3D_PT_inr_neural_field" and panel.bl_category == "Neural Field"
    for operator in ("combine", "offset", "morph"):
        assert hasattr(addon.ops.inr, operator)
