"""Surface extraction: marching cubes (Lewiner's topology-correct variant) on the field,
evaluated coarse-to-fine so that only cells near the surface are ever evaluated.

The grid is refined like an octree: blocks whose corner values show that the surface may pass
through them are split in eight, down to single cells. The field is close to a signed distance
(slope about 1), so a block whose corners all lie farther from zero than ``SAFETY`` times its
half diagonal cannot hold the surface. Cells next to an active cell across a face where the sign
changes are added until none is missing, so the surface closes even where that bound fails.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.measure import marching_cubes

from .model import TRUNCATION, NeuralField

MAX_BLOCK = 16  # most cells per block side at the coarsest level
PAD_CELLS = 2  # empty cells around the bounding box, so that the surface always closes
SAFETY = 1.2  # a block is refined where a corner value is below SAFETY x its half diagonal
CORNERS = np.array([(i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1)])
FACES = [(axis, side) for axis in range(3) for side in (0, 1)]


class NoSurfaceError(ValueError):
    """The field has no zero crossing inside the box."""


def block_size(cell: float) -> int:
    """Cells per side of the coarsest blocks: the largest power of two whose test the field can answer.

    The field saturates at +-TRUNCATION, so a corner value proves a block empty only while the
    block's half diagonal, times SAFETY, stays well below the truncation.
    """
    block = 1
    while block * 2 <= MAX_BLOCK and SAFETY * np.sqrt(3) / 2 * block * 2 * cell <= 0.8 * TRUNCATION:
        block *= 2
    return block


class _Grid:
    """Field values on a regular grid of points, evaluated only where asked.

    Cells and blocks are named by the flat index of their low corner in the point grid.
    """

    def __init__(
        self, model: NeuralField, origin: np.ndarray, cell: float, shape: tuple[int, ...], device: torch.device
    ) -> None:
        self.model, self.origin, self.cell, self.shape, self.device = model, origin, cell, shape, device
        self.values = np.ones(shape, dtype=np.float32)
        self.known = np.zeros(shape, dtype=bool)
        self._pending = np.zeros(shape, dtype=bool)  # scratch, for de-duplicating points without a sort
        self.strides = np.array([shape[1] * shape[2], shape[2], 1])
        self.corner_offsets = CORNERS @ self.strides  # (8,)

    def corner_values(self, cells: np.ndarray, size: int) -> np.ndarray:
        """Values at the 8 corners of cubes of ``size`` cells with low corners ``cells``: (M, 8)."""
        flat = cells[:, None] + self.corner_offsets * size
        values, known, pending = self.values.reshape(-1), self.known.reshape(-1), self._pending.reshape(-1)
        missing = flat[~known[flat]]
        if len(missing):
            pending[missing] = True
            missing = np.flatnonzero(pending)
            pending[missing] = False
            position = np.stack(np.unravel_index(missing, self.shape), -1)
            found = (
                self.model.evaluate(
                    torch.from_numpy((self.origin + position * self.cell).astype(np.float32)).to(self.device)
                )
                .cpu()
                .numpy()
            )
            # The outer layer is outside by construction: the surface closes even where the field errs.
            on_boundary = ((position == 0) | (position == np.array(self.shape) - 1)).any(1)
            found[on_boundary] = np.maximum(found[on_boundary], self.cell)
            values[missing] = found
            known[missing] = True
        return values[flat]

    def close_cracks(self, cells: np.ndarray) -> np.ndarray:
        """Add face neighbours of cells across faces with a sign change, until none is missing."""
        active = np.unique(cells)
        new = active
        while len(new):
            inside = self.corner_values(new, 1) <= 0
            position = np.stack(np.unravel_index(new, self.shape), -1)
            candidates = []
            for axis, side in FACES:
                on_face = CORNERS[:, axis] == side
                crossing = inside[:, on_face].any(1) & ~inside[:, on_face].all(1)
                step = 1 if side else -1
                # the neighbour's cell must lie inside the grid: its low corner at 0 .. shape - 2
                target = position[:, axis] + step
                crossing &= (target >= 0) & (target <= self.shape[axis] - 2)
                candidates.append(new[crossing] + step * self.strides[axis])
            new = np.setdiff1d(np.unique(np.concatenate(candidates)), active, assume_unique=True)
            active = np.union1d(active, new)
        return active


def _may_cross(values: np.ndarray, size: int, cell: float) -> np.ndarray:
    """Blocks that may hold the surface; at single cells, those where the sign changes."""
    mixed = (values > 0).any(1) & (values <= 0).any(1)
    if size == 1:
        return mixed
    return mixed | (np.abs(values).min(1) < SAFETY * np.sqrt(3) / 2 * size * cell)


def sample_field(
    model: NeuralField, low: np.ndarray, high: np.ndarray, resolution: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Field values on a grid over [low, high] (unit frame), evaluated coarse-to-fine.

    Returns the values (1.0 where not evaluated), the active cells (M, 3) (low-corner indices of
    the cells that may hold the surface; all their corners are evaluated), the origin and the cell size.
    """
    cell = 1.0 / resolution
    block = block_size(cell)
    blocks = -(-(np.ceil((high - low) / cell).astype(int) + 2 * PAD_CELLS) // block)
    origin = (low + high) / 2 - blocks * block * cell / 2
    grid = _Grid(model, origin, cell, tuple(int(n) for n in blocks * block + 1), device)
    starts = np.meshgrid(*(np.arange(n) * block for n in blocks), indexing="ij")
    cells = np.ravel_multi_index([start.ravel() for start in starts], grid.shape)
    size = block
    while True:
        cells = cells[_may_cross(grid.corner_values(cells, size), size, cell)]
        if size == 1:
            break
        size //= 2
        cells = (cells[:, None] + grid.corner_offsets * size).reshape(-1)
    if len(cells):
        cells = grid.close_cracks(cells)
    return grid.values, np.stack(np.unravel_index(cells, grid.shape), -1), origin, cell


def extract_surface(
    model: NeuralField, low: np.ndarray, high: np.ndarray, resolution: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Closed, edge-manifold triangle mesh of the field's zero level, in the unit frame.

    ``resolution`` is the number of cells along the longest side of [low, high].
    Returns vertices (V, 3) float64 and outward-wound triangles (T, 3) int64.
    """
    values, cells, origin, cell = sample_field(model, low, high, resolution, device)
    if len(cells) == 0:  # active cells are exactly those where the sign changes
        raise NoSurfaceError("no surface found: the field is empty (outside everywhere)")
    mask = np.zeros(values.shape, dtype=bool)
    mask[tuple((cells + 1).T)] = True  # skimage processes cell c where mask[c + 1] is set
    vertices, triangles, _, _ = marching_cubes(
        values, 0.0, spacing=(cell, cell, cell), mask=mask, method="lewiner", allow_degenerate=False
    )
    vertices = vertices.astype(np.float64) + origin
    triangles = triangles.astype(np.int64)
    if signed_volume(vertices, triangles) < 0:
        triangles = triangles[:, ::-1].copy()
    return vertices, triangles


def signed_volume(vertices: np.ndarray, triangles: np.ndarray) -> float:
    """Volume enclosed by a triangle mesh; positive when its faces wind outwards."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)
