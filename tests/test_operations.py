"""Modelling operations in the worker library (real libigl, real torch), at sizes where a cell is small
against the shape: offsets land where asked right beyond the narrow band as well as far out, and a
morph is one closed solid at every factor."""

from __future__ import annotations

import igl
import numpy as np
import pytest
from conftest import MESHES
from meshmetrics import edge_counts

from inr_worker.fields import operations
from inr_worker.jobs import extract, fit

RESOLUTION = 128


def read(name: str) -> tuple[np.ndarray, np.ndarray]:
    vertices, triangles = igl.read_triangle_mesh(str(MESHES / name))[:2]
    return vertices.astype(np.float64), triangles.astype(np.int64)


@pytest.fixture(scope="module")
def spot():
    mesh = read("spot.obj")
    return mesh, operations.PlacedInput(b"", fit(*mesh, preset="FAST"), np.eye(4))


@pytest.mark.parametrize("share", [0.01, -0.01, 0.03, 0.06])  # 0.01: two cells from the surface at this resolution
def test_offsets_land_at_the_distance_asked(spot, share):
    (vertices, triangles), placed = spot
    distance = share * np.ptp(vertices, 0).max()
    field = operations.build(operations.Operation("OFFSET", distance=distance), [placed])
    result = extract(field, RESOLUTION, "CPU")
    cell = field.frame.scale / RESOLUTION
    error = igl.signed_distance(result[0], vertices, triangles)[0] - distance
    assert np.abs(error).mean() < 0.3 * cell, np.abs(error).mean() / cell  # about 0.1 cell measured
    assert edge_counts(result[1]) == (0, 0)


def test_a_morph_is_one_closed_solid_at_every_factor(spot):
    (vertices, _), first = spot
    bunny = read("bunny_closed_lowres.obj")
    turn = np.eye(4)
    angle = np.radians(30)
    turn[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    turn[:3, :3] *= np.ptp(vertices, 0).max() / np.ptp(bunny[0], 0).max()
    turn[:3, 3] = vertices.mean(0) - turn[:3, :3] @ bunny[0].mean(0)
    second = operations.PlacedInput(b"", fit(*bunny, preset="FAST"), turn)
    for factor in (0.1, 0.25, 0.5, 0.6, 0.75, 0.9):
        field = operations.build(operations.Operation("MORPH", factor=factor), [first, second])
        result = extract(field, RESOLUTION, "CPU")
        volumes = operations.surface_pieces(*result)[1]
        assert len(volumes) == 1 and volumes[0] > 0, (factor, volumes)
        assert edge_counts(result[1]) == (0, 0)


def test_drop_islands_keeps_the_solid_and_its_large_cavities():
    import trimesh

    big, cavity, speck = (trimesh.creation.icosphere(radius=r) for r in (1.0, 0.5, 0.05))
    cavity.invert()
    speck.apply_translation([3, 0, 0])
    mesh = trimesh.util.concatenate([big, cavity, speck])
    vertices, triangles = operations.drop_islands(mesh.vertices, mesh.faces, 0.01)
    assert len(triangles) == len(big.faces) + len(cavity.faces)
    assert (operations.surface_pieces(vertices, triangles)[1] < 0).any() and vertices[:, 0].max() < 1.01
