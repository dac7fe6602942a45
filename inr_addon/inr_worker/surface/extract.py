"""Surface extraction in memory that grows with the surface, not with the volume.

The grid is cut into chunks of ``CHUNK`` cells a side, and only chunks that the surface may reach are
ever allocated. Inside a chunk the field is evaluated coarse to fine, like an octree: blocks whose
corner values show that the surface may pass through them are split in eight, down to single cells.
The field is close to a signed distance (slope about 1), so a block whose corners all lie farther from
zero than ``SAFETY`` times its half diagonal cannot hold the surface. Cells next to an active cell
across a face where the sign changes are added until none is missing (across chunk borders too), so
the surface closes even where that bound fails.

At the resolution a field stores (``grid_frame``), the lattice is shifted by under half a cell onto the
field's own grid and takes its values as stored (``grid_values``): no interpolation, so marching cubes
sees the exact distances the band holds.

Marching cubes (Lewiner's topology-correct variant) runs on each chunk's array, masked to its active
cells. Points on a chunk's border are evaluated once and shared with its neighbours, so both sides of a
seam see the same values; every vertex is named by its global grid edge and placed from those shared
values, so the chunks' pieces weld into one closed, edge-manifold mesh.
"""

from __future__ import annotations

import dataclasses
import itertools
import typing
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from skimage.measure import marching_cubes

from ..fields.band_field import TRUNCATION
from ..memory import BASE_BYTES, check_memory

ChunkKey = tuple[int, ...]  # a chunk's position, in chunks along each axis


class DistanceField(Protocol):
    """What the extractor needs of a field: values at points (N, 3) of the unit frame."""

    def evaluate(self, points: torch.Tensor) -> torch.Tensor: ...


class StoredGrid(Protocol):
    """A field that stores values on a grid (``BandField``): read directly where the lattice is that grid."""

    def grid_frame(self) -> tuple[np.ndarray, float]: ...  # the grid's point (0, 0, 0) and its cell

    def grid_values(self, points: torch.Tensor) -> torch.Tensor: ...  # at integer grid points (N, 3)


MAX_BLOCK = 16  # most cells per block side at the coarsest level
CHUNK = 128  # cells per chunk side; a multiple of MAX_BLOCK
PAD_CELLS = 2  # empty cells around the bounding box, so that the surface always closes
SAFETY = 1.2  # a block is refined where a corner value is below SAFETY x its half diagonal
CORNERS = np.array([(i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1)])
HALF_DIAGONAL = np.sqrt(3) / 2  # of the unit cube
MEAN_CORNER_DISTANCE = (3 + 3 * np.sqrt(2) + np.sqrt(3)) / 8  # largest mean distance to the unit cube's corners
FACES = [(axis, side) for axis in range(3) for side in (0, 1)]
NEIGHBOURS = np.array(list(itertools.product((-1, 0, 1), repeat=3)))
ROWS_AT_ONCE = 1 << 20  # triangles handled at once where the whole mesh would need temporary copies
EDGE_END = (1e-4, 1 - 1e-4)  # where on its grid edge a vertex may lie, so that no two vertices coincide
# Peak bytes per cell of a coarse block's face, over the blocks that the surface may cross (about 250
# measured on armadillo at 512 to 2048: the chunks' pieces, welding and the worker's output copies), with a
# margin.
BYTES_PER_BLOCK_FACE_CELL = 320
BYTES_PER_COARSE_POINT = 80  # the coarsest blocks' corners: indices, positions, values, corner tests


class NoSurfaceError(ValueError):
    """The field has no zero crossing inside the box."""


def block_size(cell: float, truncation: float = TRUNCATION) -> int:
    """Cells per side of the coarsest blocks: the largest power of two whose test the field can answer.

    The field saturates at +-truncation, so a corner value proves a block empty only while the
    block's half diagonal, times SAFETY, stays well below the truncation.
    """
    block = 1
    while block * 2 <= MAX_BLOCK and SAFETY * np.sqrt(3) / 2 * block * 2 * cell <= 0.8 * truncation:
        block *= 2
    return block


def _may_cross(values: np.ndarray, size: int, cell: float) -> np.ndarray:
    """Blocks that may hold the surface; at single cells, those where the sign changes.

    Where the field has slope at most 1, a zero at x in a block is no farther from each corner than
    that corner's value, so the smallest value is below the half diagonal and the mean value below
    the largest mean distance from a point of the block to its corners.
    """
    mixed = (values > 0).any(1) & (values <= 0).any(1)
    if size == 1:
        return mixed
    magnitude = np.abs(values)
    reach = SAFETY * size * cell
    return mixed | ((magnitude.min(1) < HALF_DIAGONAL * reach) & (magnitude.mean(1) < MEAN_CORNER_DISTANCE * reach))


@dataclasses.dataclass
class _Lattice:
    """The point grid over the padded box: point (i, j, k) lies at ``origin + (i, j, k) * cell``."""

    model: DistanceField
    device: torch.device
    origin: np.ndarray
    cell: float
    block: int
    cells: np.ndarray  # (3,) cells per axis, a multiple of block
    grid_offset: np.ndarray | None = None  # (3,) where the lattice is the field's own grid: its point (0, 0, 0) there

    @property
    def points(self) -> np.ndarray:
        return self.cells + 1

    def evaluate(self, points: np.ndarray) -> np.ndarray:
        """Field values at integer grid points (N, 3); the grid's outer layer is forced outside."""
        if self.grid_offset is not None:
            stored = typing.cast(StoredGrid, self.model)
            values = (
                stored.grid_values(torch.from_numpy(points + self.grid_offset).to(self.device)).float().cpu().numpy()
            )
        else:
            positions = torch.from_numpy((self.origin + points * self.cell).astype(np.float32)).to(self.device)
            values = self.model.evaluate(positions).float().cpu().numpy()
        # The outer layer is outside by construction: the surface closes even where the field errs.
        on_boundary = ((points == 0) | (points == self.points - 1)).any(1)
        values[on_boundary] = np.maximum(values[on_boundary], self.cell)
        return values


def _lattice(
    model: DistanceField, low: np.ndarray, high: np.ndarray, resolution: int, device: torch.device
) -> _Lattice:
    cell = 1.0 / resolution
    block = block_size(cell, getattr(model, "truncation", TRUNCATION))
    blocks = -(-(np.ceil((np.asarray(high) - low) / cell).astype(np.int64) + 2 * PAD_CELLS) // block)
    origin = (np.asarray(low) + high) / 2 - blocks * block * cell / 2
    stored_frame = getattr(model, "grid_frame", None)
    if stored_frame is not None:
        grid_origin, grid_cell = stored_frame()
        if grid_cell == cell:  # on the field's own grid: shifted by under half a cell
            steps = np.round((origin - grid_origin) / cell)
            shifted = grid_origin + steps * cell
            return _Lattice(model, device, shifted, cell, block, blocks * block, steps.astype(np.int64))
    return _Lattice(model, device, origin, cell, block, blocks * block)


class _Chunk:
    """One chunk's points in small dense arrays; cells and blocks are named by the local flat index
    of their low corner."""

    def __init__(self, lattice: _Lattice, key: ChunkKey, coarse: np.ndarray, shared: dict) -> None:
        self.lattice = lattice
        self.start = np.array(key, dtype=np.int64) * CHUNK
        self.shape = tuple(int(n) for n in np.minimum(CHUNK, lattice.cells - self.start) + 1)
        self.values = np.ones(self.shape, dtype=np.float32)
        self.known = np.zeros(self.shape, dtype=bool)
        self._pending = np.zeros(self.shape, dtype=bool)  # scratch, for de-duplicating points without a sort
        self.strides = np.array([self.shape[1] * self.shape[2], self.shape[2], 1])
        self.corner_offsets = CORNERS @ self.strides
        block = lattice.block
        first = self.start // block
        span = tuple(slice(first[a], first[a] + (self.shape[a] - 1) // block + 1) for a in range(3))
        self.values[::block, ::block, ::block] = coarse[span]
        self.known[::block, ::block, ::block] = True
        for offset in NEIGHBOURS:  # border points that this chunk or a neighbour evaluated before
            points, values = shared.get(tuple(np.array(key) + offset), (None, None))
            if points is None:
                continue
            local = points - self.start
            inside = ((local >= 0) & (local < self.shape)).all(1)
            index = tuple(local[inside].T)
            self.values[index] = values[inside]
            self.known[index] = True

    def border_values(self) -> tuple[np.ndarray, np.ndarray]:
        """The evaluated points on the chunk's border (global (N, 3)) and their values."""
        border = self.known.copy()
        border[1:-1, 1:-1, 1:-1] = False
        local = np.argwhere(border)
        return (local + self.start).astype(np.int32), self.values[tuple(local.T)]

    def corner_values(self, cells: np.ndarray, size: int) -> np.ndarray:
        """Values at the 8 corners of cubes of ``size`` cells with low corners ``cells``: (M, 8)."""
        return self.point_values(cells[:, None] + self.corner_offsets * size)

    def point_values(self, flat: np.ndarray) -> np.ndarray:
        """Values at points (local flat indices, any shape), evaluating those not known yet."""
        values, known, pending = self.values.reshape(-1), self.known.reshape(-1), self._pending.reshape(-1)
        missing = flat[~known[flat]]
        if len(missing):
            pending[missing] = True
            missing = np.flatnonzero(pending)
            pending[missing] = False
            points = np.stack(np.unravel_index(missing, self.shape), -1) + self.start
            values[missing] = self.lattice.evaluate(points)
            known[missing] = True
        return values[flat]

    def refine(self, blocks: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Active cells (local flat) grown from the chunk's coarse ``blocks`` (local flat) and
        from ``seeds`` (local flat cells); and the cells (global (N, 3)) that crack closure adds
        across the chunk's border."""
        cells, size, cell = blocks, self.lattice.block, self.lattice.cell
        while True:
            corners = self.corner_values(cells, size)
            active = _may_cross(corners, size, cell)
            cells, corners = cells[active], corners[active]
            if size == 1:
                break
            size //= 2
            # A block's centre and each of its corners are opposite corners of one of its eight children:
            # where the field has slope at most 1, a zero in that child is no farther from both than the
            # largest sum of distances from a point of the child to two opposite corners.
            centres = self.point_values(cells + self.strides.sum() * size)[:, None]
            near = np.abs(corners) + np.abs(centres) < SAFETY * (1 + np.sqrt(2)) * size * cell
            children = near | ((corners > 0) != (centres > 0))
            cells = (cells[:, None] + self.corner_offsets * size)[children]
        return self.close_cracks(np.concatenate([cells, seeds]))

    def close_cracks(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add face neighbours of cells across faces with a sign change, until none is missing.

        Neighbours beyond the chunk's border (inside the grid) are returned as global cells.
        """
        active = np.unique(cells)
        new = active
        beyond = [np.zeros((0, 3), np.int64)]
        while len(new):
            inside = self.corner_values(new, 1) <= 0
            position = np.stack(np.unravel_index(new, self.shape), -1)
            candidates = []
            for axis, side in FACES:
                on_face = CORNERS[:, axis] == side
                crossing = inside[:, on_face].any(1) & ~inside[:, on_face].all(1)
                step = 1 if side else -1
                target = position[:, axis] + step  # the neighbour's low corner, local
                global_target = target + self.start[axis]
                crossing &= (global_target >= 0) & (global_target <= self.lattice.cells[axis] - 1)
                in_chunk = (target >= 0) & (target <= self.shape[axis] - 2)
                leaving = position[crossing & ~in_chunk] + self.start
                leaving[:, axis] += step
                beyond.append(leaving)
                candidates.append(new[crossing & in_chunk] + step * self.strides[axis])
            new = np.setdiff1d(np.unique(np.concatenate(candidates)), active, assume_unique=True)
            active = np.union1d(active, new)
        return active, np.concatenate(beyond)

    def mesh(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Marching cubes on the active ``cells``: vertex keys (global edge), positions and triangles."""
        cell = self.lattice.cell
        # Lewiner's tables only see the signs and, in ambiguous cells, the values; clamping them near the
        # surface keeps every vertex well inside its edge, so that the edge can be read off its position.
        magnitude = np.minimum(np.abs(self.values), 2 * cell) + 0.05 * cell
        volume = np.where(self.values <= 0, -magnitude, magnitude).astype(np.float32)
        mask = np.zeros(self.shape, dtype=bool)
        mask.reshape(-1)[cells + self.strides.sum()] = True  # skimage meshes cell c where mask[c + 1] is set
        vertices, triangles, _, _ = marching_cubes(volume, 0.0, mask=mask, method="lewiner")
        vertices = vertices.astype(np.float64)
        fraction = vertices - np.floor(vertices)
        off_grid = np.minimum(fraction, 1 - fraction)
        # Lewiner adds a vertex inside some ambiguous cells; it belongs to that cell alone.
        interior = (off_grid > 1e-4).sum(1) > 1
        axis = np.argmax(off_grid, 1)
        low = np.rint(vertices).astype(np.int64)
        rows = np.arange(len(vertices))
        low[rows, axis] = np.floor(vertices[rows, axis])
        low[interior] = 0
        high = low.copy()
        high[rows, axis] += 1
        start_value = self.values[tuple(low.T)].astype(np.float64)
        end_value = self.values[tuple(high.T)].astype(np.float64)
        along = np.divide(start_value, start_value - end_value, out=np.zeros_like(start_value), where=~interior)
        along = np.clip(along, *EDGE_END)
        global_low = low + self.start
        local = np.where(interior[:, None], vertices, low + np.eye(3)[axis] * along[:, None])
        positions = (local + self.start) * cell + self.lattice.origin
        keys = np.ravel_multi_index(tuple(global_low.T), tuple(self.lattice.points)) * 3 + axis
        keys[interior] = -1 - np.arange(interior.sum())  # never welded; made unique across chunks in _weld
        return keys, positions, triangles  # triangles index this chunk's vertices


def grid_frame(model: DistanceField, low: np.ndarray, high: np.ndarray, resolution: int) -> tuple[np.ndarray, float]:
    """The origin (3,) and cell of the grid that :func:`extract_surface` meshes on: grid point (i, j, k) lies at
    ``origin + (i, j, k) * cell``."""
    lattice = _lattice(model, low, high, resolution, torch.device("cpu"))
    return lattice.origin, lattice.cell


def _coarse_values(lattice: _Lattice) -> np.ndarray:
    """Field values at the corners of all coarsest blocks: ``(cells / block + 1)`` per axis."""
    shape = tuple(int(n) for n in lattice.cells // lattice.block + 1)
    points = np.indices(shape).reshape(3, -1).T * lattice.block
    return lattice.evaluate(points).reshape(shape)


def _active_blocks(coarse: np.ndarray, lattice: _Lattice) -> np.ndarray:
    """Low corners (grid points, (M, 3)) of the coarsest blocks that may hold the surface."""
    n = tuple(s - 1 for s in coarse.shape)
    corners = np.stack([coarse[i : i + n[0], j : j + n[1], k : k + n[2]].reshape(-1) for i, j, k in CORNERS], -1)
    active = np.flatnonzero(_may_cross(corners, lattice.block, lattice.cell))
    return np.stack(np.unravel_index(active, n), -1).astype(np.int64) * lattice.block


def estimate_memory(active_blocks: int, block: int) -> int:
    """A generous bound on the extraction's peak memory, in bytes, from the number of coarsest blocks
    that the surface may cross: the surface crosses about ``block**2`` cells of each."""
    return BASE_BYTES + active_blocks * block**2 * BYTES_PER_BLOCK_FACE_CELL


@dataclasses.dataclass
class _Pieces:
    """Each chunk's part of the surface and its active cells, as last meshed."""

    cells: dict = dataclasses.field(default_factory=dict)
    meshes: dict = dataclasses.field(default_factory=dict)


def _mesh_chunks(
    lattice: _Lattice, coarse: np.ndarray, blocks: np.ndarray, on_chunk: Callable[[int, int], None] | None = None
) -> _Pieces:
    """Refine and mesh every chunk that the surface may reach, following crack closure across borders;
    ``on_chunk(done, total)`` after each."""
    chunk_of_block = blocks // CHUNK
    order = np.lexsort(chunk_of_block.T[::-1])
    blocks, chunk_of_block = blocks[order], chunk_of_block[order]
    keys, first = np.unique(chunk_of_block, axis=0, return_index=True)
    blocks_by_chunk = {tuple(k): b for k, b in zip(keys.tolist(), np.split(blocks, first[1:]))}
    seeds: dict[tuple, list[np.ndarray]] = {}
    shared: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    pieces = _Pieces()
    queue = sorted(blocks_by_chunk)
    processed = 0
    while queue:
        key = queue.pop(0)
        chunk = _Chunk(lattice, key, coarse, shared)
        own_blocks = blocks_by_chunk.get(key, np.zeros((0, 3), np.int64)) - chunk.start
        own_seeds = np.concatenate(seeds.get(key, [np.zeros((0, 3), np.int64)])) - chunk.start
        cells, beyond = chunk.refine(
            np.ravel_multi_index(tuple(own_blocks.T), chunk.shape),
            np.ravel_multi_index(tuple(own_seeds.T), chunk.shape),
        )
        shared[key] = chunk.border_values()
        pieces.cells[key] = cells
        pieces.meshes[key] = chunk.mesh(cells) if len(cells) else None
        for target in _split_by_chunk(beyond):
            target_key = tuple(int(n) for n in target[0] // CHUNK)
            seeds.setdefault(target_key, []).append(target)
            if target_key in queue:
                continue
            meshed = pieces.cells.get(target_key)
            if meshed is not None:  # mesh it again only if the crack closure found something new there
                local = np.ravel_multi_index(
                    tuple((target - np.array(target_key) * CHUNK).T), _chunk_shape(lattice, target_key)
                )
                if np.isin(local, meshed).all():
                    continue
            queue.append(target_key)
        processed += 1
        if on_chunk:
            on_chunk(processed, processed + len(queue))
    return pieces


def _chunk_shape(lattice: _Lattice, key: ChunkKey) -> ChunkKey:
    return tuple(int(n) for n in np.minimum(CHUNK, lattice.cells - np.array(key) * CHUNK) + 1)


def _split_by_chunk(cells: np.ndarray) -> list[np.ndarray]:
    """Global cells (N, 3) grouped by the chunk that holds them."""
    if not len(cells):
        return []
    cells = np.unique(cells, axis=0)
    keys = cells // CHUNK
    order = np.lexsort(keys.T[::-1])
    cells, keys = cells[order], keys[order]
    _, first = np.unique(keys, axis=0, return_index=True)
    return np.split(cells, first[1:])


def _weld(pieces: _Pieces) -> tuple[np.ndarray, np.ndarray]:
    """One mesh from the chunks' pieces (emptied on the way): vertices on the same grid edge become one."""
    parts = [key for key, part in pieces.meshes.items() if part is not None]
    vertex_count = sum(len(pieces.meshes[key][0]) for key in parts)
    keys = np.empty(vertex_count, dtype=np.int64)
    positions = np.empty((vertex_count, 3))
    triangles = np.empty((sum(len(pieces.meshes[key][2]) for key in parts), 3), dtype=np.int64)
    vertex_start = triangle_start = 0
    for key in parts:
        part_keys, part_positions, part_triangles = pieces.meshes.pop(key)
        keys[vertex_start : vertex_start + len(part_keys)] = part_keys
        positions[vertex_start : vertex_start + len(part_keys)] = part_positions
        triangles[triangle_start : triangle_start + len(part_triangles)] = (
            part_triangles.astype(np.int64) + vertex_start
        )
        vertex_start += len(part_keys)
        triangle_start += len(part_triangles)
    interior = keys < 0
    keys[interior] = -1 - np.arange(interior.sum())  # cell-interior vertices: each its own
    _, first, index = np.unique(keys, return_index=True, return_inverse=True)
    del keys
    vertices = positions[first]
    del positions, first
    for start in range(0, len(triangles), ROWS_AT_ONCE):
        rows = slice(start, start + ROWS_AT_ONCE)
        triangles[rows] = index[triangles[rows]]
    return vertices, triangles


def extract_surface(
    model: DistanceField,
    low: np.ndarray,
    high: np.ndarray,
    resolution: int,
    device: torch.device,
    memory_limit: int | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Closed, edge-manifold triangle mesh of the field's zero level, in the unit frame.

    ``model`` is anything with ``evaluate(points (N, 3)) -> values (N,)``. ``resolution`` is the
    number of cells along the longest side of [low, high]. Before meshing, the memory needed is
    estimated from the blocks that the surface may cross; MemoryLimitError is raised if it exceeds
    ``memory_limit`` bytes (default: the memory free now). ``on_chunk(done, total)`` follows the meshing.
    Returns vertices (V, 3) float64 and outward-wound triangles (T, 3) int64.
    """
    lattice = _lattice(model, low, high, resolution, device)
    coarse_points = int(np.prod(lattice.cells // lattice.block + 1))
    check_memory(BASE_BYTES + coarse_points * BYTES_PER_COARSE_POINT, resolution, memory_limit)
    coarse = _coarse_values(lattice)
    blocks = _active_blocks(coarse, lattice)
    needed = estimate_memory(len(blocks), lattice.block) + coarse_points * BYTES_PER_COARSE_POINT
    check_memory(needed, resolution, memory_limit)
    pieces = _mesh_chunks(lattice, coarse, blocks, on_chunk)
    if not any(len(cells) for cells in pieces.cells.values()):  # active cells are those where the sign changes
        raise NoSurfaceError("no surface found: the field is empty (outside everywhere)")
    vertices, triangles = _weld(pieces)
    if signed_volume(vertices, triangles) < 0:
        for start in range(0, len(triangles), ROWS_AT_ONCE):
            rows = slice(start, start + ROWS_AT_ONCE)
            triangles[rows] = triangles[rows, ::-1]
    return vertices, triangles


def signed_volume(vertices: np.ndarray, triangles: np.ndarray) -> float:
    """Volume enclosed by a triangle mesh; positive when its faces wind outwards."""
    volume = 0.0
    for start in range(0, len(triangles), ROWS_AT_ONCE):
        a, b, c = (vertices[triangles[start : start + ROWS_AT_ONCE, i]] for i in range(3))
        volume += float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum())
    return volume / 6
