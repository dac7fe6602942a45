"""Training samples for a signed distance field: points near the surface and in the box,
with distances to the mesh and signs from the generalized winding number.

Everything here works in the *unit frame*: the mesh's bounding box centred on the origin and
scaled so that its longest side is 1 (see :class:`UnitFrame`).
"""

from __future__ import annotations

import dataclasses

import igl
import numpy as np

from .model import DOMAIN_HALF_EXTENT

CHUNK = 200_000  # points per distance query, to bound memory on big meshes


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


def signed_distance(vertices: np.ndarray, triangles: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance to the nearest triangle, negative where the winding number says inside."""
    result = np.empty(len(points))
    for start in range(0, len(points), CHUNK):
        chunk = points[start : start + CHUNK]
        squared, _, _ = igl.point_mesh_squared_distance(chunk, vertices, triangles)
        winding = igl.fast_winding_number(vertices, triangles, chunk)
        result[start : start + CHUNK] = np.where(np.abs(winding) > 0.5, -1.0, 1.0) * np.sqrt(squared)
    return result


@dataclasses.dataclass(frozen=True)
class SampleConfig:
    """How many samples, and how they are spread."""

    count: int = 400_000
    near_fraction: float = 0.45  # surface points moved by N(0, near_sigma)
    near_sigma: float = 0.001
    mid_fraction: float = 0.35  # surface points moved by N(0, mid_sigma)
    mid_sigma: float = 0.03
    # the rest: uniform in the field's domain


def sample_mesh(
    vertices: np.ndarray, triangles: np.ndarray, config: SampleConfig, seed: int = 0
) -> tuple[UnitFrame, np.ndarray, np.ndarray]:
    """Return the unit frame, sample points in it (N, 3) float32 and their signed distances (N,)."""
    vertices, triangles = clean_mesh(vertices, triangles)
    frame = UnitFrame.of(vertices)
    unit_vertices = frame.to_unit(vertices)
    rng = np.random.default_rng(seed)
    near = int(config.count * config.near_fraction)
    mid = int(config.count * config.mid_fraction)
    uniform = config.count - near - mid
    on_surface = surface_points(unit_vertices, triangles, near + mid, rng)
    sigma = np.concatenate([np.full(near, config.near_sigma), np.full(mid, config.mid_sigma)])[:, None]
    points = np.concatenate(
        [
            on_surface + rng.normal(size=on_surface.shape) * sigma,
            rng.uniform(-DOMAIN_HALF_EXTENT, DOMAIN_HALF_EXTENT, (uniform, 3)),
        ]
    )
    points = np.clip(points, -DOMAIN_HALF_EXTENT, DOMAIN_HALF_EXTENT)
    distances = signed_distance(unit_vertices, triangles, points)
    inside = distances < 0
    if inside.mean() < 1e-4:
        raise InputError("no surface found: the mesh encloses no volume (is it a flat sheet or a single face?)")
    return frame, points.astype(np.float32), distances.astype(np.float32)
