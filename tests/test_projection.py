"""Vertices moved onto the surface: onto the source at fit time, onto the field's zero level after; the
surface stays closed and edge-manifold, and no triangle folds."""

from __future__ import annotations

import igl
import numpy as np
import pytest
import torch
from conftest import MESHES
from meshmetrics import compare_arrays, edge_counts

from inr_worker.fields.field_file import load_field, save_field
from inr_worker.jobs import extract, fit
from inr_worker.surface import surface_projection
from inr_worker.surface.extract import extract_surface

RESOLUTION = 96


def read(name: str) -> tuple[np.ndarray, np.ndarray]:
    vertices, triangles = igl.read_triangle_mesh(str(MESHES / name))[:2]
    return vertices, triangles


@pytest.fixture(scope="module")
def bunny():
    vertices, triangles = read("bunny_closed_lowres.obj")
    return vertices, triangles, fit(vertices, triangles, preset="FAST")


@pytest.fixture(scope="module")
def cube_no_bottom():
    vertices, triangles = read("cube_no_bottom.obj")
    return vertices, triangles, fit(vertices, triangles, preset="FAST")


def marching_cubes(field, resolution: int = RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """The field's surface as marching cubes gives it, in its object's coordinates."""
    vertices, triangles = extract_surface(field.model, field.low, field.high, resolution, torch.device("cpu"))
    return field.frame.from_unit(vertices), triangles


def assert_closed(triangles: np.ndarray) -> None:
    assert edge_counts(triangles) == (0, 0)


def test_closed_mesh_onto_its_source_is_closer_than_marching_cubes(bunny):
    vertices, triangles, field = bunny
    plain = marching_cubes(field)
    projected = extract(field, RESOLUTION, "CPU", source=(vertices, triangles))
    assert np.array_equal(plain[1], projected[1])  # only the positions move
    assert_closed(projected[1])
    before = compare_arrays(vertices, triangles, *plain)
    after = compare_arrays(vertices, triangles, *projected)
    assert after["chamfer_l1"] < 0.8 * before["chamfer_l1"]
    assert after["iou"] >= before["iou"] - 1e-4
    reference = surface_projection.face_normals(plain[0], plain[1])
    cell = np.ptp(vertices, 0).max() / RESOLUTION
    assert not surface_projection.folded(projected[0], projected[1], reference, cell).any()


def test_open_mesh_keeps_its_solid_and_stays_closed(cube_no_bottom):
    vertices, triangles, field = cube_no_bottom
    plain = marching_cubes(field)
    projected = extract(field, RESOLUTION, "CPU", source=(vertices, triangles))
    assert_closed(projected[1])
    before = compare_arrays(vertices, triangles, *plain)
    after = compare_arrays(vertices, triangles, *projected)
    assert abs(after["iou"] - before["iou"]) <= 0.002
    assert after["chamfer_l1"] <= before["chamfer_l1"]
    # the cube has no bottom (y = -1): the solid's bottom spans that hole, and its vertices near the rim
    # are not pulled onto the rim
    cell = 2 / RESOLUTION
    rim_distance = 1 - np.abs(plain[0][:, [0, 2]]).max(1)
    near_rim = (
        (plain[0][:, 1] < plain[0][:, 1].min() + 0.2 * cell) & (rim_distance > 0.6 * cell) & (rim_distance < 1.4 * cell)
    )
    assert near_rim.sum() > 20
    assert np.allclose(projected[0][near_rim], plain[0][near_rim])


def test_the_guard_undoes_moves_that_fold_triangles():
    """A projector that throws vertices about at random: every fold it makes is backed off."""
    vertices, triangles = igl.read_triangle_mesh(str(MESHES / "bunny_closed_lowres.obj"))[:2]
    cell = np.ptp(vertices, 0).max() / 64
    rng = np.random.default_rng(0)

    def wild(points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return points + rng.normal(scale=2 * cell, size=points.shape), np.ones(len(points), dtype=bool)

    settled = surface_projection.settle(vertices, triangles, wild, cell)
    reference = surface_projection.face_normals(vertices, triangles)
    assert not surface_projection.folded(settled, triangles, reference, cell).any()
    assert not np.allclose(settled, vertices)  # some moves were kept


def test_field_alone_onto_its_zero_level_is_closer_than_marching_cubes(bunny, tmp_path):
    """Re-extraction from a stored field (the source gone): closer to the source than marching cubes on
    the same field, closed, no folds."""
    vertices, triangles, field = bunny
    save_field(tmp_path / "bunny.safetensors", field)
    stored = load_field(tmp_path / "bunny.safetensors")
    plain = marching_cubes(stored)
    projected = extract(stored, RESOLUTION, "CPU")
    assert np.array_equal(plain[1], projected[1])
    assert_closed(projected[1])
    before = compare_arrays(vertices, triangles, *plain)
    after = compare_arrays(vertices, triangles, *projected)
    assert after["chamfer_l1"] < 0.9 * before["chamfer_l1"]
    assert after["iou"] >= before["iou"] - 1e-4
    reference = surface_projection.face_normals(plain[0], plain[1])
    cell = np.ptp(vertices, 0).max() / RESOLUTION
    assert not surface_projection.folded(projected[0], projected[1], reference, cell).any()


def box() -> tuple[np.ndarray, np.ndarray]:
    """A 2 x 1 x 0.6 box, outward-wound triangles."""
    vertices = np.array([(x, y, z) for x in (0, 2.0) for y in (0, 1.0) for z in (0, 0.6)])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    return vertices, np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])


def test_sharp_edges_come_back_sharp():
    """A box: marching cubes cuts its edges and corners; vertices near them go onto them."""
    vertices, triangles = box()
    field = fit(vertices, triangles, preset="FAST")
    plain = marching_cubes(field, 64)
    projected = extract(field, 64, "CPU", source=(vertices, triangles))
    assert_closed(projected[1])
    before = compare_arrays(vertices, triangles, *plain)
    after = compare_arrays(vertices, triangles, *projected)
    assert after["normal_consistency"] > 0.995
    assert before["normal_consistency"] < 0.98
    assert after["chamfer_l1"] < 0.2 * before["chamfer_l1"]


def test_a_stored_field_keeps_its_sources_sharp_edges(tmp_path):
    """The field file keeps the box's 12 edges (its faces' diagonals are flat, not sharp): re-extraction with
    the source deleted puts vertices onto them, as Fit does, instead of cutting them."""
    vertices, triangles = box()
    save_field(tmp_path / "box.safetensors", fit(vertices, triangles, preset="FAST"))
    stored = load_field(tmp_path / "box.safetensors")
    assert stored.creases is not None and stored.creases.shape == (12, 2, 3)
    kept = extract(stored, RESOLUTION, "CPU")
    stored.creases = None
    cut = extract(stored, RESOLUTION, "CPU")
    assert_closed(kept[1])
    with_edges, without = compare_arrays(vertices, triangles, *kept), compare_arrays(vertices, triangles, *cut)
    assert with_edges["normal_consistency"] > 0.995 > without["normal_consistency"]
    assert with_edges["chamfer_l1"] < 0.5 * without["chamfer_l1"]
