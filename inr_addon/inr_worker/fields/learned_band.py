"""The learned field on meshes: the stored band plus a residual trained on the exact distance between
its grid points.

The band (:class:`BandField`) reads its exact grid values trilinearly, with a curvature correction;
between the grid points that reading is off by a small part of a cell, which shows once the surface is
extracted finer than the fit. The residual is a small decoder (an MLP) of features stored on sparse
grids, one per level, whose cells are 1, 2, 4, ... band cells. Each level holds features only in the
bricks that cover the band's bricks, so its bytes grow with the surface's area, like the band's. The
residual is trained on the exact signed distance at continuous points near the surface, and it fades
to zero where the band reads at its clamp: it is evaluated only next to the surface, and the field stays
continuous where the band ends.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..protocol import DOMAIN_HALF_EXTENT
from .band_field import BandField, FieldConfig, brick_corners

StepCallback = Callable[[int, int, float], None]  # step, steps, loss
FADE_START = 0.5  # the residual fades out from this share of the band's clamp to the clamp
FEATURE_START = 0.1  # features start random with this spread, so that the decoder sees them from the first step
RESIDUAL_SCALES = (1.0, 0.75, 0.5, 0.25, 0.0)  # the trained residual's scales tried on held-out surface points
FILE_OVERHEAD = 65_536  # a field file's header and metadata, beside its tensors (bytes, generous)


@dataclasses.dataclass(frozen=True)
class ResidualConfig:
    """Shape of the residual; stored with its values."""

    level_cells: tuple[int, ...] = (1, 2, 4)  # each level's cell, in band cells
    channels: tuple[int, ...] = (2, 4, 8)  # features per grid point, per level
    hidden: int = 32  # width of the decoder's two hidden layers

    @property
    def inputs(self) -> int:
        return sum(self.channels) + 1  # the features and the band's own value

    def decoder_bytes(self) -> int:
        """Bytes of the decoder (float32) and the levels' scales, as stored."""
        weights = self.inputs * self.hidden + self.hidden * self.hidden + self.hidden
        return 4 * (weights + 2 * self.hidden + 1 + len(self.level_cells))


@dataclasses.dataclass(frozen=True)
class ResidualTraining:
    """The residual's shape and how it is trained (only the shape is stored)."""

    residual: ResidualConfig = ResidualConfig()
    samples: int = 400_000
    steps: int = 400
    batch: int = 32_768
    sigma_cells: float = 0.7  # samples: surface points moved by N(0, sigma) cells
    feature_rate: float = 0.005
    decoder_rate: float = 0.005
    feature_decay: float = 0.01  # pull of the features towards zero, relative to the data term
    max_bytes: int = 5_000_000  # the field file's cap: the residual's channels are cut to keep under it
    surface_checks: int = 100_000  # held-out surface points that choose the residual's scale


def residual_within(
    residual: ResidualConfig, band_keys: np.ndarray, config: FieldConfig, band_bytes: int, max_bytes: int
) -> ResidualConfig:
    """``residual`` with its channels cut so that the band's bytes, the residual's and the file's overhead
    stay within ``max_bytes``: while over, the level that holds the most bytes loses a channel; when
    every level has one channel, the finest level goes (one level, one channel at least stays)."""
    counts = {cells: len(level_keys(band_keys, config.bricks_per_side, cells)) for cells in residual.level_cells}
    levels = dict(zip(residual.level_cells, residual.channels, strict=True))
    points = config.brick**3

    def total() -> int:
        shape = ResidualConfig(tuple(levels), tuple(levels.values()), residual.hidden)
        features = sum(counts[cells] * points * channels for cells, channels in levels.items())
        return band_bytes + FILE_OVERHEAD + features + shape.decoder_bytes()

    while total() > max_bytes:
        wider = [cells for cells, channels in levels.items() if channels > 1]
        if wider:
            largest = max(wider, key=lambda cells: counts[cells] * levels[cells])
            levels[largest] -= 1
        elif len(levels) > 1:
            del levels[min(levels)]
        else:
            break
    return ResidualConfig(tuple(levels), tuple(levels.values()), residual.hidden)


def level_keys(band_keys: np.ndarray, bricks_per_side: int, level_cells: int) -> np.ndarray:
    """The flat keys (ascending) of a level's bricks: those that cover one of the band's bricks."""
    side = bricks_per_side
    coordinates = np.stack(np.unravel_index(band_keys, (side,) * 3), 1) // level_cells
    level_side = -(-side // level_cells)
    return np.unique(np.ravel_multi_index(tuple(coordinates.T), (level_side,) * 3))


class SparseLevel(nn.Module):
    """Features on a grid of cell ``level_cells`` band cells, held only in the bricks ``keys``."""

    slots: torch.Tensor
    corner_steps: torch.Tensor

    def __init__(self, config: FieldConfig, level_cells: int, keys: torch.Tensor, features: torch.Tensor) -> None:
        super().__init__()
        self.brick = config.brick
        self.spacing = config.cell * level_cells
        self.side = -(-config.bricks_per_side // level_cells)  # bricks a side
        self.features = nn.Parameter(features.float().reshape(len(keys), self.brick**3, -1))
        slots = torch.full((self.side**3,), -1, dtype=torch.int32)
        slots[keys.long()] = torch.arange(len(keys), dtype=torch.int32)
        self.register_buffer("slots", slots)
        self.register_buffer("corner_steps", torch.tensor([0, 1]), persistent=False)

    def interpolation(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per point and corner (N, 8): the row in the flattened features (-1: none) and the weight."""
        slots, local_flat, factors, _ = brick_corners(
            points, self.spacing, self.side, self.brick, self.slots, self.corner_steps
        )
        return torch.where(slots >= 0, slots * self.brick**3 + local_flat, -1), factors

    def read(self, index: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
        """The interpolated features (N, C) from :meth:`interpolation`'s answer."""
        rows = self.features.reshape(-1, self.features.shape[-1])[index.clamp(min=0)]
        return ((factors * (index >= 0))[:, :, None] * rows).sum(1)


class LearnedBandField(BandField):
    """The band plus a learned residual near the surface: f(x) = band(x) + fade(band(x)) * cell * r(x)."""

    def __init__(
        self,
        config: FieldConfig,
        brick_keys: torch.Tensor,
        brick_values: torch.Tensor,
        inside: torch.Tensor,
        coarse: torch.Tensor,
        residual: ResidualConfig,
        level_features: list[torch.Tensor] | None = None,
        decoder_state: dict[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__(config, brick_keys, brick_values, inside, coarse)
        self.brick_values.requires_grad_(False)
        self.residual = residual
        keys = brick_keys.cpu().numpy()
        levels = []
        generator = torch.Generator().manual_seed(0)
        for number, (cells, channels) in enumerate(zip(residual.level_cells, residual.channels, strict=True)):
            level = torch.from_numpy(level_keys(keys, config.bricks_per_side, cells))
            features = (
                level_features[number]
                if level_features is not None
                else torch.randn(len(level), config.brick**3, channels, generator=generator) * FEATURE_START
            )
            levels.append(SparseLevel(config, cells, level, features))
        self.level_modules = nn.ModuleList(levels)
        self.levels: list[SparseLevel] = levels
        output = nn.Linear(residual.hidden, 1)
        self.decoder = nn.Sequential(
            nn.Linear(residual.inputs, residual.hidden),
            nn.SiLU(),
            nn.Linear(residual.hidden, residual.hidden),
            nn.SiLU(),
            output,
        )
        if decoder_state is not None:
            self.decoder.load_state_dict(decoder_state)
        else:  # the residual starts at zero: the band alone
            nn.init.zeros_(output.weight)
            nn.init.zeros_(output.bias)

    def fade(self, fine: torch.Tensor) -> torch.Tensor:
        """1 near the surface, falling to 0 where the band reads at its clamp."""
        share = fine.abs() / self.config.band
        return ((1 - share) / (1 - FADE_START)).clamp(0, 1)

    def decode(self, features: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """The residual, in unit-frame distance, from the levels' features and the band's value."""
        inputs = torch.cat([features, (fine / self.config.band)[:, None]], 1)
        return self.decoder(inputs).squeeze(1) * self.fade(fine) * self.config.cell

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        fine = self.fine(points)
        near = torch.nonzero(fine.abs() < self.config.band).squeeze(1)
        if len(near):
            local = points[near]
            features = torch.cat([level.read(*level.interpolation(local)) for level in self.levels], 1)
            fine = fine.index_add(0, near, self.decode(features, fine[near]))
        return self.beyond_band(points, fine)

    def grid_values(self, points: torch.Tensor) -> torch.Tensor:
        """The field at the fine grid's points (integer indices (N, 3)), residual included."""
        return self.evaluate(points.float() * self.config.cell - DOMAIN_HALF_EXTENT)

    def stored_arrays(self) -> dict[str, np.ndarray]:
        """The band's arrays, each level's features as int8 with one scale a level, and the decoder."""
        arrays = super().stored_arrays()
        scales = []
        for number, level in enumerate(self.levels):
            features = level.features.detach().cpu()
            scale = float(features.abs().max()) / 127 if features.numel() else 0.0
            scale = scale or 1.0
            scales.append(scale)
            arrays[f"residual.level{number}"] = torch.round(features / scale).to(torch.int8).numpy()
        arrays["residual.scales"] = np.asarray(scales, np.float32)
        for name, tensor in self.decoder.state_dict().items():
            arrays[f"residual.decoder.{name}"] = tensor.detach().cpu().numpy().astype(np.float32)
        return arrays

    @classmethod
    def around(
        cls,
        band: BandField,
        residual: ResidualConfig,
        level_features: list[torch.Tensor] | None = None,
        decoder_state: dict[str, torch.Tensor] | None = None,
    ) -> LearnedBandField:
        """A residual on ``band``, whose values are taken as stored (quantised), so that training sees
        the band that a saved field reads."""
        stored = BandField.from_stored(band.config, band.stored_arrays())
        return cls(
            band.config,
            stored.brick_keys,
            stored.brick_values.detach(),
            stored.inside,
            stored.coarse,
            residual,
            level_features,
            decoder_state,
        )

    @classmethod
    def from_arrays(
        cls, config: FieldConfig, residual: ResidualConfig, arrays: dict[str, np.ndarray]
    ) -> LearnedBandField:
        """Rebuild a field from :meth:`stored_arrays` (already checked against the configs)."""
        scales = arrays["residual.scales"].astype(np.float32)
        features = [
            torch.from_numpy(arrays[f"residual.level{number}"].astype(np.float32)) * float(scales[number])
            for number in range(len(residual.level_cells))
        ]
        prefix = "residual.decoder."
        state = {
            name[len(prefix) :]: torch.from_numpy(array.copy())
            for name, array in arrays.items()
            if name.startswith(prefix)
        }
        return cls.around(BandField.from_stored(config, arrays), residual, features, state)


def train_residual(
    model: LearnedBandField,
    points: np.ndarray,
    distances: np.ndarray,
    training: ResidualTraining,
    device: torch.device,
    seed: int = 0,
    on_step: StepCallback | None = None,
    steps: int = 0,
) -> LearnedBandField:
    """Fit the residual to (points, exact signed distances) by Adam on the mean squared error (in cells),
    for ``steps`` (default: the training's).

    Only samples where the band reads inside its clamp count (elsewhere the residual is zero); the
    band's values stay as sampled.
    """
    torch.manual_seed(seed)
    model = model.to(device)
    config = model.config
    sample_points = torch.from_numpy(np.asarray(points, np.float32)).to(device)
    targets = torch.from_numpy(np.asarray(distances, np.float32)).to(device)
    with torch.no_grad():
        fine = model.fine(sample_points)
        kept = (fine.abs() < config.band) & (targets.abs() < config.band)
        sample_points, targets, fine = sample_points[kept], targets[kept], fine[kept]
        reads = [level.interpolation(sample_points) for level in model.levels]
    optimiser = torch.optim.Adam(
        [
            {"params": [level.features for level in model.levels], "lr": training.feature_rate},
            {"params": model.decoder.parameters(), "lr": training.decoder_rate},
        ]
    )
    generator = torch.Generator(device=device).manual_seed(seed)
    count = len(targets)
    if not count:  # no sample where the band reads inside its clamp: the band alone
        return model.cpu().eval()
    batch = min(training.batch, count)
    decay = training.feature_decay
    steps = steps or training.steps
    for step in range(steps):
        chosen = torch.randint(count, (batch,), device=device, generator=generator)
        features = torch.cat(
            [level.read(index[chosen], factors[chosen]) for level, (index, factors) in zip(model.levels, reads)], 1
        )
        error = (fine[chosen] + model.decode(features, fine[chosen]) - targets[chosen]) / config.cell
        loss = error.square().mean()
        penalty = decay * torch.stack([level.features.square().mean() for level in model.levels]).sum()
        optimiser.zero_grad(set_to_none=True)
        (loss + penalty).backward()
        optimiser.step()
        if on_step is not None:
            on_step(step + 1, steps, math.sqrt(float(loss.detach())))
    return model.cpu().eval()


def scale_to_surface(model: LearnedBandField, surface: np.ndarray) -> float:
    """Scale the trained residual (its decoder's output) by the one of :data:`RESIDUAL_SCALES` that reads
    closest to zero, on average, at ``surface`` points (on the true surface, not trained on); 0 gives the
    band alone, so the field never reads farther from the surface there than the band does. Returns it."""
    points = torch.from_numpy(np.asarray(surface, np.float32))
    output = model.decoder[-1]
    assert isinstance(output, nn.Linear)
    weight, bias = output.weight.detach().clone(), output.bias.detach().clone()
    errors = []
    with torch.no_grad():
        for scale in RESIDUAL_SCALES:
            output.weight.copy_(weight * scale)
            output.bias.copy_(bias * scale)
            errors.append(float(model.evaluate(points).abs().mean()))
        best = RESIDUAL_SCALES[int(np.argmin(errors))]
        output.weight.copy_(weight * best)
        output.bias.copy_(bias * best)
    return best
