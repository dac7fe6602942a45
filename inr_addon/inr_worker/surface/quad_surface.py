"""A quad surface: the dual of the marching-cubes mesh (after Nielson's "Dual Marching Cubes").

Each marching-cubes triangle lies inside one grid cell. The triangles of one cell that share edges form a
*patch*; most crossed cells hold one, a cell with an ambiguous case two to four, and each patch gets its own
dual vertex. That is the answer to "a cell that needs two vertices": one per separate piece of surface in it,
so that no vertex joins sheets that only pass close by. Every marching-cubes vertex lies on a crossed grid
edge, and its fan of triangles runs through the four cells around that edge, one patch each: it becomes one
quad over those four patches' vertices, in fan order (so outward-wound like the triangles). Since the
marching-cubes mesh is closed and edge-manifold, so is its dual. The rare vertex whose fan runs through
three patches (or more than four) gives a triangle (or a fan of triangles) instead.

Each dual vertex is placed where the planes through its patch's edge crossings, along the field's gradient
there, meet best (a quadratic error function, regularised towards the crossings' mean and clamped to the
patch's cell), so that sharp edges and corners come back sharp.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


class Field(Protocol):
    """What :func:`field_gradient` needs of a field: values at points (N, 3)."""

    def evaluate(self, points: torch.Tensor) -> torch.Tensor: ...


Gradient = Callable[[np.ndarray], np.ndarray]  # points (N, 3) -> the field's gradient there (N, 3)

QEF_REGULARISATION = 0.05  # pull towards the crossings' mean, per crossing (a unit normal adds 1 per crossing)
MAX_FAN_RUNS = 64  # most patches one vertex's fan passes through (four but for rare ambiguous cases)
CELL_BITS = 21  # bits per axis of a cell's flat id
GRADIENT_STEP_CELLS = 0.25  # half the width of the central differences, in cells


def triangle_cells(vertices: np.ndarray, triangles: np.ndarray, origin: np.ndarray, cell: float) -> np.ndarray:
    """The flat id (T,) of the grid cell that holds each triangle (from its centroid)."""
    centroid = vertices[triangles].mean(1)
    index = np.floor((centroid - origin) / cell).astype(np.int64)
    return (index[:, 0] << (2 * CELL_BITS)) | (index[:, 1] << CELL_BITS) | index[:, 2]


def corner_successors(triangles: np.ndarray, count: int) -> np.ndarray:
    """For each corner (3T, corner ``3 t + i``), the next corner around its vertex, turning with the winding."""
    vertex = triangles.reshape(-1)
    following = np.roll(triangles, -1, axis=1).reshape(-1)
    preceding = np.roll(triangles, 1, axis=1).reshape(-1)
    keys = vertex * count + following
    order = np.argsort(keys)
    wanted = vertex * count + preceding  # the next triangle around the vertex has the edge (vertex, preceding)
    position = np.searchsorted(keys[order], wanted)
    position = np.minimum(position, len(order) - 1)
    if not (keys[order][position] == wanted).all():
        raise ValueError("the triangle mesh is not closed and consistently wound")
    return order[position]


def patches(triangles: np.ndarray, cells: np.ndarray, successor: np.ndarray) -> np.ndarray:
    """Each triangle's patch (T,): the triangles of one cell that share edges, numbered from 0."""
    corners = np.arange(3 * len(triangles))
    # a corner and its successor's triangle share the edge from the corner's vertex to its preceding vertex
    first, second = corners // 3, successor // 3
    same = cells[first] == cells[second]
    graph = coo_matrix(
        (np.ones(int(same.sum()), dtype=np.int8), (first[same], second[same])), shape=(len(triangles),) * 2
    )
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def dual_faces(
    triangles: np.ndarray, patch: np.ndarray, successor: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One face per marching-cubes vertex over the patches its fan passes through, in fan order: quads
    (Q, 4) and triangles (F, 3) of patch numbers, and each quad's marching-cubes vertex (Q,); a fan through
    more than four patches gives a fan of triangles."""
    corner_patch = np.repeat(patch, 3)
    predecessor = np.empty_like(successor)
    predecessor[successor] = np.arange(len(successor))
    starts = np.flatnonzero(corner_patch != corner_patch[predecessor])  # corners that begin a run of one patch
    is_start = np.zeros(len(successor), dtype=bool)
    is_start[starts] = True
    following = successor[starts]  # each run's next run, along the fan
    for _ in range(MAX_FAN_RUNS * 8):
        pending = ~is_start[following]
        if not pending.any():
            break
        following[pending] = successor[following[pending]]
    next_start = np.empty(len(successor), dtype=np.int64)
    next_start[starts] = following
    vertex = triangles.reshape(-1)
    runs = np.bincount(vertex[starts], minlength=triangles.max() + 1)
    order = starts[np.argsort(vertex[starts], kind="stable")]
    first_of_vertex = order[np.r_[0, np.flatnonzero(np.diff(vertex[order])) + 1]] if len(order) else order
    ring = [first_of_vertex]
    for _ in range(int(runs.max(initial=0)) - 1):
        ring.append(next_start[ring[-1]])
    counts = runs[vertex[first_of_vertex]]
    quads = np.stack([corner_patch[c] for c in ring[:4]], 1)[counts == 4] if len(ring) >= 4 else np.zeros((0, 4), int)
    fans = [np.zeros((0, 3), dtype=np.int64)]
    for k in np.unique(counts):
        if k == 4 or k < 3:  # fewer than three patches: the vertex lies inside one piece of surface
            continue
        polygon = np.stack([corner_patch[c] for c in ring[:k]], 1)[counts == k]
        fans.extend(polygon[:, [0, i, i + 1]] for i in range(1, k - 1))
    quad_vertices = vertex[first_of_vertex][counts == 4]
    return quads.astype(np.int64), np.concatenate(fans).astype(np.int64), quad_vertices


def place_vertices(
    vertices: np.ndarray,
    triangles: np.ndarray,
    patch: np.ndarray,
    cells: np.ndarray,
    origin: np.ndarray,
    cell: float,
    gradient: Gradient,
) -> np.ndarray:
    """One position per patch (P, 3): its quadratic error function's minimum over the crossings (the
    marching-cubes vertices) of its triangles, with the field's gradient as their normals, in its cell."""
    count = int(patch.max()) + 1
    pairs = np.unique(np.repeat(patch, 3) * len(vertices) + triangles.reshape(-1))
    owner, member = pairs // len(vertices), pairs % len(vertices)
    used, local = np.unique(member, return_inverse=True)
    normals = gradient(vertices[used])
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)[local]
    points = vertices[member]
    members = np.bincount(owner, minlength=count).astype(np.float64)
    mean = np.stack([np.bincount(owner, points[:, a], count) for a in range(3)], 1) / members[:, None]
    offset = points - mean[owner]
    along = np.einsum("ij,ij->i", normals, offset)
    matrix = np.zeros((count, 3, 3))
    rhs = np.zeros((count, 3))
    for a in range(3):
        rhs[:, a] = np.bincount(owner, normals[:, a] * along, count)
        for b in range(3):
            matrix[:, a, b] = np.bincount(owner, normals[:, a] * normals[:, b], count)
    matrix += QEF_REGULARISATION * members[:, None, None] * np.eye(3)
    placed = mean + np.linalg.solve(matrix, rhs[..., None])[..., 0]
    patch_cell = np.zeros(count, dtype=np.int64)
    patch_cell[patch] = cells
    mask = (1 << CELL_BITS) - 1
    index = np.stack([patch_cell >> (2 * CELL_BITS), (patch_cell >> CELL_BITS) & mask, patch_cell & mask], 1)
    low = origin + index * cell
    return np.clip(placed, low, low + cell)


def quad_surface(
    vertices: np.ndarray, triangles: np.ndarray, origin: np.ndarray, cell: float, gradient: Gradient
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The dual of a closed, outward-wound marching-cubes mesh on the grid (``origin``, ``cell``): vertices
    (P, 3), quads (Q, 4) and the few triangles (F, 3) where a fan does not pass through four patches."""
    cells = triangle_cells(vertices, triangles, origin, cell)
    successor = corner_successors(triangles, len(vertices))
    patch = patches(triangles, cells, successor)
    quads, fans, quad_vertices = dual_faces(triangles, patch, successor)
    placed = place_vertices(vertices, triangles, patch, cells, origin, cell, gradient)
    return separate_double_edges(placed, quads, fans, quad_vertices, vertices, triangles)


def separate_double_edges(
    placed: np.ndarray,
    quads: np.ndarray,
    fans: np.ndarray,
    quad_vertices: np.ndarray,
    vertices: np.ndarray,
    triangles: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where two patches meet across two separate marching-cubes edges (both cells take both pieces of an
    ambiguous face's contour), their dual edge would be shared by four quads. Each of the two meetings gets a
    vertex of its own on that edge, at the middle of its marching-cubes edge, and its two quads become fans
    of three triangles around it (dual contouring's non-manifold edge, split)."""
    sides = np.sort(np.concatenate([quads[:, [i, (i + 1) % 4]] for i in range(4)]), 1)
    keys = sides[:, 0] * len(placed) + sides[:, 1]
    _, inverse, uses = np.unique(keys, return_inverse=True, return_counts=True)
    crowded = np.flatnonzero(uses[inverse] > 2)
    if not len(crowded):
        return placed, quads, fans
    mc_edges = {
        tuple(sorted(pair))
        for pair in np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]).tolist()
    }
    new_positions: list[np.ndarray] = []
    new_triangles: list[tuple[int, int, int]] = []
    dropped: set[int] = set()
    for key in np.unique(keys[crowded]):
        faces = np.unique(crowded[keys[crowded] == key] % len(quads))
        low, high = divmod(int(key), len(placed))
        remaining = list(faces)
        while len(remaining) >= 2:
            first = remaining.pop(0)
            partner = next(
                (f for f in remaining if tuple(sorted((quad_vertices[first], quad_vertices[f]))) in mc_edges), None
            )
            if partner is None:
                break
            remaining.remove(partner)
            middle = len(placed) + len(new_positions)
            new_positions.append((vertices[quad_vertices[first]] + vertices[quad_vertices[partner]]) / 2)
            for face in (first, partner):
                ring = quads[face].tolist()
                at = next(i for i in range(4) if {ring[i], ring[(i + 1) % 4]} == {low, high})
                ring = ring[at + 1 :] + ring[: at + 1]  # the shared side runs from ring[3] to ring[0]
                new_triangles += [(middle, ring[0], ring[1]), (middle, ring[1], ring[2]), (middle, ring[2], ring[3])]
                dropped.add(int(face))
    kept = np.setdiff1d(np.arange(len(quads)), np.fromiter(dropped, np.int64, len(dropped)))
    positions = np.concatenate([placed, np.reshape(new_positions, (-1, 3))])
    return positions, quads[kept], np.concatenate([fans, np.reshape(new_triangles, (-1, 3))]).astype(np.int64)


def split_quads(quads: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Quads as triangles along both diagonals (4 per quad), with the other triangles: a move that folds
    none of them folds no quad, whichever way it is split."""
    halves = [quads[:, [0, 1, 2]], quads[:, [0, 2, 3]], quads[:, [0, 1, 3]], quads[:, [1, 2, 3]]]
    return np.concatenate([*halves, triangles])


def field_gradient(field: Field, cell: float, device: torch.device) -> Gradient:
    """The field's gradient by central differences a quarter of a cell wide."""
    step = GRADIENT_STEP_CELLS * cell

    def gradient(points: np.ndarray) -> np.ndarray:
        result = np.empty_like(points)
        for axis in range(3):
            offset = np.zeros(3)
            offset[axis] = step
            values = [
                field.evaluate(torch.from_numpy((points + sign * offset).astype(np.float32)).to(device))
                .double()
                .cpu()
                .numpy()
                for sign in (1, -1)
            ]
            result[:, axis] = (values[0] - values[1]) / (2 * step)
        return result

    return gradient


def as_faces(quads: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Quads and triangles as one (F, 4) array; a triangle's fourth index is -1."""
    padded = np.concatenate([triangles, np.full((len(triangles), 1), -1, dtype=np.int64)], 1)
    return np.concatenate([quads, padded])


def quads_and_triangles(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F, 3) or (F, 4) faces (a -1 fourth index marks a triangle) as quads (Q, 4) and triangles (T, 3)."""
    if faces.shape[1] == 3:
        return np.zeros((0, 4), dtype=faces.dtype), faces
    is_triangle = faces[:, 3] < 0
    return faces[~is_triangle], faces[is_triangle, :3]


def triangulated(faces: np.ndarray) -> np.ndarray:
    """Faces as triangles (T, 3): triangles as they are; each quad of (F, 4) faces split along its 0-2 diagonal."""
    quads, triangles = quads_and_triangles(faces)
    return np.concatenate([triangles, quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])


def surface_diagonals_first(vertices: np.ndarray, faces: np.ndarray, field: Field, device: torch.device) -> np.ndarray:
    """The faces, each quad turned so that its 0-2 diagonal (the one Blender and :func:`triangulated` split
    it along) is the one whose midpoint lies nearer the field's zero level: along a sharp edge, the
    diagonal on the edge rather than the one across it."""
    quads = np.flatnonzero(faces[:, 3] >= 0)
    corners = vertices[faces[quads]]
    midpoints = np.concatenate([(corners[:, 0] + corners[:, 2]) / 2, (corners[:, 1] + corners[:, 3]) / 2])
    values = np.abs(field.evaluate(torch.from_numpy(midpoints.astype(np.float32)).to(device)).double().cpu().numpy())
    turn = quads[values[len(quads) :] < values[: len(quads)]]
    turned = faces.copy()
    turned[turn] = faces[turn][:, [1, 2, 3, 0]]
    return turned
