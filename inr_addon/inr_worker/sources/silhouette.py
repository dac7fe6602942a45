"""Silhouettes to solids: signed distances of the 3D shapes that image masks describe.

A *view* is a mask lying in the plane of its image (x right, y up, z towards the viewer). Its
silhouette is either **extruded** along z (the visual hull of several views is the intersection of
their extrusions) or **inflated**: the union of the balls whose equators are the mask's maximal
discs, so that a disc becomes a ball, a bar a round rod, holes stay holes and islands stay apart;
``thickness`` scales the inflation along z. Distances come from 2D distance transforms (scipy), are
exact near the surface and never overestimated inside, and are stored on the same sparse narrow band
as a mesh's signed distance.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from scipy import ndimage

from .sampling import InputError, UnitFrame

SHAPE_SIDE = 640  # masks are reduced to at most this many pixels a side for the 2D transforms
MIN_DISC_PIXELS = 1.0  # radius of the smallest disc used for inflation, in pixels
INFLATION_ITERATIONS = 3  # closest-point steps that find the nearest ball of the inflation
PAD = 2  # background pixels around each mask, so that outlines on the image border close
CHUNK = 262_144  # points per evaluation batch
PARALLEL_COSINE = 0.985  # two views whose axes are closer than this (about 10 degrees) look along one axis


@dataclasses.dataclass
class View:
    """One reference image: its mask and where its image lies."""

    mask: np.ndarray  # (H, W) bool, row 0 at the bottom (Blender's pixel order)
    to_common: np.ndarray  # (4, 4) rigid map from the image's plane frame to the common frame
    rect: np.ndarray  # (x0, x1, y0, y1): the image's extent in its plane


def reduce_mask(mask: np.ndarray, side: int) -> np.ndarray:
    """The mask with at most ``side`` pixels along its longer side (box-filtered, then thresholded)."""
    factor = int(np.ceil(max(mask.shape) / side))
    if factor <= 1:
        return mask.astype(bool)
    height, width = (-(-extent // factor) * factor for extent in mask.shape)
    padded = np.zeros((height, width), np.float32)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    coverage = padded.reshape(height // factor, factor, width // factor, factor).mean((1, 3))
    return coverage >= 0.5


def _lower_envelope(costs: torch.Tensor, spacing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """min over j of ((i - j) * spacing)^2 + costs[..., j], and its argmin, along the last axis."""
    count = costs.shape[-1]
    index = torch.arange(count, dtype=torch.float64)
    squared = ((index[:, None] - index[None, :]) * spacing) ** 2  # (i, j)
    rows = max(1, 2**24 // (count * count))
    values, arguments = [], []
    for start in range(0, costs.shape[0], rows):
        total = squared[None] + costs[start : start + rows, None, :]
        value, argument = total.min(-1)
        values.append(value)
        arguments.append(argument)
    return torch.cat(values), torch.cat(arguments)


class ViewShape:
    """One view's mask as functions of its plane: the 2D signed distance and the maximal discs."""

    def __init__(self, view: View) -> None:
        mask = reduce_mask(view.mask, SHAPE_SIDE)
        if not mask.any():
            raise InputError("no silhouette found: the mask is empty")
        x0, x1, y0, y1 = (float(value) for value in view.rect)
        self.pixel = np.array([(x1 - x0) / mask.shape[1], (y1 - y0) / mask.shape[0]])
        self.origin = np.array([x0, y0]) + (0.5 - PAD) * self.pixel  # centre of padded pixel (0, 0)
        self.rotation = np.asarray(view.to_common, np.float64)[:3, :3]
        self.translation = np.asarray(view.to_common, np.float64)[:3, 3]
        self.axis = self.rotation[:, 2]
        self.depth_centre = 0.0  # where along z the inflation is centred (the hull's middle, for HULL)
        self.thickness = 1.0  # depth of the inflation over the disc radius (set by SilhouetteShape)
        inside = np.pad(mask, PAD)
        sampling = (self.pixel[1], self.pixel[0])
        half = 0.5 * float(self.pixel.min())
        distance_in = ndimage.distance_transform_edt(inside, sampling=sampling)
        distance_out = ndimage.distance_transform_edt(~inside, sampling=sampling)
        self.signed = np.where(inside, half - distance_in, distance_out - half)  # zero on the pixel edges
        radius = np.where(inside, distance_in - half, 0.0)
        self.max_radius = float(radius.max())
        # Maximal discs: for every pixel, the disc (centre, radius) that rises highest above it,
        # argmax over inside pixels q of radius(q)^2 - |p - q|^2, as two separable 1D envelopes.
        # Discs under a pixel wide are left out where bigger ones exist: on a pixel grid they poke out of
        # the outline by a fraction of a pixel and would hide the big discs that the rim belongs to.
        usable = inside & (radius >= MIN_DISC_PIXELS * self.pixel.min())
        if not usable.any():
            usable = inside
        costs = torch.from_numpy(np.where(usable, -(radius**2), np.inf))
        along_x, column_of = _lower_envelope(costs, self.pixel[0])
        _, row_of = _lower_envelope(along_x.T.contiguous(), self.pixel[1])
        rows = row_of.T.numpy()
        columns = np.take_along_axis(column_of.numpy(), rows, axis=0)
        self.disc_centres = self.origin + np.stack([columns, rows], -1) * self.pixel  # (H, W, 2)
        self.disc_radii = radius[rows, columns]

    def to_plane(self, points: np.ndarray) -> np.ndarray:
        """Common-frame points (N, 3) in this view's plane frame."""
        return (points - self.translation) @ self.rotation

    def _corner_indices(self, plane: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        position = (plane[:, :2] - self.origin) / self.pixel
        high = np.array(self.signed.shape[::-1]) - 2
        low_corner = np.clip(np.floor(position).astype(np.int64), 0, high)
        fraction = np.clip(position - low_corner, 0.0, 1.0)
        return low_corner[:, 1], low_corner[:, 0], fraction, position

    def extrusion(self, plane: np.ndarray) -> np.ndarray:
        """Signed distance to the silhouette extruded along z (bilinear in the 2D distance)."""
        row, column, fraction, position = self._corner_indices(plane)
        fx, fy = fraction[:, 0], fraction[:, 1]
        grid = self.signed
        value = (
            grid[row, column] * (1 - fx) * (1 - fy)
            + grid[row, column + 1] * fx * (1 - fy)
            + grid[row + 1, column] * (1 - fx) * fy
            + grid[row + 1, column + 1] * fx * fy
        )
        beyond = np.clip(position, 0, np.array(grid.shape[::-1]) - 1) - position  # outside the padded image
        return value + np.linalg.norm(beyond * self.pixel, axis=1)

    def inflation(self, plane: np.ndarray) -> np.ndarray:
        """Signed distance to the union of balls on the maximal discs, scaled by ``self.thickness`` along z.

        The balls tried at a point are those of its four nearest pixels; one of them holds the point
        when it is inside, so the sign is right and inside distances are never too large.
        """
        thickness = self.thickness
        depth = (plane[:, 2] - self.depth_centre) / thickness
        best = np.full(len(plane), np.inf)
        foot = plane[:, :2]
        for _ in range(INFLATION_ITERATIONS):
            row, column, _, _ = self._corner_indices(foot)
            step_best = np.full(len(plane), np.inf)
            step_foot = foot
            for row_step, column_step in ((0, 0), (0, 1), (1, 0), (1, 1)):
                centre = self.disc_centres[row + row_step, column + column_step]
                radius = self.disc_radii[row + row_step, column + column_step]
                offset = plane[:, :2] - centre
                length = np.sqrt(offset[:, 0] ** 2 + offset[:, 1] ** 2 + depth**2)
                distance = length - radius
                closer = distance < step_best
                step_best = np.where(closer, distance, step_best)
                # the ball's point nearest to the query, seen from above: where to look for the next ball
                nearest = centre + offset * (radius / np.maximum(length, 1e-12))[:, None]
                step_foot = np.where(closer[:, None], nearest, step_foot)
            best = np.minimum(best, step_best)
            foot = step_foot
        return best * min(1.0, thickness)


@dataclasses.dataclass(frozen=True)
class ShapeConfig:
    """How views make a solid."""

    mode: str = "SILHOUETTE"  # SILHOUETTE (inflate one view) or HULL (intersect several)
    thickness: float = 1.0
    rounded: bool = False  # HULL: intersect the views' inflations instead of their extrusions


class SilhouetteShape:
    """The solid that one or more views describe, as a signed distance in the common frame."""

    def __init__(self, views: list[View], config: ShapeConfig) -> None:
        if config.mode not in ("SILHOUETTE", "HULL"):
            raise InputError(f"unknown mode {config.mode!r}; expected SILHOUETTE or HULL")
        if not config.thickness > 0:
            raise InputError(f"thickness must be above 0, not {config.thickness}")
        if config.mode == "SILHOUETTE" and len(views) != 1:
            raise InputError("SILHOUETTE takes one image")
        if config.mode == "HULL":
            check_hull_views(views)
        self.config = config
        self.inflate = config.mode == "SILHOUETTE" or config.rounded
        self.shapes = [ViewShape(view) for view in views]
        for shape in self.shapes:
            shape.thickness = config.thickness
        if config.mode == "HULL":
            self.inflate = False  # the box of the plain hull holds the rounded one
        self.low, self.high = self._bounds()
        if config.mode == "HULL" and config.rounded:
            self.inflate = True
            # Each view's inflation is centred in the hull and reaches through its depth (times thickness),
            # so that a ball seen from three sides comes back as that ball, and a long body keeps its length.
            middle, half = (self.low + self.high) / 2, (self.high - self.low) / 2
            for shape in self.shapes:
                shape.depth_centre = float(shape.to_plane(middle[None])[0, 2])
                half_depth = float(np.abs(shape.axis) @ half)
                shape.thickness = config.thickness * half_depth / max(shape.max_radius, 1e-12)
            self.low, self.high = self._search_bounds(self.low, self.high)

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Signed distances (N,) of common-frame points (N, 3); negative inside."""
        result = np.empty(len(points))
        for start in range(0, len(points), CHUNK):
            chunk = np.asarray(points[start : start + CHUNK], np.float64)
            distances = [
                shape.inflation(shape.to_plane(chunk)) if self.inflate else shape.extrusion(shape.to_plane(chunk))
                for shape in self.shapes
            ]
            result[start : start + CHUNK] = np.max(distances, axis=0)  # the intersection of the views' solids
        return result

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        if self.config.mode == "SILHOUETTE":
            shape = self.shapes[0]
            inside = np.argwhere(shape.signed < 0)
            low_pixel, high_pixel = inside.min(0)[::-1] - 1, inside.max(0)[::-1] + 1
            depth = shape.max_radius * self.config.thickness + shape.pixel.max()
            low = np.array([*(shape.origin + low_pixel * shape.pixel), -depth])
            high = np.array([*(shape.origin + high_pixel * shape.pixel), depth])
            corners = np.array(
                [[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])]
            )
            common = corners @ shape.rotation.T + shape.translation
            return common.min(0), common.max(0)
        found = []
        for shape in self.shapes:
            x0, y0 = shape.origin
            x1, y1 = shape.origin + (np.array(shape.signed.shape[::-1]) - 1) * shape.pixel
            for x in (x0, x1):
                for y in (y0, y1):
                    found.append(shape.rotation @ np.array([x, y, 0.0]) + shape.translation)
        corners = np.array(found)
        centre, half = (corners.min(0) + corners.max(0)) / 2, (corners.max(0) - corners.min(0)).max() * 0.75
        return self._search_bounds(centre - half, centre + half)

    def _search_bounds(self, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The box of the solid, found on a coarse grid over (low, high)."""
        cell = float((high - low).max()) / 64
        axes = [np.arange(lo - cell, hi + 2 * cell, cell) for lo, hi in zip(low, high)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        inside = (self.signed_distance(grid) <= 0).reshape(tuple(len(axis) for axis in axes))
        if not inside.any():
            raise InputError("no solid found: the views' silhouettes do not overlap")
        found = np.argwhere(inside)
        low_index, high_index = found.min(0), found.max(0)
        return (
            np.array([axis[i] for axis, i in zip(axes, low_index)]) - cell,
            np.array([axis[i] for axis, i in zip(axes, high_index)]) + cell,
        )


def check_hull_views(views: list[View]) -> None:
    """HULL needs two or three views along different axes."""
    if not 2 <= len(views) <= 3:
        raise InputError(f"HULL takes 2 or 3 image views along different axes, not {len(views)}")
    axes = [np.asarray(view.to_common, np.float64)[:3, 2] for view in views]
    for first in range(len(axes)):
        for second in range(first + 1, len(axes)):
            if abs(float(np.dot(axes[first], axes[second]))) > PARALLEL_COSINE:
                raise InputError(
                    f"views {first + 1} and {second + 1} look along the same axis; HULL needs different axes"
                )


class ShapeDistance:
    """A shape's signed distance in its unit frame, asked for as the narrow band asks a mesh's
    (:class:`sampling.MeshDistance`): ``unsigned`` then ``inside`` of the same points."""

    def __init__(self, shape: SilhouetteShape) -> None:
        self.shape = shape
        self.frame = UnitFrame.of(np.stack([shape.low, shape.high]))
        self.closed = True  # an exact solid: the side changes only across its surface
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def signed(self, points: np.ndarray) -> np.ndarray:
        if self._last is None or self._last[0] is not points:  # each point set is evaluated once
            self._last = (points, self.shape.signed_distance(self.frame.from_unit(points)) / self.frame.scale)
        return self._last[1]

    def unsigned(self, points: np.ndarray) -> np.ndarray:
        return np.abs(self.signed(points))

    def inside(self, points: np.ndarray) -> np.ndarray:
        return self.signed(points) < 0

    def unsigned_and_side(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        signed = self.signed(points)
        return np.abs(signed), signed < 0
