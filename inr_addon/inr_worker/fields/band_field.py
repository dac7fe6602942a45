"""The field: a signed distance stored only where the surface can be.

A fine grid of cell ``1 / resolution`` covers the domain ``[-DOMAIN_HALF_EXTENT, DOMAIN_HALF_EXTENT]^3``
and is cut into bricks of ``brick^3`` points. Only the bricks of the narrow band around the surface
hold values (initialised from the exact signed distance, then fitted to the distance between the grid
points, and stored as int16); every other brick holds one bit, inside or outside. Beyond the band a coarse
dense grid of the exact distance (clamped to ``truncation``, stored as uint8, its sign read from the fine
grid) gives the value by trilinear interpolation of the signed distance, so that the field reads as a
signed distance saturating at ``truncation``, close to the truth right beyond the band as well as far out
(what offsets, shells and morphs need).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from ..protocol import DOMAIN_HALF_EXTENT, bricks_per_side

TRUNCATION = 0.1  # far from the surface the field saturates at +-TRUNCATION (unit frame)
VALUE_CODES = 32767  # the band's int16 codes span [-band, band]: a step of 1e-4 cell (int8's 0.014 cell cost
# re-extraction 5-20% of its Chamfer-L1); fields of format version 3 hold int8 codes over +-127
COARSE_CODES = 255  # the coarse distances' uint8 codes span [0, TRUNCATION]
BATCH = 262_144  # points evaluated at once
FAR_SHARE = 0.5  # where the band's value exceeds this share of its clamp, the coarse distance may raise it


@dataclasses.dataclass(frozen=True)
class FieldConfig:
    """Shape of the field; stored with its values so that a field file rebuilds (and checks) itself."""

    resolution: int = 256  # fine cells per unit length (the mesh's longest side is 1)
    brick: int = 4  # fine points per brick side
    band_cells: float = 1.8  # bricks within this many cells of the surface hold values, clamped to it
    coarse_points: int = 64  # points per side of the coarse distance grid over the whole domain

    @property
    def cell(self) -> float:
        return 1.0 / self.resolution

    @property
    def bricks_per_side(self) -> int:
        return bricks_per_side(self.resolution, self.brick)

    @property
    def band(self) -> float:
        """The fine values' clamp, in unit-frame distance."""
        return self.band_cells * self.cell

    @property
    def coarse_spacing(self) -> float:
        return 2 * DOMAIN_HALF_EXTENT / (self.coarse_points - 1)


def quantise(values: torch.Tensor, limit: float) -> torch.Tensor:
    """Values in [-limit, limit] as int16 codes -VALUE_CODES..VALUE_CODES."""
    return torch.round(values.clamp(-limit, limit) / limit * VALUE_CODES).to(torch.int16)


def _outer(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, combine) -> torch.Tensor:
    """``combine`` of per-axis pairs (N, 2) over the 8 corners: (N, 8), in CORNERS order."""
    return combine(combine(x[:, :, None, None], y[:, None, :, None]), z[:, None, None, :]).reshape(len(x), 8)


def brick_corners(
    points: torch.Tensor, spacing: float, side: int, brick: int, slots: torch.Tensor, corner_steps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """How a grid stored in bricks of ``brick``^3 points (``side`` bricks a side, ``slots`` the row of each
    brick's values, negative where it stores none) reads ``points`` trilinearly: per point and corner
    (N, 8), in CORNERS order, the corner's brick slot, its flat place in the brick and its weight; per point
    the position in its cell (N, 3)."""
    last = side * brick - 1
    position = ((points + DOMAIN_HALF_EXTENT) / spacing).clamp(0, last)
    low = position.floor().clamp(max=last - 1)
    weight = position - low
    # per axis, the two corners' brick and place in it: (N, 3, 2)
    corner = low.long()[:, :, None] + corner_steps
    bricks, local = corner // brick, corner % brick
    # combine the axes: (N, 2, 2, 2), flattened to (N, 8)
    keys = _outer(bricks[:, 0] * side * side, bricks[:, 1] * side, bricks[:, 2], torch.add)
    local_flat = _outer(local[:, 0] * brick * brick, local[:, 1] * brick, local[:, 2], torch.add)
    axis_weights = torch.stack([1 - weight, weight], 2)
    factors = _outer(axis_weights[:, 0], axis_weights[:, 1], axis_weights[:, 2], torch.mul)
    return slots[keys].long(), local_flat, factors, weight


class BandField(nn.Module):
    """f(x) -> signed distance, for points x of shape (N, 3) in the unit frame.

    ``brick_keys`` (M,) are the flat indices of the band's bricks, ascending; ``brick_values`` (M, b^3)
    their fine values (a parameter, fitted by training); ``inside`` (n^3,) bool says on which side of
    the surface each brick outside the band lies; ``coarse`` (G^3,) the unsigned distance, clamped to the
    truncation, at the coarse grid's points (quantised to uint8 here, so that a stored field reads the same).
    """

    # buffers (register_buffer), declared for the type checker
    brick_keys: torch.Tensor
    inside: torch.Tensor
    slots: torch.Tensor
    coarse: torch.Tensor
    coarse_signed: torch.Tensor
    corner_steps: torch.Tensor
    curvature: torch.Tensor

    def __init__(
        self,
        config: FieldConfig,
        brick_keys: torch.Tensor,
        brick_values: torch.Tensor,
        inside: torch.Tensor,
        coarse: torch.Tensor,
    ) -> None:
        super().__init__()
        self.config = config
        self.truncation = TRUNCATION
        self.brick_values = nn.Parameter(brick_values.float().reshape(len(brick_keys), config.brick**3))
        self.register_buffer("brick_keys", brick_keys.long())
        self.register_buffer("inside", inside.bool().reshape(-1))
        side = config.bricks_per_side
        slots = torch.where(self.inside, -2, -1).to(torch.int32)
        slots[self.brick_keys] = torch.arange(len(brick_keys), dtype=torch.int32)
        self.register_buffer("slots", slots)  # per brick: its row in brick_values, or -1 outside / -2 inside
        codes = torch.round(coarse.float().reshape(-1).clamp(0, TRUNCATION) * (COARSE_CODES / TRUNCATION))
        self.register_buffer("coarse", codes * (TRUNCATION / COARSE_CODES))
        self.register_buffer("corner_steps", torch.tensor([0, 1]), persistent=False)
        self._side = side
        self.register_buffer("curvature", torch.zeros(0), persistent=False)
        self.register_buffer("coarse_signed", torch.zeros(0), persistent=False)
        self.update_curvature()

    def _point_values(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Values at fine grid points given by their integer indices (K, 3), and whether they are stored."""
        config, side, brick = self.config, self._side, self.config.brick
        points = points.clamp(0, side * brick - 1)
        bricks, local = points // brick, points % brick
        slots = self.slots[(bricks[:, 0] * side + bricks[:, 1]) * side + bricks[:, 2]].long()
        local_flat = (local[:, 0] * brick + local[:, 1]) * brick + local[:, 2]
        stored = slots >= 0
        values = self.brick_values.detach().reshape(-1)[(slots.clamp(min=0) * brick**3 + local_flat)]
        return torch.where(stored, values, torch.where(slots == -2, -config.band, config.band)), stored

    @torch.no_grad()
    def update_curvature(self) -> None:
        """Second differences of the stored values along each axis, (M * b^3, 3), for the curvature term.

        Where a point or a neighbour lies at the band's clamp (or holds no value), it is zero. Neighbours
        inside a brick are read from the brick itself; across a brick's face, from the next brick's facing
        layer, where that brick holds values.
        """
        config, side, brick = self.config, self._side, self.config.brick
        keys = self.brick_keys
        values = self.brick_values.detach().reshape(-1, brick, brick, brick)
        bricks = torch.stack([keys // (side * side), keys // side % side, keys % side], 1)
        near_clamp = values.abs() >= 0.99 * config.band
        differences = []
        for axis in range(3):
            neighbours = []
            for step in (1, -1):
                beside = bricks.clone()
                beside[:, axis] += step
                inside_grid = ((beside >= 0) & (beside < side)).all(1)
                flat = (beside[:, 0] * side + beside[:, 1]) * side + beside[:, 2]
                slot = torch.where(inside_grid, self.slots[flat.clamp(0, side**3 - 1)].long(), -1)
                layer = values.select(axis + 1, 0 if step == 1 else brick - 1)  # the facing layer (M, b, b)
                facing = values.new_zeros(layer.shape)
                facing[slot >= 0] = layer[slot[slot >= 0]]
                shifted = torch.roll(values, -step, axis + 1)  # within the brick; its wrapped layer is replaced
                stored = torch.ones_like(values, dtype=torch.bool)
                edge = brick - 1 if step == 1 else 0
                shifted.select(axis + 1, edge).copy_(facing)
                stored.select(axis + 1, edge).copy_((slot >= 0)[:, None, None].expand_as(layer))
                neighbours.append((shifted, stored))
            (after, stored_after), (before, stored_before) = neighbours
            valid = stored_after & stored_before & ~near_clamp
            valid &= (after.abs() < 0.99 * config.band) & (before.abs() < 0.99 * config.band)
            differences.append(torch.where(valid, after - 2 * values + before, 0.0).reshape(-1))
        self.curvature = torch.stack(differences, 1)
        self._sign_coarse()

    @torch.no_grad()
    def _sign_coarse(self) -> None:
        """The coarse distances with the fine grid's sign at each coarse point (inside bits or band values).

        Where the corners of a coarse point's fine cell all lie in bricks that hold no values and lie on one
        side, they all read the band's clamp on that side, so that side is the sign; only the other points
        are interpolated."""
        config, side = self.config, self.config.coarse_points
        axis = torch.arange(side, device=self.coarse.device) * config.coarse_spacing - DOMAIN_HALF_EXTENT
        points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
        slots = brick_corners(points, config.cell, self._side, config.brick, self.slots, self.corner_steps)[0]
        uniform = (slots == slots[:, :1]).all(1) & (slots[:, 0] < 0)
        inside = slots[:, 0] == -2
        mixed = torch.nonzero(~uniform).squeeze(1)
        for start in range(0, len(mixed), BATCH):
            rows = mixed[start : start + BATCH]
            inside[rows] = self.fine(points[rows]) < 0
        self.coarse_signed = torch.where(inside, -self.coarse, self.coarse)

    def interpolation(self, points: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """How the fine grid's trilinear interpolation reads ``points``: per point and corner (N, 8),
        the flat index into ``brick_values`` (-1 where the corner's brick holds no values), the weight,
        and the fixed value (+-band) used where there is no index; per point the position in its cell
        (N, 3)."""
        config, brick = self.config, self.config.brick
        slots, local_flat, factors, weight = brick_corners(
            points, config.cell, self._side, brick, self.slots, self.corner_steps
        )
        index = torch.where(slots >= 0, slots * brick**3 + local_flat, -1)
        fixed = torch.where(slots == -2, -config.band, config.band)
        return index, factors, fixed, weight

    def fine(self, points: torch.Tensor) -> torch.Tensor:
        """The fine grid's value at ``points`` (clamped to +-band), defined everywhere: trilinear
        interpolation less its curvature error, ``t (1 - t) / 2`` times the second difference along each
        axis (interpolated the same way)."""
        index, factors, fixed, weight = self.interpolation(points)
        band = self.config.band
        has_value = index >= 0
        rows = index.clamp(min=0)
        stored = self.brick_values.reshape(-1)[rows].clamp(-band, band)
        linear = (factors * torch.where(has_value, stored, fixed)).sum(1)
        second = (torch.where(has_value, factors, 0.0)[:, :, None] * self.curvature[rows]).sum(1)
        return linear - 0.5 * (weight * (1 - weight) * second).sum(1)

    def coarse_distance(self, points: torch.Tensor) -> torch.Tensor:
        """The signed distance at ``points`` read from the coarse grid (trilinear), saturating at the truncation.

        A signed distance interpolates smoothly through the surface, so beyond the band this is off by
        the grid's curvature error (a small part of a fine cell on smooth shapes) and the uint8 step; it
        overstates the truth only near features thinner than the coarse spacing.
        """
        config, side = self.config, self.config.coarse_points
        position = ((points + DOMAIN_HALF_EXTENT) / config.coarse_spacing).clamp(0, side - 1)
        low = position.floor().clamp(max=side - 2)
        weight = position - low
        corner = low.long()[:, :, None] + self.corner_steps
        index = _outer(corner[:, 0] * side * side, corner[:, 1] * side, corner[:, 2], torch.add)
        axis_weights = torch.stack([1 - weight, weight], 2)
        factors = _outer(axis_weights[:, 0], axis_weights[:, 1], axis_weights[:, 2], torch.mul)
        return (factors * self.coarse_signed[index]).sum(1).clamp(-TRUNCATION, TRUNCATION)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.beyond_band(points, self.fine(points))

    def grid_frame(self) -> tuple[np.ndarray, float]:
        """Where the fine grid's point (0, 0, 0) lies, and its cell: extraction on this grid reads it directly."""
        return np.full(3, -DOMAIN_HALF_EXTENT), self.config.cell

    @torch.inference_mode()
    def grid_values(self, points: torch.Tensor) -> torch.Tensor:
        """The field at the fine grid's points (integer indices (N, 3)): what :meth:`forward` reads there,
        without interpolating."""
        values = torch.empty(len(points), device=points.device)
        for start in range(0, len(points), BATCH):
            rows = points[start : start + BATCH]
            fine = self._point_values(rows)[0].clamp(-self.config.band, self.config.band)
            values[start : start + BATCH] = self.beyond_band(rows * self.config.cell - DOMAIN_HALF_EXTENT, fine)
        return values

    def beyond_band(self, points: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """The field at ``points`` from the fine value there: where it reads near the band's clamp, the
        coarse distance may raise its magnitude."""
        # the coarse distance is close to the truth, so only where the band reads near its clamp can it exceed it
        far = torch.nonzero(fine.detach().abs() >= FAR_SHARE * self.config.band).squeeze(1)
        if not len(far):
            return fine
        sign = torch.sign(fine[far])
        coarse = sign * self.coarse_distance(points[far])  # negative where the coarse grid sees the other side
        return fine.index_put((far,), sign * torch.maximum(fine[far].abs(), coarse))

    @torch.inference_mode()
    def evaluate(self, points: torch.Tensor, batch: int = BATCH) -> torch.Tensor:
        """Evaluate many points in batches, without autograd."""
        return (
            torch.cat([self(points[start : start + batch]) for start in range(0, len(points), batch)])
            if len(points)
            else points.new_zeros(0)
        )

    def stored_arrays(self) -> dict[str, np.ndarray]:
        """What a field file holds: the band's keys and quantised values, the inside bits and the coarse grid."""
        config = self.config
        return {
            "brick_keys": self.brick_keys.cpu().numpy().astype(np.int32),
            "brick_values": quantise(self.brick_values.detach().cpu(), config.band).numpy(),
            "inside_bits": np.packbits(self.inside.cpu().numpy()),
            "coarse_distances": torch.round(self.coarse * (COARSE_CODES / TRUNCATION))
            .to(torch.uint8)
            .reshape((config.coarse_points,) * 3)
            .cpu()
            .numpy(),
        }

    @classmethod
    def from_stored(cls, config: FieldConfig, arrays: dict[str, np.ndarray]) -> BandField:
        """Rebuild a field from :meth:`stored_arrays` (already checked against ``config``)."""
        side = config.bricks_per_side
        inside = np.unpackbits(arrays["inside_bits"], count=side**3).astype(bool)
        codes = arrays["brick_values"]
        limit = 127 if codes.dtype == np.int8 else VALUE_CODES  # int8: a field of format version 3
        values = torch.from_numpy(codes.astype(np.float32)) * (config.band / limit)
        keys = torch.from_numpy(arrays["brick_keys"].astype(np.int64))
        coarse = torch.from_numpy(arrays["coarse_distances"].astype(np.float32)) * (TRUNCATION / COARSE_CODES)
        return cls(config, keys, values, torch.from_numpy(inside), coarse)
