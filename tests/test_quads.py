"""The quad surface (``surface="QUADS"``, the dual of marching cubes): mostly quads, closed, edge-manifold
and without non-manifold vertices; on the source at fit time, on the field's zero level after; sharp
edges kept; written as quads by the CLI."""

from __future__ import annotations

import igl
import numpy as np
import pytest
import torch
from conftest import MESHES
from meshmetrics import compare_arrays
from test_worker import run_cli

from inr_worker.fields.field_file import load_field, save_field
from inr_worker.jobs import extract, fit
from inr_worker.surface.extract import extract_surface
from inr_worker.surface.quad_surface import triangulated

RESOLUTION = 96


def polygon_problems(faces: np.ndarray, vertex_count: int) -> dict[str, int]:
    """Boundary and non-manifold edges, non-manifold vertices (whose faces do not form one fan) and
    unused vertices of faces (F, 3) or (F, 4) with -1 fourth indices on triangles."""
    polygons = [row[row >= 0] for row in faces]
    directed = np.array([(p[i], p[(i + 1) % len(p)]) for p in polygons for i in range(len(p))])
    _, uses = np.unique(np.sort(directed, 1), axis=0, return_counts=True)
    _, directed_uses = np.unique(directed, axis=0, return_counts=True)
    # Around a manifold vertex, following "next edge" from each face corner visits all its corners once.
    following = {}
    for p in polygons:
        for i in range(len(p)):
            following[(int(p[i]), int(p[i - 1]))] = int(p[(i + 1) % len(p)])
    corners_of: dict[int, list[int]] = {}
    for vertex, previous in following:
        corners_of.setdefault(vertex, []).append(previous)
    pinched = 0
    for vertex, previous_list in corners_of.items():
        start = current = previous_list[0]
        steps = 0
        while True:
            current = following.get((vertex, current), -1)  # the corner whose previous vertex is this one's next
            steps += 1
            if current in (start, -1) or steps > len(previous_list):
                break
        pinched += current != start or steps != len(previous_list)
    return {
        "boundary_edges": int((uses == 1).sum()),
        "nonmanifold_edges": int((uses > 2).sum() + (directed_uses > 1).sum()),
        "nonmanifold_vertices": pinched,
        "unused_vertices": vertex_count - len(corners_of),
    }


def quad_share(faces: np.ndarray) -> float:
    return float((faces[:, 3] >= 0).mean())


def assert_clean(vertices: np.ndarray, faces: np.ndarray) -> None:
    assert faces.shape[1] == 4
    assert polygon_problems(faces, len(vertices)) == dict.fromkeys(
        ("boundary_edges", "nonmanifold_edges", "nonmanifold_vertices", "unused_vertices"), 0
    )


def test_the_manifold_check_sees_a_pinched_vertex():
    """Two tetrahedra sharing one vertex: closed and edge-manifold, but the vertex is pinched."""
    tetra = np.array([[0, 2, 1, -1], [0, 1, 3, -1], [0, 3, 2, -1], [1, 2, 3, -1]])
    second = np.where(tetra > 0, tetra + 3, tetra)  # shares vertex 0
    problems = polygon_problems(np.concatenate([tetra, second]), 7)
    assert problems["boundary_edges"] == problems["nonmanifold_edges"] == 0
    assert problems["nonmanifold_vertices"] == 1


@pytest.fixture(scope="module")
def bunny():
    vertices, triangles = igl.read_triangle_mesh(str(MESHES / "bunny_closed_lowres.obj"))[:2]
    return vertices, triangles, fit(vertices, triangles, preset="FAST")


def marching_cubes(field, resolution: int = RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    vertices, triangles = extract_surface(field.model, field.low, field.high, resolution, torch.device("cpu"))
    return field.frame.from_unit(vertices), triangles


def test_quads_on_the_source_are_closed_manifold_and_close(bunny):
    vertices, triangles, field = bunny
    quads = extract(field, RESOLUTION, "CPU", source=(vertices, triangles), surface="QUADS")
    assert_clean(*quads)
    assert quad_share(quads[1]) >= 0.95
    plain = marching_cubes(field)
    before = compare_arrays(vertices, triangles, *plain)
    after = compare_arrays(vertices, triangles, quads[0], triangulated(quads[1]))
    assert after["chamfer_l1"] < before["chamfer_l1"]
    assert after["iou"] >= before["iou"] - 1e-3
    assert 0.4 * len(plain[1]) < len(quads[1]) < 0.6 * len(plain[1])  # one quad a marching-cubes vertex


def test_quads_from_the_field_alone(bunny, tmp_path):
    vertices, triangles, field = bunny
    save_field(tmp_path / "bunny.safetensors", field)
    stored = load_field(tmp_path / "bunny.safetensors")
    quads = extract(stored, RESOLUTION, "CPU", surface="QUADS")
    assert_clean(*quads)
    assert quad_share(quads[1]) >= 0.95
    before = compare_arrays(vertices, triangles, *marching_cubes(stored))
    after = compare_arrays(vertices, triangles, quads[0], triangulated(quads[1]))
    assert after["chamfer_l1"] < before["chamfer_l1"]


def l_bracket() -> tuple[np.ndarray, np.ndarray]:
    """An L-shaped prism, turned off the grid's axes: convex and concave sharp edges and corners, closed and
    outward-wound."""
    outline = np.array([(0, 0), (2, 0), (2, 0.7), (0.8, 0.7), (0.8, 1.6), (0, 1.6)], dtype=float)
    count = len(outline)
    vertices = np.concatenate([np.c_[outline, np.zeros(count)], np.c_[outline, np.full(count, 0.9)]])
    cap = [(0, 1, 2), (0, 2, 3), (0, 3, 5), (3, 4, 5)]  # counter-clockwise seen from +z
    triangles = [(c, b, a) for a, b, c in cap] + [(a + count, b + count, c + count) for a, b, c in cap]
    for i in range(count):
        j = (i + 1) % count
        triangles += [(i, j, j + count), (i, j + count, i + count)]
    turn = np.radians(25)
    about_z = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1]])
    about_x = np.array([[1, 0, 0], [0, np.cos(turn), -np.sin(turn)], [0, np.sin(turn), np.cos(turn)]])
    return vertices @ (about_x @ about_z).T, np.array(triangles)


def test_sharp_edges_stay_sharp_with_quads():
    vertices, triangles = l_bracket()
    field = fit(vertices, triangles, preset="FAST")
    quads = extract(field, 64, "CPU", source=(vertices, triangles), surface="QUADS")
    assert_clean(*quads)
    plain = compare_arrays(vertices, triangles, *marching_cubes(field, 64))
    after = compare_arrays(vertices, triangles, quads[0], triangulated(quads[1]))
    assert plain["normal_consistency"] < 0.99
    assert after["normal_consistency"] > 0.997
    assert after["chamfer_l1"] < 0.3 * plain["chamfer_l1"]


def test_cli_writes_quads_as_quads(tmp_path):
    out = tmp_path / "bunny.obj"
    done = run_cli(
        "fit", str(MESHES / "bunny_closed_lowres.obj"), "--field", str(tmp_path / "f.safetensors"),
        "--preset", "FAST", "--resolution", "48", "--surface", "quads", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    face_sizes = [len(line.split()) - 1 for line in out.read_text().splitlines() if line.startswith("f ")]
    assert np.mean(np.array(face_sizes) == 4) >= 0.95
    refused = run_cli("extract", str(tmp_path / "f.safetensors"), "--out", str(out), "--surface", "pentagons")
    assert refused.returncode != 0
    assert "PENTAGONS" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def blender_check(bpy, obj) -> dict[str, float]:
    """Quad share and, from bmesh, boundary and non-manifold edges and vertices of a Blender mesh."""
    import bmesh

    mesh = obj.data
    sizes = np.empty(len(mesh.polygons), np.int32)
    mesh.polygons.foreach_get("loop_total", sizes)
    graph = bmesh.new()
    graph.from_mesh(mesh)
    try:
        return {
            "quad_share": float((sizes == 4).mean()),
            "boundary_edges": sum(edge.is_boundary for edge in graph.edges),
            "nonmanifold_edges": sum(not edge.is_manifold for edge in graph.edges),
            "nonmanifold_vertices": sum(not vertex.is_manifold for vertex in graph.verts),
        }
    finally:
        graph.free()


def test_fit_and_re_extract_quads_in_blender(scene):
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.obj_import(filepath=str(MESHES / "bunny_closed_lowres.obj"))
    assert bpy.ops.inr.fit_mesh(resolution=48, preset="FAST", surface="QUADS") == {"FINISHED"}
    result = bpy.context.active_object
    checked = blender_check(bpy, result)
    assert checked["quad_share"] >= 0.95
    assert checked["boundary_edges"] == checked["nonmanifold_edges"] == checked["nonmanifold_vertices"] == 0
    assert bpy.ops.inr.extract_mesh(resolution=64, surface="QUADS") == {"FINISHED"}
    checked = blender_check(bpy, result)
    assert checked["quad_share"] >= 0.95 and checked["nonmanifold_vertices"] == 0
    assert bpy.ops.inr.extract_mesh(resolution=64) == {"FINISHED"}  # triangles stay the default
    assert blender_check(bpy, result)["quad_share"] == 0.0
    with pytest.raises(TypeError, match="PENTAGONS"):
        bpy.ops.inr.extract_mesh(resolution=64, surface="PENTAGONS")
    assert blender_check(bpy, result)["quad_share"] == 0.0  # left as it was


def test_combine_offset_and_morph_make_quads(scene):
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.obj_import(filepath=str(MESHES / "bunny_closed_lowres.obj"))
    source = bpy.context.active_object
    assert bpy.ops.inr.fit_mesh(resolution=40, preset="FAST") == {"FINISHED"}
    first = bpy.context.active_object
    source.select_set(True)
    bpy.context.view_layer.objects.active = source
    for obj in list(bpy.context.selected_objects):
        obj.select_set(obj == source)
    assert bpy.ops.inr.fit_mesh(resolution=40, preset="FAST") == {"FINISHED"}
    second = bpy.context.active_object
    second.location = (0.3 * max(second.dimensions), 0.0, 0.0)
    bpy.context.view_layer.update()
    first.select_set(True)
    assert bpy.ops.inr.combine(operation="UNION", blend=0.0, resolution=48, surface="QUADS") == {"FINISHED"}
    checked = blender_check(bpy, bpy.context.active_object)
    assert checked["quad_share"] >= 0.95
    assert checked["boundary_edges"] == checked["nonmanifold_edges"] == checked["nonmanifold_vertices"] == 0
    for obj in list(bpy.context.selected_objects):
        obj.select_set(False)
    first.select_set(True)
    bpy.context.view_layer.objects.active = first
    assert bpy.ops.inr.offset(distance=0.05 * max(first.dimensions), resolution=48, surface="QUADS") == {"FINISHED"}
    checked = blender_check(bpy, bpy.context.active_object)
    assert checked["quad_share"] >= 0.95
    assert checked["boundary_edges"] == checked["nonmanifold_edges"] == checked["nonmanifold_vertices"] == 0
    second.select_set(True)
    assert bpy.ops.inr.morph(factor=0.5, resolution=48, surface="QUADS") == {"FINISHED"}
    checked = blender_check(bpy, bpy.context.active_object)
    assert checked["quad_share"] >= 0.95
    assert checked["boundary_edges"] == checked["nonmanifold_edges"] == checked["nonmanifold_vertices"] == 0
