"""The extractor on analytic fields: closed, manifold, dense-equivalent, thin parts, chunk seams, memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from meshmetrics import edge_counts
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

from inr_worker import memory
from inr_worker.surface import extract as extraction

CPU = torch.device("cpu")
LOW, HIGH = np.full(3, -0.5), np.full(3, 0.5)


class SphereField:
    """An analytic signed distance field: a sphere of ``radius`` about ``centre``."""

    def __init__(self, radius: float, centre=(0.0, 0.0, 0.0)) -> None:
        self.radius, self.centre = radius, torch.tensor(centre, dtype=torch.float32)

    def evaluate(self, points: torch.Tensor) -> torch.Tensor:
        return (points - self.centre).norm(dim=1) - self.radius


class LumpyField:
    """Not a distance: a wobbly blob with a hole through it, a thin plate and a small ball apart,
    scaled by ``slope`` (above 1 the coarse-to-fine tests miss cells that crack closure must add)."""

    def __init__(self, slope: float = 1.0, plate: float = 0.02) -> None:
        self.slope, self.plate = slope, plate

    def evaluate(self, points: torch.Tensor) -> torch.Tensor:
        x, y, z = points.T
        blob = points.norm(dim=1) - 0.3 - 0.04 * torch.sin(9 * x) * torch.sin(7 * y + 1) * torch.sin(8 * z + 2)
        hole = 0.1 - torch.sqrt(x**2 + (y - 0.02) ** 2)
        plate = torch.maximum((z - 0.38).abs() - self.plate / 2, torch.maximum(x.abs(), y.abs()) - 0.3)
        ball = (points - torch.tensor([0.37, 0.37, -0.37])).norm(dim=1) - 0.05
        solid = torch.minimum(torch.minimum(torch.maximum(blob, hole), plate), ball)
        return self.slope * solid


def dense_surface(model, resolution: int, low=LOW, high=HIGH) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Marching cubes on the field evaluated everywhere on the extractor's grid; and the cells
    (global low corners) where the sign changes."""
    lattice = extraction._lattice(model, low, high, resolution, CPU)
    points = np.stack(np.indices(tuple(lattice.points)).reshape(3, -1), -1)
    values = lattice.evaluate(points).reshape(tuple(lattice.points))
    inside = values <= 0
    n = tuple(lattice.cells)
    corners = [inside[i : i + n[0], j : j + n[1], k : k + n[2]] for i, j, k in extraction.CORNERS]
    crossed = np.argwhere(np.any(corners, 0) & ~np.all(corners, 0))
    vertices, triangles, _, _ = marching_cubes(values, 0.0, method="lewiner")
    return vertices * lattice.cell + lattice.origin, triangles, crossed


def active_cells(model, resolution: int, low=LOW, high=HIGH) -> np.ndarray:
    """Global low corners of the cells that the sparse extractor meshed."""
    lattice = extraction._lattice(model, low, high, resolution, CPU)
    coarse = extraction._coarse_values(lattice)
    pieces = extraction._mesh_chunks(lattice, coarse, extraction._active_blocks(coarse, lattice))
    shapes = {key: extraction._chunk_shape(lattice, key) for key in pieces.cells}
    return np.concatenate(
        [
            np.stack(np.unravel_index(cells, shapes[key]), -1) + np.array(key) * extraction.CHUNK
            for key, cells in pieces.cells.items()
        ]
    )


def same_cells(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(*(np.sort(np.ravel_multi_index(tuple(c.T), (4096,) * 3)) for c in (a, b)))


def hausdorff(a: np.ndarray, b: np.ndarray) -> float:
    return max(cKDTree(b).query(a)[0].max(), cKDTree(a).query(b)[0].max())


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 16 cells, so that a small grid has many seams."""
    monkeypatch.setattr(extraction, "CHUNK", 16)


@pytest.mark.parametrize("radius", [0.3, 0.9])  # 0.9: the solid overflows the box on every side
def test_extraction_is_closed_even_where_the_solid_overflows_the_box(radius):
    vertices, triangles = extraction.extract_surface(SphereField(radius), LOW, HIGH, 64, CPU)
    assert edge_counts(triangles) == (0, 0)
    volume = extraction.signed_volume(vertices, triangles)
    expected = 4 / 3 * np.pi * radius**3 if radius < 0.5 else 1.0
    assert expected * 0.98 < volume < expected * 1.25


def test_an_empty_field_has_no_surface():
    with pytest.raises(extraction.NoSurfaceError, match="no surface found"):
        extraction.extract_surface(SphereField(-0.1), LOW, HIGH, 32, CPU)


@pytest.mark.parametrize("slope", [1.0, 3.0])
def test_sparse_extraction_matches_dense_marching_cubes(slope, small_chunks):
    model, resolution = LumpyField(slope), 96
    vertices, triangles = extraction.extract_surface(model, LOW, HIGH, resolution, CPU)
    dense_vertices, dense_triangles, crossed = dense_surface(model, resolution)
    assert edge_counts(triangles) == (0, 0)
    assert extraction.signed_volume(vertices, triangles) > 0
    cells = active_cells(model, resolution)
    assert same_cells(cells, crossed)  # every cell where the sign changes, and no other
    assert hausdorff(vertices, dense_vertices) < 1.0 / resolution
    assert abs(len(triangles) - len(dense_triangles)) < 0.01 * len(dense_triangles)


def test_chunk_seams_weld_into_the_same_surface_as_one_chunk(monkeypatch):
    model = SphereField(0.37, centre=(0.013, -0.021, 0.007))
    one_vertices, one_triangles = extraction.extract_surface(model, LOW, HIGH, 80, CPU)
    monkeypatch.setattr(extraction, "CHUNK", 16)  # 6 chunks a side: the sphere crosses dozens of seams
    vertices, triangles = extraction.extract_surface(model, LOW, HIGH, 80, CPU)
    assert edge_counts(triangles) == (0, 0)
    assert len(vertices) == len(one_vertices) and len(triangles) == len(one_triangles)
    assert np.allclose(np.sort(vertices, axis=0), np.sort(one_vertices, axis=0))
    same_triangles = np.sort(np.sort(one_vertices[one_triangles].reshape(-1, 9), 1), 0)
    assert np.allclose(np.sort(np.sort(vertices[triangles].reshape(-1, 9), 1), 0), same_triangles)


class EggCrateField:
    """Many ambiguous cells (saddles inside cells): Lewiner adds vertices inside some of them."""

    def evaluate(self, points: torch.Tensor) -> torch.Tensor:
        wave = torch.sin(points * 61.0).prod(1) + 0.03 * torch.sin(points[:, 0] * 7.0)
        return torch.maximum(wave, points.abs().max(1).values - 0.45)


def test_ambiguous_cells_weld_into_a_closed_manifold(small_chunks):
    vertices, triangles = extraction.extract_surface(EggCrateField(), LOW, HIGH, 48, CPU)
    assert edge_counts(triangles) == (0, 0)
    assert len(triangles) > 20_000
    assert not (np.sort(triangles, 1)[:, :-1] == np.sort(triangles, 1)[:, 1:]).any()  # no degenerate triangle
    assert len(np.unique(vertices, axis=0)) == len(vertices)


def test_thin_plate_and_small_ball_are_kept(small_chunks):
    resolution = 64  # the plate is 1.3 cells thick
    vertices, triangles = extraction.extract_surface(LumpyField(plate=0.02), LOW, HIGH, resolution, CPU)
    assert edge_counts(triangles) == (0, 0)
    near_plate = np.abs(vertices[:, 2] - 0.38) < 0.02
    assert near_plate.sum() > 1000
    assert (vertices[near_plate, 2] > 0.38).sum() > 400 and (vertices[near_plate, 2] < 0.38).sum() > 400
    near_ball = np.linalg.norm(vertices - [0.37, 0.37, -0.37], axis=1) < 0.07
    assert near_ball.sum() > 50


def test_an_extraction_that_cannot_fit_is_refused_before_it_starts():
    model = SphereField(0.3)
    with pytest.raises(memory.MemoryLimitError, match="resolution 512 needs about .* only 100.0 MB is free"):
        extraction.extract_surface(model, LOW, HIGH, 512, CPU, memory_limit=100 * 2**20)
    lattice = extraction._lattice(model, LOW, HIGH, 512, CPU)
    blocks = extraction._active_blocks(extraction._coarse_values(lattice), lattice)
    needed = extraction.estimate_memory(len(blocks), lattice.block)
    assert needed < extraction.estimate_memory(4 * len(blocks), lattice.block)  # it grows with the surface
    vertices, _ = extraction.extract_surface(model, LOW, HIGH, 48, CPU, memory_limit=needed)
    assert len(vertices)


def test_a_fit_that_could_not_be_meshed_is_refused_from_the_mesh_alone():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    triangles = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    small, large = (memory.estimate_memory_for_mesh(vertices, triangles, r) for r in (256, 2048))
    assert small < large < 64 * small  # it grows with the area in cells, not with the volume
    with pytest.raises(memory.MemoryLimitError, match="resolution 2048 needs about"):
        memory.check_memory(large, 2048, limit=small)
    memory.check_memory(small, 256, limit=small)


def test_a_field_that_proves_nothing_far_away_is_refused_before_its_coarse_grid_is_allocated():
    model = SphereField(0.3)
    model.truncation = 1e-4  # the field saturates so close to its surface that every cell must be evaluated
    with pytest.raises(memory.MemoryLimitError, match="resolution 2048 needs about"):
        extraction.extract_surface(model, LOW, HIGH, 2048, CPU, memory_limit=8 * 2**30)
