"""Vertices of an extracted surface moved onto the surface itself: onto the source mesh where it is at
hand (at fit time), onto the field's zero level where it is not (re-extraction).

Marching cubes puts each vertex on a grid edge, where the interpolated field crosses zero: off the true
surface by the interpolation's error, and unevenly spread (slivers beside tiny triangles), so that the
triangles' chords stray from the surface. Here the vertices are spread evenly along the surface (a few
rounds of tangential smoothing) and projected back onto it after each round, as Voxel Remesh does with
its source. Then vertices within half a cell of one of the source's sharp edges (creases) go onto it, so
that the edge comes back sharp: at fit time onto the source's, at re-extraction onto those the field kept.

A vertex moves only where its projection is trustworthy (see :class:`SourceProjection` and
:class:`FieldProjection`); elsewhere it stays where marching cubes put it. Only positions change, so the
surface stays closed and edge-manifold; a last guard backs off the moves of any triangle that they
would flip against its marching-cubes normal (or shrink to nothing), until no triangle does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import igl
import numpy as np
import torch
from scipy.sparse import coo_matrix

from ..sources.sampling import is_closed

RELAX_ROUNDS = 3  # rounds of tangential smoothing, each followed by a projection
RELAX_WEIGHT = 0.5  # share of the way to the neighbours' mean (in the tangent plane) moved each round
MAX_MOVE_CELLS = 1.5  # farthest a vertex moves onto the surface, in cells
SOURCE_NORMAL_AGREEMENT = 0.5  # open sources: |cos| between the nearest triangle's normal and the vertex's
DISPLACEMENT_ALONG_NORMAL = 0.7  # open sources: |cos| between the move and the vertex's normal, for moves
CREASE_ANGLE = 30.0  # degrees between two source faces over which their shared edge is a crease
CREASE_SNAP_CELLS = 0.5  # a vertex this close to a crease (in cells) goes onto it
SMALL_MOVE_CELLS = 0.1  # shorter than this (in cells) the move's direction is not checked
CHORD_STEPS = 2  # steps onto the field's zero level along a vertex's normal
SLOPE_PROBE_CELLS = 0.25  # the slope along the normal from the values at the vertex and this far (in cells) out
MIN_SLOPE = 0.3  # a field with a slope under this (about 1 for a distance) says little about where its zero is
LEVEL_TOLERANCE_CELLS = 0.02  # a Newton projection must end this close to the zero level (in cells)
GUARD_ROUNDS = 4  # halvings of a folding triangle's moves before they are undone
DEGENERATE_AREA = 1e-10  # in squared cells: triangles this small are not checked for folds
ROWS = 1 << 18  # points a projection handles at once

Projector = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]  # (points, normals) -> (targets, ok)
Creases = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # points -> (targets on sharp edges, ok)


class Field(Protocol):
    """What :class:`FieldProjection` needs of a field: values at points (N, 3)."""

    def evaluate(self, points: torch.Tensor) -> torch.Tensor: ...


def face_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Each triangle's normal times twice its area, (T, 3)."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    return np.cross(b - a, c - a)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (zero where the faces around a vertex cancel)."""
    weighted = face_normals(vertices, triangles)
    corners = triangles.reshape(-1)
    normals = np.stack(
        [np.bincount(corners, np.repeat(weighted[:, axis], 3), minlength=len(vertices)) for axis in range(3)], 1
    )
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


def crease_edges(triangles: np.ndarray, unit_normals: np.ndarray, angle: float) -> np.ndarray:
    """Edges (E, 2) shared by two triangles whose normals differ by more than ``angle`` degrees."""
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), 1)
    faces = np.tile(np.arange(len(triangles)), 3)
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    edges, faces = edges[order], faces[order]
    pairs = np.flatnonzero((edges[1:] == edges[:-1]).all(1))
    cosine = np.einsum("ij,ij->i", unit_normals[faces[pairs]], unit_normals[faces[pairs + 1]])
    return edges[pairs][cosine < np.cos(np.radians(angle))]


def crease_segments(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """A mesh's sharp edges (over ``CREASE_ANGLE``) as segments (E, 2, 3): what a field keeps of its source's
    creases, so that re-extraction brings them back without the source."""
    normals = face_normals(vertices, triangles)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    unit_normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
    return vertices[crease_edges(triangles, unit_normals, CREASE_ANGLE)]


class CreaseLines:
    """Sharp edges, segments (E, 2, 3): called with points, gives their nearest point on an edge and whether
    it is within ``CREASE_SNAP_CELLS``: marching cubes cuts across sharp edges, and vertices put on them bring
    the edges back."""

    def __init__(self, segments: np.ndarray, cell: float) -> None:
        self.cell = cell
        self._ends = np.ascontiguousarray(segments.reshape(-1, 3), dtype=np.float64)
        first = np.arange(0, len(self._ends), 2)
        self._segments = np.stack([first, first + 1, first + 1], 1)  # as flat triangles
        self._tree: igl.AABB | None = None
        if len(segments):
            self._tree = igl.AABB()
            self._tree.init(self._ends, self._segments)

    def __call__(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._tree is None:
            return points, np.zeros(len(points), dtype=bool)
        squared, _, nearest = self._tree.squared_distance(self._ends, self._segments, np.ascontiguousarray(points))
        return nearest, np.sqrt(squared) <= CREASE_SNAP_CELLS * self.cell


class SourceProjection:
    """The nearest point of the source mesh (libigl's AABB tree), where that point bounds the solid.

    A closed source bounds the solid everywhere: a vertex goes onto its nearest point when that point's
    triangle faces the same way as the vertex (so that no vertex jumps to the far side of a thin part).
    An open source does not bound it across its holes, where the solid's surface spans the air: there
    the nearest point lies on a hole's rim, beside the vertex rather than under it. So a vertex of an open
    source moves only where the nearest triangle is about parallel to the surface and the move runs
    along the vertex's normal.
    """

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray, cell: float) -> None:
        self.vertices = np.ascontiguousarray(vertices, dtype=np.float64)
        self.triangles = np.ascontiguousarray(triangles, dtype=np.int64)
        self.cell = cell
        self.closed = is_closed(self.triangles)
        normals = face_normals(self.vertices, self.triangles)
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        self.normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
        volume = float(np.einsum("ij,ij->", self.vertices[self.triangles[:, 0]], normals)) / 6
        self.outward = 1.0 if volume >= 0 else -1.0  # a closed mesh may wind inwards
        self._tree = igl.AABB()
        self._tree.init(self.vertices, self.triangles)
        self.onto_creases = CreaseLines(crease_segments(self.vertices, self.triangles), cell)

    def __call__(self, points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        targets, ok = np.empty_like(points), np.empty(len(points), dtype=bool)
        for start in range(0, len(points), ROWS):
            rows = slice(start, start + ROWS)
            targets[rows], ok[rows] = self._project(np.ascontiguousarray(points[rows]), normals[rows])
        return targets, ok

    def _project(self, points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        squared, faces, nearest = self._tree.squared_distance(self.vertices, self.triangles, points)
        distance = np.sqrt(squared)
        facing = np.einsum("ij,ij->i", self.normals[faces], normals)
        ok = distance <= MAX_MOVE_CELLS * self.cell
        if self.closed:
            return nearest, ok & (facing * self.outward > 0)
        along = np.abs(np.einsum("ij,ij->i", nearest - points, normals))
        short = distance <= SMALL_MOVE_CELLS * self.cell
        ok &= np.abs(facing) >= SOURCE_NORMAL_AGREEMENT
        ok &= short | (along >= DISPLACEMENT_ALONG_NORMAL * distance)
        return nearest, ok


class FieldProjection:
    """The field's zero level along each vertex's normal, by Newton's steps with the slope measured once
    (a forward difference from the vertex).

    A vertex moves only where the field rises along its normal (it is a distance there, not a clamp,
    and its outside is where the vertex's normal points), the steps end on the zero level and the move
    stays within ``MAX_MOVE_CELLS``.
    """

    def __init__(self, field: Field, cell: float, device: torch.device) -> None:
        self.field, self.cell, self.device = field, cell, device

    def _values(self, points: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(points.astype(np.float32)).to(self.device)
        return self.field.evaluate(tensor).double().cpu().numpy()

    def __call__(self, points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        targets, ok = np.empty_like(points), np.empty(len(points), dtype=bool)
        for start in range(0, len(points), ROWS):
            rows = slice(start, start + ROWS)
            targets[rows], ok[rows] = self._project(points[rows], normals[rows])
        return targets, ok

    def _project(self, points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        reach, probe = MAX_MOVE_CELLS * self.cell, SLOPE_PROBE_CELLS * self.cell
        value = self._values(points)
        slope = (self._values(points + probe * normals) - value) / probe
        ok = slope >= MIN_SLOPE
        slope = np.where(ok, slope, 1.0)
        along = np.zeros(len(points))
        for _ in range(CHORD_STEPS):
            along = np.clip(along - value / slope, -reach, reach)
            value = self._values(points + along[:, None] * normals)
        ok &= (np.abs(value) <= LEVEL_TOLERANCE_CELLS * self.cell) & (np.abs(along) < reach)
        return points + along[:, None] * normals, ok


def settle(
    vertices: np.ndarray,
    triangles: np.ndarray,
    project: Projector,
    cell: float,
    creases: Creases | None = None,
    relax: float = RELAX_WEIGHT,
) -> np.ndarray:
    """The vertices spread along the surface and moved onto it by ``project``, then (with ``creases``,
    points -> (targets, ok)) onto sharp edges; see the module's doc.

    ``vertices`` (V, 3) and ``triangles`` (T, 3), outward-wound, as the extractor gives them; ``cell``
    the grid's cell; ``relax`` the share of the way to the neighbours' mean moved each round (0: projections
    only, for vertices that are evenly spread already). Returns new vertices (V, 3); the triangles are unchanged.
    """
    start = np.asarray(vertices, dtype=np.float64)
    if not len(triangles):
        return start.copy()
    normals = vertex_normals(start, triangles)
    neighbours = _neighbour_mean_operator(triangles, len(start))
    current = start
    for _ in range(RELAX_ROUNDS):
        pull = neighbours @ current - current
        pull -= np.einsum("ij,ij->i", pull, normals)[:, None] * normals
        targets, ok = project(current + relax * pull, normals)
        current = np.where(ok[:, None], targets, start)
    if creases is not None:  # only vertices that went onto the surface go on to its creases
        crease_points, near_crease = creases(current)
        current = np.where((near_crease & ok)[:, None], crease_points, current)
    return _unfold(start, current, triangles, cell)


def _neighbour_mean_operator(triangles: np.ndarray, count: int):
    """The sparse (V, V) matrix that averages each vertex's edge neighbours."""
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    columns = np.concatenate([edges[:, 1], edges[:, 0]])
    matrix = coo_matrix((np.ones(len(rows)), (rows, columns)), shape=(count, count)).tocsr()
    matrix.data[:] = 1.0  # each edge once, though two triangles name it
    degree = np.diff(matrix.indptr)
    matrix.data /= np.repeat(np.maximum(degree, 1), degree)
    return matrix


def folded(vertices: np.ndarray, triangles: np.ndarray, reference: np.ndarray, cell: float) -> np.ndarray:
    """Triangles (T,) bool whose normal turned away from ``reference`` (their normals times twice their
    area, (T, 3)) or whose area vanished; triangles with no reference area are never folded."""
    normals = face_normals(vertices, triangles)
    floor = DEGENERATE_AREA * cell**2
    has_reference = np.linalg.norm(reference, axis=1) > floor
    turned = np.einsum("ij,ij->i", normals, reference) <= 0
    vanished = np.linalg.norm(normals, axis=1) <= floor
    return has_reference & (turned | vanished)


def _unfold(start: np.ndarray, moved: np.ndarray, triangles: np.ndarray, cell: float) -> np.ndarray:
    """``moved``, less the moves that fold triangles against their normals at ``start``: the moves of a
    folded triangle's vertices are halved ``GUARD_ROUNDS`` times, then undone, until none folds. After the
    first round only the triangles around the vertices that moved back are checked again."""
    reference = face_normals(start, triangles)
    kept = np.ones(len(start))
    current = np.array(moved, dtype=np.float64)
    checked = np.arange(len(triangles))
    rounds = 0
    while True:
        bad = checked[folded(current, triangles[checked], reference[checked], cell)]
        if not len(bad):
            return current
        corners = np.unique(triangles[bad])
        kept[corners] = 0.5 * kept[corners] if rounds < GUARD_ROUNDS else 0.0
        current[corners] = start[corners] + kept[corners, None] * (moved[corners] - start[corners])
        rounds += 1
        changed = np.zeros(len(start), dtype=bool)
        changed[corners] = True
        checked = np.flatnonzero(changed[triangles].any(1))
