"""Surface extraction: marching cubes (Lewiner's topology-correct variant) on the field,
evaluated coarse-to-fine so that only blocks near the surface are sampled densely."""
from __future__ import annotations

import numpy as np
import torch
from skimage.measure import marching_cubes

from .model import NeuralField

BLOCK = 8  # cells per block side in the coarse pass
PAD_CELLS = 2  # empty cells around the bounding box, so that the surface always closes
SAFETY = 2.0  # a block is refined where |f| at a corner is below SAFETY x its diagonal


class NoSurfaceError(ValueError):
    """The field has no zero crossing inside the box."""


def _grid_axes(low: np.ndarray, high: np.ndarray, resolution: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Origin, cell size and block counts of a grid of whole blocks that covers [low, high]."""
    cell = 1.0 / resolution
    cells = np.ceil((high - low) / cell).astype(int) + 2 * PAD_CELLS
    blocks = -(-cells // BLOCK)
    origin = (low + high) / 2 - blocks * BLOCK * cell / 2
    return origin, cell, blocks


def _points(origin: np.ndarray, cell: float, index: np.ndarray) -> torch.Tensor:
    return torch.from_numpy((origin + index * cell).astype(np.float32))


def sample_field(model: NeuralField, low: np.ndarray, high: np.ndarray, resolution: int,
                 device: torch.device) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Values of the field on a grid over [low, high] (unit frame), exact near the surface.

    Returns the volume, the mask of exactly evaluated points, the grid origin and the cell size.
    Points far from the surface hold +-1 (their side), not the field's value.
    """
    origin, cell, blocks = _grid_axes(low, high, resolution)
    corner_index = np.stack(np.meshgrid(*(np.arange(b + 1) * BLOCK for b in blocks), indexing="ij"), -1)
    corners = model.evaluate(_points(origin, cell, corner_index.reshape(-1, 3)).to(device)).cpu().numpy()
    corners = corners.reshape(*(blocks + 1))
    block_corners = np.stack([corners[i:i + blocks[0], j:j + blocks[1], k:k + blocks[2]]
                              for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    near = np.abs(block_corners).min(0) < SAFETY * BLOCK * cell * np.sqrt(3)
    mixed = (block_corners > 0).any(0) & (block_corners <= 0).any(0)
    active = near | mixed
    side = np.where(block_corners[0] > 0, 1.0, -1.0).astype(np.float32)

    shape = tuple(blocks * BLOCK + 1)
    volume = np.pad(side.repeat(BLOCK, 0).repeat(BLOCK, 1).repeat(BLOCK, 2), ((0, 1),) * 3, mode="edge")
    active_cells = active.repeat(BLOCK, 0).repeat(BLOCK, 1).repeat(BLOCK, 2)
    exact = np.zeros(shape, dtype=bool)
    for i in (0, 1):
        for j in (0, 1):
            for k in (0, 1):
                exact[i:shape[0] - 1 + i, j:shape[1] - 1 + j, k:shape[2] - 1 + k] |= active_cells
    index = np.argwhere(exact)
    if len(index):
        values = model.evaluate(_points(origin, cell, index).to(device)).cpu().numpy()
        volume[exact] = values
    return volume, exact, origin, cell


def extract_surface(model: NeuralField, low: np.ndarray, high: np.ndarray, resolution: int,
                    device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Closed, edge-manifold triangle mesh of the field's zero level, in the unit frame.

    ``resolution`` is the number of cells along the longest side of [low, high].
    Returns vertices (V, 3) float64 and outward-wound triangles (T, 3) int64.
    """
    volume, exact, origin, cell = sample_field(model, low, high, resolution, device)
    # The outer layer is outside by construction: the surface closes even where the field errs.
    for axis in range(3):
        for end in (0, -1):
            face = [slice(None)] * 3
            face[axis] = end
            volume[tuple(face)] = np.maximum(volume[tuple(face)], cell)
    if not (volume < 0).any():
        raise NoSurfaceError("no surface found: the field is empty (outside everywhere)")
    vertices, triangles, _, _ = marching_cubes(volume, 0.0, spacing=(cell, cell, cell), mask=exact,
                                               method="lewiner", allow_degenerate=False)
    vertices = vertices.astype(np.float64) + origin
    triangles = triangles.astype(np.int64)
    if signed_volume(vertices, triangles) < 0:
        triangles = triangles[:, ::-1].copy()
    return vertices, triangles


def signed_volume(vertices: np.ndarray, triangles: np.ndarray) -> float:
    """Volume enclosed by a triangle mesh; positive when its faces wind outwards."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)
