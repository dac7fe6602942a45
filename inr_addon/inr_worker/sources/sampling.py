"""The exact signed distance of a mesh where the field needs it: on the narrow band of bricks around
the surface, and at training points near it; distances from libigl, signs from the nearest point's
pseudonormal where a closed mesh bounds its solid simply, else from the generalized winding number.

Everything here works in the *unit frame*: the mesh's bounding box centred on the origin and
scaled so that its longest side is 1 (see :class:`UnitFrame`).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import igl
import numpy as np

from ..fields.band_field import DOMAIN_HALF_EXTENT, TRUNCATION, FieldConfig

CHUNK = 200_000  # points per distance query, to bound memory on big meshes
WINDING_ACCURACY = 1.0  # libigl's Barnes-Hut accuracy, for closed meshes: agrees with the default 2, 4x faster
OPEN_WINDING_ACCURACY = 2.0  # libigl's default, for open meshes: near 0.5 the cheaper one misplaces the side
ANGLE_WEIGHTED = igl.PerVertexNormalsWeightingType.PER_VERTEX_NORMALS_WEIGHTING_TYPE_ANGLE
UNIFORM_WEIGHTED = igl.PerEdgeNormalsWeightingType.PER_EDGE_NORMALS_WEIGHTING_TYPE_UNIFORM
ALONG_FACE_NORMAL = 1e-6  # an offset within this (1 - cos^2) of its face's normal is over the face's inside
ON_SIDE = 1e-9  # a nearest point's barycentric weight under this puts it on the opposite side of its triangle
SIMPLE_CHECKS = 200_000  # triangles whose outer side is checked before signs come from pseudonormals
SIDE_OFFSET = 1e-6  # unit frame: how far off a triangle's centre its outer side is checked
EDGE_END_SKIP = 1e-6  # share of an edge left out at each end when checking whether it passes through a triangle
BALL_MARGIN_CELLS = 1e-3  # two empty balls must overlap by this much (in cells) to share a side


class InputError(ValueError):
    """The input mesh cannot be fitted; the message is for the user."""


@dataclasses.dataclass(frozen=True)
class UnitFrame:
    """Maps the mesh's own coordinates to the unit frame and back."""

    centre: np.ndarray  # (3,) float64
    scale: float  # longest side of the bounding box

    @classmethod
    def of(cls, vertices: np.ndarray) -> UnitFrame:
        low, high = vertices.min(0), vertices.max(0)
        scale = float((high - low).max())
        if not np.isfinite(scale) or scale <= 0:
            raise InputError("the mesh has no extent: all its vertices are at one point")
        return cls(centre=(low + high) / 2, scale=scale)

    def to_unit(self, points: np.ndarray) -> np.ndarray:
        return (points - self.centre) / self.scale

    def from_unit(self, points: np.ndarray) -> np.ndarray:
        return points * self.scale + self.centre


def clean_mesh(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check and tidy an input mesh: finite coordinates, valid triangles, no degenerate faces."""
    vertices = np.ascontiguousarray(vertices, dtype=np.float64)
    triangles = np.ascontiguousarray(triangles, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise InputError("the mesh has no vertices")
    if triangles.ndim != 2 or triangles.shape[1] != 3 or len(triangles) == 0:
        raise InputError("the mesh has no faces")
    if not np.isfinite(vertices).all():
        raise InputError("the mesh has vertices with NaN or infinite coordinates")
    if triangles.min() < 0 or triangles.max() >= len(vertices):
        raise InputError("the mesh has faces that point at missing vertices")
    return vertices, triangles


def surface_points(vertices: np.ndarray, triangles: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Points spread uniformly by area over the triangles."""
    corners = vertices[triangles]
    areas = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    total = areas.sum()
    if not total > 0:
        raise InputError("no surface found: the mesh's faces have no area")
    chosen = rng.choice(len(triangles), count, p=areas / total)
    u, v = rng.random((2, count, 1))
    flip = (u + v) > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    a, b, c = corners[chosen, 0], corners[chosen, 1], corners[chosen, 2]
    return a + u * (b - a) + v * (c - a)


class DistanceQueries(Protocol):
    """What the narrow band asks of a shape, in its unit frame: a mesh's (:class:`MeshDistance`) or a
    reference image's solid (``silhouette.ShapeDistance``)."""

    closed: bool  # the side changes only across the surface (then a point beyond the band has its brick's side)

    def unsigned(self, points: np.ndarray) -> np.ndarray: ...

    def inside(self, points: np.ndarray) -> np.ndarray: ...

    def unsigned_and_side(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Unsigned distances, and which points are inside where that comes with them (else None)."""
        ...


class MeshDistance:
    """Signed distance to a mesh, with both search trees built once: distance from libigl's AABB tree,
    inside where the generalized winding number (fast, cached hierarchy) exceeds 0.5 in magnitude.

    Where the mesh bounds its solid simply (closed, and no part of it inside the solid: no overlapping
    parts or nested shells), the side of a point also follows from its nearest point, by the angle-weighted
    pseudonormal there (libigl), which comes with the distance at about no cost: the band's points take
    their side that way (on the shared closed meshes it agrees with the winding number at every point)."""

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray) -> None:
        self.vertices, self.triangles = vertices, triangles
        self._tree = igl.AABB()
        self._tree.init(vertices, triangles)
        self._winding = igl.FastWindingNumberBVH()
        self._winding.init(vertices, triangles, 2)
        self.closed = is_closed(triangles)
        self._accuracy = WINDING_ACCURACY if self.closed else OPEN_WINDING_ACCURACY
        self._bounds_simply: bool | None = None
        self._pseudonormals: tuple[np.ndarray, ...] | None = None

    def unsigned(self, points: np.ndarray) -> np.ndarray:
        result = np.empty(len(points))
        for start in range(0, len(points), CHUNK):
            chunk = np.ascontiguousarray(points[start : start + CHUNK], dtype=np.float64)
            result[start : start + CHUNK] = np.sqrt(
                self._tree.squared_distance(self.vertices, self.triangles, chunk)[0]
            )
        return result

    def inside(self, points: np.ndarray) -> np.ndarray:
        result = np.empty(len(points), dtype=bool)
        for start in range(0, len(points), CHUNK):
            chunk = np.ascontiguousarray(points[start : start + CHUNK], dtype=np.float64)
            result[start : start + CHUNK] = np.abs(self._winding.winding_number(chunk, self._accuracy)) > 0.5
        return result

    def signed(self, points: np.ndarray) -> np.ndarray:
        return np.where(self.inside(points), -1.0, 1.0) * self.unsigned(points)

    def unsigned_and_side(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.bounds_simply():
            return self.unsigned(points), None
        distance, inside = np.empty(len(points)), np.empty(len(points), dtype=bool)
        for start in range(0, len(points), CHUNK):
            rows = slice(start, start + CHUNK)
            chunk = np.ascontiguousarray(points[rows], dtype=np.float64)
            squared, faces, nearest = self._tree.squared_distance(self.vertices, self.triangles, chunk)
            distance[rows], inside[rows] = np.sqrt(squared), self._behind_pseudonormal(chunk, faces, nearest)
        return distance, inside

    def _behind_pseudonormal(self, points: np.ndarray, faces: np.ndarray, nearest: np.ndarray) -> np.ndarray:
        """Whether each point lies behind the angle-weighted pseudonormal at its nearest point (on triangle
        ``faces``): the face's normal inside it, the edge's (its two faces' mean) or the corner's (its faces'
        normals weighted by their angles there) where the nearest point is on one."""
        if self._pseudonormals is None:
            face_normals = igl.per_face_normals(self.vertices, self.triangles, np.zeros(3))
            corner_normals = igl.per_vertex_normals(self.vertices, self.triangles, ANGLE_WEIGHTED)
            edge_normals, _, edge_of_side = igl.per_edge_normals(self.vertices, self.triangles, UNIFORM_WEIGHTED)
            self._pseudonormals = face_normals, corner_normals, edge_normals, edge_of_side
        face_normals, corner_normals, edge_normals, edge_of_side = self._pseudonormals
        offsets = points - nearest
        along = np.einsum("ij,ij->i", offsets, face_normals[faces])
        # off the face's inside (or straight over it) the face's normal decides; else its edge's or corner's
        rest = np.flatnonzero(along**2 < (1 - ALONG_FACE_NORMAL) * np.einsum("ij,ij->i", offsets, offsets))
        faces, corners = faces[rest], self.triangles[faces[rest]]
        first, second, third = (self.vertices[corners[:, k]] for k in range(3))
        weights = _barycentric(nearest[rest], first, second, third)
        on_side = weights < ON_SIDE
        normals = face_normals[faces]
        on_edge = np.flatnonzero(on_side.sum(1) == 1)  # on the side opposite the corner whose weight vanished
        side = on_side[on_edge].argmax(1)
        normals[on_edge] = edge_normals[edge_of_side[faces[on_edge] + side * len(self.triangles)]]
        at_corner = np.flatnonzero(on_side.sum(1) >= 2)
        normals[at_corner] = corner_normals[corners[at_corner, weights[at_corner].argmax(1)]]
        along[rest] = np.einsum("ij,ij->i", offsets[rest], normals)
        return along < 0

    def bounds_simply(self) -> bool:
        """Whether the mesh is closed, no edge passes through a triangle (no parts that overlap, however
        little) and no triangle lies inside the solid (no nested shells): just off each triangle on its
        outer side (a sample of ``SIMPLE_CHECKS`` triangles at most), the winding number reads outside."""
        if self._bounds_simply is None:
            self._bounds_simply = self.closed and not self._edges_cross() and self._outer_sides_outside()
        return self._bounds_simply

    def _edges_cross(self) -> bool:
        """Whether an edge meets a triangle strictly between its ends: where two parts overlap, an edge of
        one passes through a triangle of the other, even where neither has a corner or a centre inside."""
        vertices = np.ascontiguousarray(self.vertices, dtype=np.float64)
        triangles = np.ascontiguousarray(self.triangles, dtype=np.int64)
        edges = igl.edges(triangles)
        start, along = vertices[edges[:, 0]], vertices[edges[:, 1]] - vertices[edges[:, 0]]
        inner = (1 - 2 * EDGE_END_SKIP) * along  # the edge less its ends, where its own triangles meet it
        faces, _, _ = self._tree.intersect_ray_first(vertices, triangles, start + EDGE_END_SKIP * along, inner, 1.0)
        return bool((faces >= 0).any())

    def _outer_sides_outside(self) -> bool:
        triangles = self.triangles
        if len(triangles) > SIMPLE_CHECKS:
            triangles = triangles[np.random.default_rng(0).choice(len(triangles), SIMPLE_CHECKS, replace=False)]
        corners = self.vertices[triangles]
        normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        length = np.linalg.norm(normals, axis=1)
        sized = length > 0
        off = corners[sized].mean(1) + SIDE_OFFSET * normals[sized] / length[sized, None]
        return not self.inside(off).any()


def _barycentric(points: np.ndarray, first: np.ndarray, second: np.ndarray, third: np.ndarray) -> np.ndarray:
    """Barycentric weights (N, 3) of points in the plane of triangles (first, second, third), each (N, 3)."""
    along, across, offset = second - first, third - first, points - first
    d00, d01, d11 = (along * along).sum(1), (along * across).sum(1), (across * across).sum(1)
    d20, d21 = (offset * along).sum(1), (offset * across).sum(1)
    denominator = np.maximum(d00 * d11 - d01 * d01, 1e-300)
    weight_second = (d11 * d20 - d01 * d21) / denominator
    weight_third = (d00 * d21 - d01 * d20) / denominator
    return np.stack([1 - weight_second - weight_third, weight_second, weight_third], 1)


def is_closed(triangles: np.ndarray) -> bool:
    """Whether every edge joins exactly two triangles that run along it in opposite directions."""
    ends = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]).astype(np.int64)
    size = int(ends.max()) + 1 if len(ends) else 0
    forward, backward = ends[:, 0] * size + ends[:, 1], ends[:, 1] * size + ends[:, 0]
    forward.sort()
    backward.sort()
    return bool(len(forward)) and bool((forward[1:] != forward[:-1]).all()) and np.array_equal(forward, backward)


def signed_distance(vertices: np.ndarray, triangles: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance to the nearest triangle, negative where the winding number says inside."""
    return MeshDistance(vertices, triangles).signed(points)


def near_samples(distance: MeshDistance, count: int, sigma: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Surface points moved by N(0, sigma), float32 (count, 3), and their signed distances."""
    rng = np.random.default_rng(seed)
    points = surface_points(distance.vertices, distance.triangles, count, rng)
    points = np.clip(points + rng.normal(size=points.shape) * sigma, -DOMAIN_HALF_EXTENT, DOMAIN_HALF_EXTENT)
    return points.astype(np.float32), distance.signed(points).astype(np.float32)


@dataclasses.dataclass
class Band:
    """A mesh in its unit frame, its distance queries and its narrow band (see :func:`narrow_band`)."""

    frame: UnitFrame
    distance: MeshDistance
    keys: np.ndarray
    values: np.ndarray
    inside: np.ndarray
    coarse: np.ndarray

    def arrays(self) -> tuple[np.ndarray, ...]:
        """What :class:`BandField` is built from, in its order."""
        return self.keys, self.values, self.inside, self.coarse


def sample_band(vertices: np.ndarray, triangles: np.ndarray, config: FieldConfig) -> Band:
    """Check the mesh, move it to its unit frame and sample the exact signed distance on its band."""
    vertices, triangles = clean_mesh(vertices, triangles)
    frame = UnitFrame.of(vertices)
    distance = MeshDistance(frame.to_unit(vertices), triangles)
    keys, values, inside = narrow_band(distance, config)
    if not inside.any() and not (values < 0).any():
        raise InputError("no surface found: the mesh encloses no volume (is it a flat sheet or a single face?)")
    return Band(frame, distance, keys, values, inside, coarse_distances(distance, config))


def coarse_distances(distance: DistanceQueries, config: FieldConfig) -> np.ndarray:
    """The exact unsigned distance, clamped to the truncation, at the coarse grid's points (G, G, G).

    Coarse to fine: a block of points whose centre is farther than the truncation plus its half diagonal
    from the mesh reads the truncation everywhere; only the other blocks are split and, at last, queried.
    """
    side, spacing = config.coarse_points, config.coarse_spacing
    result = np.full((side,) * 3, TRUNCATION, dtype=np.float32)
    size = 1
    while side // (size * 2) >= 4:
        size *= 2
    blocks = np.argwhere(np.ones((-(-side // size),) * 3, dtype=bool))
    while size > 1:
        low = blocks * size
        high = np.minimum(low + size - 1, side - 1)
        centres = -DOMAIN_HALF_EXTENT + (low + high) / 2 * spacing
        reach = np.linalg.norm(high - low, axis=1) / 2 * spacing
        blocks = blocks[distance.unsigned(centres) - reach < TRUNCATION]
        size //= 2
        children = (blocks[:, None] * 2 + np.argwhere(np.ones((2, 2, 2), dtype=bool))).reshape(-1, 3)
        blocks = children[(children * size < side).all(1)]
    found = distance.unsigned(-DOMAIN_HALF_EXTENT + blocks * spacing)
    result[tuple(blocks.T)] = np.minimum(found, TRUNCATION)
    return result


def _centres(cells: np.ndarray, size: int, config: FieldConfig) -> np.ndarray:
    """Centres of cubes of ``size`` bricks (low corners ``cells``, in bricks), unit frame."""
    brick_points = size * config.brick - 1  # fine cells spanned by the points of the cube
    return -DOMAIN_HALF_EXTENT + (cells * size * config.brick + brick_points / 2) * config.cell


def _sign_changes(inside: np.ndarray) -> np.ndarray:
    """Cells with a face neighbour on the other side."""
    changed = np.zeros_like(inside)
    for axis in range(3):
        low = [slice(None)] * 3
        high = [slice(None)] * 3
        low[axis], high[axis] = slice(0, -1), slice(1, None)
        differs = inside[tuple(low)] != inside[tuple(high)]
        changed[tuple(low)] |= differs
        changed[tuple(high)] |= differs
    return changed


def _brick_values(
    distance: DistanceQueries,
    config: FieldConfig,
    cells: np.ndarray,
    centres: np.ndarray,
    centre_distances: np.ndarray,
    centre_inside: np.ndarray,
    away: np.ndarray,
) -> np.ndarray:
    """Signed distances, clamped to the band, at the points of the bricks ``cells`` (M, brick^3).

    A point inside the empty ball about its brick's centre is beyond the band on the centre's side;
    a point beyond the band whose own empty ball meets the centre's is on the centre's side too. Only
    the rest need their distance, and only points within the band their winding number. That holds where
    the side changes only across the surface; an open mesh's winding number crosses 0.5 away from it too
    (across holes), so there, and in bricks ``away`` (M,) from every triangle whose side still differs from
    a neighbour's, each point gets its side from the winding number.
    """
    band = config.band
    local = np.argwhere(np.ones((config.brick,) * 3, dtype=bool))
    points = (-DOMAIN_HALF_EXTENT + (cells[:, None] * config.brick + local) * config.cell).reshape(-1, 3)
    count = len(local)
    reach = np.linalg.norm(points - centres.repeat(count, 0), axis=1)
    ball = np.repeat(centre_distances, count)
    centre_side = np.where(np.repeat(centre_inside, count), -1.0, 1.0)
    values = centre_side * band
    unknown = reach >= ball - band
    unknown &= ~_beyond_band_by_blocks(distance, config, cells, centres, centre_distances, unknown)
    unknown = np.flatnonzero(unknown)
    found, found_inside = distance.unsigned_and_side(points[unknown])
    # (where the balls only touch, the segment between the points meets the surface: a margin keeps rounding out)
    far = (found >= band) & (found + ball[unknown] > reach[unknown] + BALL_MARGIN_CELLS * config.cell)
    near = unknown[~far]
    near_inside = distance.inside(points[near]) if found_inside is None else found_inside[~far]
    values[near] = np.where(near_inside, -1.0, 1.0) * np.minimum(found[~far], band)
    undecided = np.repeat(away | (not distance.closed), count)
    undecided[near] = False  # these have their winding number already
    values[undecided] = np.where(distance.inside(points[undecided]), -1.0, 1.0) * np.abs(values[undecided])
    return values.reshape(len(cells), count)


def _beyond_band_by_blocks(
    distance: DistanceQueries,
    config: FieldConfig,
    cells: np.ndarray,
    centres: np.ndarray,
    centre_distances: np.ndarray,
    unknown: np.ndarray,
) -> np.ndarray:
    """Points of the bricks ``cells`` (as in :func:`_brick_values`, (M * brick^3,) bool) that lie beyond the band
    on their brick centre's side, found from the centres of their blocks of 2^3 points: a block centre inside the
    empty ball about the brick's centre is on its side, and so is each point of the block inside the block
    centre's own empty ball less the band. Only blocks holding ``unknown`` points are asked."""
    brick, cell = config.brick, config.cell
    if brick < 4:
        return np.zeros(len(unknown), dtype=bool)
    half = brick // 2
    local = np.argwhere(np.ones((brick,) * 3, dtype=bool))
    block_of_point = ((local // 2) * np.array([half * half, half, 1])).sum(1)  # (brick^3,)
    blocks = np.argwhere(np.ones((half,) * 3, dtype=bool))  # (B, 3)
    offset = (blocks * 2 + 0.5 - (brick - 1) / 2) * cell  # block centre from brick centre
    margin = BALL_MARGIN_CELLS * cell
    points_of_block = np.argsort(block_of_point, kind="stable").reshape(len(blocks), 8)  # (B, 8) local points
    asked = unknown.reshape(len(cells), len(local))[:, points_of_block].any(2)
    asked &= centre_distances[:, None] > np.linalg.norm(offset, axis=1)[None] + margin
    rows, columns = np.nonzero(asked)
    block_distances = distance.unsigned(centres[rows] + offset[columns])
    beyond = np.zeros_like(asked)
    beyond[rows, columns] = block_distances > config.band + np.sqrt(3) / 2 * cell + margin
    return beyond[:, block_of_point].reshape(-1)


def narrow_band(distance: DistanceQueries, config: FieldConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bricks that hold the surface, their exact signed distances and the side of every other brick.

    Coarse to fine: cubes of bricks are split where their centre is near the surface, or where their
    side differs from a neighbour's (for open meshes, the winding number's surface can lie far from any
    triangle). Returns the active bricks' flat keys (M,) ascending, their values (M, brick^3) clamped to
    the band, and ``inside`` (bricks_per_side^3,) bool.
    """
    side, brick, cell, band = config.bricks_per_side, config.brick, config.cell, config.band
    size = 1
    while side // (size * 2) >= 4:
        size *= 2
    dims = -(-side // size)
    inside = np.zeros((dims,) * 3, dtype=bool)
    cells = np.argwhere(np.ones((dims,) * 3, dtype=bool))
    while True:
        centres = _centres(cells, size, config)
        centre_distances = distance.unsigned(centres)
        near = centre_distances < np.sqrt(3) / 2 * (size * brick - 1) * cell + band
        inside[tuple(cells.T)] = distance.inside(centres)
        split = near | _sign_changes(inside)[tuple(cells.T)]
        cells, centres, centre_distances = cells[split], centres[split], centre_distances[split]
        if size == 1:
            away = ~near[split]
            break
        size //= 2
        dims = -(-side // size)
        inside = inside.repeat(2, 0).repeat(2, 1).repeat(2, 2)[:dims, :dims, :dims]
        children = (cells[:, None] * 2 + np.argwhere(np.ones((2, 2, 2), dtype=bool))).reshape(-1, 3)
        cells = children[(children < dims).all(1)]
    values = _brick_values(distance, config, cells, centres, centre_distances, inside[tuple(cells.T)], away)
    # a brick with every point beyond the band on one side holds no surface: one bit is enough
    uniform = (np.abs(values) >= band).all(1) & ((values > 0).all(1) | (values < 0).all(1))
    inside[tuple(cells[uniform].T)] = values[uniform, 0] < 0
    cells, values = cells[~uniform], values[~uniform]
    keys = np.ravel_multi_index(tuple(cells.T), (side,) * 3)
    order = np.argsort(keys)
    return keys[order], values[order].astype(np.float32), inside.reshape(-1)
