"""Whether a set of points can describe a solid's surface: numpy only, so that Blender refuses bad input
before a worker starts, with the same words the worker and the command line use."""

from __future__ import annotations

import numpy as np

from .protocol import MIN_POINTS

FLAT_RATIO = 1e-3  # a spread this small against the largest, along an axis of the points, is flat


class PointsError(ValueError):
    """Points that cannot be fitted; the message is one line for the user."""


def check_points(points: np.ndarray, normals: np.ndarray | None = None) -> None:
    """Raise PointsError unless ``points`` (N, 3) are enough, finite and spread in all three directions."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise PointsError(f"points must be an (N, 3) array, not {tuple(points.shape)}")
    count = len(points)
    if count < MIN_POINTS:
        raise PointsError(f"only {count} points; a points fit needs at least {MIN_POINTS}")
    bad = int((~np.isfinite(points).all(1)).sum())
    if bad:
        raise PointsError(f"{bad} of {count} points have NaN or infinite coordinates")
    if normals is not None and np.asarray(normals).shape != points.shape:
        raise PointsError(f"{len(normals)} normals for {count} points")
    centred = points - points.mean(0)
    spread = np.sqrt(np.clip(np.linalg.eigvalsh(centred.T @ centred / count), 0, None))[::-1]
    if not spread[0] > 0:
        raise PointsError("all points are at one place; a points fit needs a surface's samples")
    if spread[1] < FLAT_RATIO * spread[0]:
        raise PointsError("all points lie on one line; a points fit needs a solid's surface")
    if spread[2] < FLAT_RATIO * spread[0]:
        raise PointsError("all points lie on one plane; a points fit needs a solid's surface")
