"""Adaptivity: fewer triangles where the surface is flat, at about the same distance to the source; always
closed, edge-manifold and without pinched vertices; triangles whichever surface is asked for; in the worker,
the command line and Blender's operators."""

from __future__ import annotations

import subprocess
import sys

import igl
import numpy as np
import pytest
from conftest import MESHES
from meshmetrics import compare_arrays
from test_quads import blender_check, polygon_problems
from test_worker import WORKER_ENV, run_cli

from inr_worker.jobs import extract, fit
from inr_worker.protocol import JobSpec, ProtocolError
from inr_worker.surface.adaptivity import is_solid_surface, kept_share

RESOLUTION = 128


@pytest.fixture(scope="module")
def spot():
    vertices, triangles = igl.read_triangle_mesh(str(MESHES / "spot.obj"))[:2]
    return vertices, triangles, fit(vertices, triangles, preset="FAST")


def clean(vertices: np.ndarray, faces: np.ndarray) -> bool:
    padded = np.concatenate([faces, np.full((len(faces), 1), -1)], 1)
    return polygon_problems(padded, len(vertices)) == dict.fromkeys(
        ("boundary_edges", "nonmanifold_edges", "nonmanifold_vertices", "unused_vertices"), 0
    )


@pytest.mark.parametrize("on_source", [True, False], ids=["fit", "re-extract"])
def test_half_the_vertices_at_about_the_same_distance(spot, on_source):
    vertices, triangles, field = spot
    source = (vertices, triangles) if on_source else None
    full = extract(field, RESOLUTION, "CPU", source=source)
    adaptive = extract(field, RESOLUTION, "CPU", source=source, adaptivity=0.5)
    assert adaptive[1].shape[1] == 3
    assert len(adaptive[0]) <= 0.55 * len(full[0]) and len(adaptive[1]) <= 0.55 * len(full[1])
    assert clean(*adaptive)
    full_score = compare_arrays(vertices, triangles, *full, samples=50_000)
    adaptive_score = compare_arrays(vertices, triangles, *adaptive, samples=50_000)
    assert adaptive_score["chamfer_l1"] <= 1.15 * full_score["chamfer_l1"], (adaptive_score, full_score)
    assert adaptive_score["iou"] >= full_score["iou"] - 0.001


def test_adaptivity_with_quads_gives_triangles_and_more_merges_more(spot):
    field = spot[2]
    quads = extract(field, RESOLUTION, "CPU", surface="QUADS", adaptivity=0.25)
    assert quads[1].shape[1] == 3 and clean(*quads)
    most = extract(field, RESOLUTION, "CPU", adaptivity=1.0)
    assert len(most[1]) < len(quads[1]) and clean(*most)


def test_the_solid_check_sees_a_pinched_vertex():
    tetra = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    assert is_solid_surface(tetra, 4)
    assert not is_solid_surface(np.concatenate([tetra, np.where(tetra > 0, tetra + 3, tetra)]), 7)  # shares vertex 0
    assert not is_solid_surface(tetra[:3], 4)  # open
    assert not is_solid_surface(tetra, 5)  # a vertex no triangle uses
    assert kept_share(0.0) == 1.0 and kept_share(0.5) == 0.5


def test_a_job_with_adaptivity_outside_0_to_1_is_refused():
    with pytest.raises(ProtocolError, match="adaptivity 1.5 is outside 0.0..1.0"):
        JobSpec(task="extract", resolution=64, adaptivity=1.5).validate()


def test_cli_extracts_with_adaptivity(tmp_path):
    field, full, adaptive = tmp_path / "f.safetensors", tmp_path / "full.obj", tmp_path / "adaptive.obj"
    done = run_cli("fit", str(MESHES / "spot.obj"), "--field", str(field), "--preset", "FAST", "--out", str(full))
    assert done.returncode == 0, done.stderr
    done = run_cli("extract", str(field), "--out", str(adaptive), "--adaptivity", "0.5")
    assert done.returncode == 0, done.stderr
    assert len(igl.read_triangle_mesh(str(adaptive))[1]) <= 0.55 * len(igl.read_triangle_mesh(str(full))[1])


def test_a_worker_without_fast_simplification_says_so_and_still_extracts(tmp_path):
    """A worker Python set up before adaptivity existed: only adaptivity needs the package."""
    field = tmp_path / "f.safetensors"
    assert run_cli("fit", str(MESHES / "spot.obj"), "--field", str(field), "--preset", "FAST").returncode == 0
    hidden = "import sys; sys.modules['fast_simplification'] = None; from inr_worker.cli import main; sys.exit(main())"

    def extract_without_it(*options: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", hidden, "extract", str(field), "--out", str(tmp_path / "s.obj"), *options]
        return subprocess.run(command, env=WORKER_ENV, capture_output=True, text=True, timeout=600, check=False)

    refused = extract_without_it("--adaptivity", "0.5")
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "Adaptivity needs the fast-simplification package" in refused.stderr
    assert extract_without_it().returncode == 0


def test_fit_and_re_extract_with_adaptivity_in_blender(scene):
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.obj_import(filepath=str(MESHES / "bunny_closed_lowres.obj"))
    assert bpy.ops.inr.fit_mesh(resolution=64, preset="FAST", adaptivity=0.5) == {"FINISHED"}
    result = bpy.context.active_object
    adaptive = len(result.data.polygons)
    checked = blender_check(bpy, result)
    assert checked == {"quad_share": 0.0, "boundary_edges": 0, "nonmanifold_edges": 0, "nonmanifold_vertices": 0}
    assert bpy.ops.inr.extract_mesh(resolution=64) == {"FINISHED"}
    assert len(result.data.polygons) >= 1.8 * adaptive
    assert bpy.ops.inr.extract_mesh(resolution=64, surface="QUADS", adaptivity=0.5) == {"FINISHED"}
    checked = blender_check(bpy, result)
    assert checked == {"quad_share": 0.0, "boundary_edges": 0, "nonmanifold_edges": 0, "nonmanifold_vertices": 0}
