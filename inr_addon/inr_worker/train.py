"""Training: presets, the device choice and the loop that fits the band's values to the distance."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch

from .fields.band_field import BandField, FieldConfig
from .fields.grid_field import PointsTraining
from .fields.learned_band import ResidualConfig, ResidualTraining


@dataclasses.dataclass(frozen=True)
class Preset:
    """Everything a fit needs besides the mesh.

    The band's values are the exact signed distance at the grid points. Training (``steps`` > 0) refits
    them by least squares to the exact distance at ``samples`` points near the surface; measured, with
    the samples a fit can afford it does not beat the exact values read with the curvature term
    (mean error 0.0099 against 0.0086 cells at 256 on bunny_closed_lowres), so no preset trains.
    """

    field: FieldConfig
    samples: int
    steps: int
    sample_sigma_cells: float = 0.7  # samples: surface points moved by N(0, sigma) cells
    regularisation: float = 0.05  # pull towards the exact values at the grid points, relative to the data


PRESETS: dict[str, Preset] = {
    "FAST": Preset(FieldConfig(resolution=192), samples=100_000, steps=0),
    "BALANCED": Preset(FieldConfig(resolution=256), samples=400_000, steps=0),
    "QUALITY": Preset(FieldConfig(resolution=512), samples=1_500_000, steps=0),
}

# Meshes with ``learned``: a residual trained on top of the preset's band (learned_band). The byte caps
# scale with the band's resolution squared (a surface's bricks do): 5 MB at BALANCED's 256 cells (the band's
# int16 values take about 2 MB of that on a 256 field, its residual the rest).
LEARNED_PRESETS: dict[str, ResidualTraining] = {
    "FAST": ResidualTraining(ResidualConfig(), samples=150_000, steps=100, batch=8_192, max_bytes=2_800_000),
    "BALANCED": ResidualTraining(ResidualConfig(), samples=300_000, steps=150, batch=8_192, max_bytes=5_000_000),
    "QUALITY": ResidualTraining(ResidualConfig(), samples=1_000_000, steps=400, batch=16_384, max_bytes=20_000_000),
}

# Point clouds: the field is trained (grid_field), then sampled on the preset's narrow band.
POINTS_PRESETS: dict[str, PointsTraining] = {
    "FAST": PointsTraining(steps=150),
    "BALANCED": PointsTraining(steps=200),
    "QUALITY": PointsTraining(steps=400, grid_cells=(16, 32, 64, 128)),
}

StepCallback = Callable[[int, int, float], None]  # step, steps, loss


def pick_device(name: str) -> torch.device:
    """``AUTO``: CUDA, then MPS, then CPU; otherwise the named device, if present."""
    name = name.upper()
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "AUTO":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "CUDA" and not cuda:
        raise RuntimeError("device CUDA was asked for, but torch finds no CUDA device")
    if name == "MPS" and not mps:
        raise RuntimeError("device MPS was asked for, but torch finds no MPS device")
    return torch.device(name.lower())


def train_field(
    model: BandField,
    points: np.ndarray,
    distances: np.ndarray,
    preset: Preset,
    device: torch.device,
    steps: int = 0,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> BandField:
    """Fit the band's values to (points, signed distances) by least squares, kept close to their start.

    The field is linear in its values ``v``: at the sample points it reads ``A v + b``. Each step is one
    conjugate-gradient step on ``(A^T A + w I) v = A^T (d - b) + w v0``, where ``v0`` are the exact
    distances at the grid points and ``w`` the regularisation weight: values that no sample constrains
    stay exact.
    """
    steps = steps or preset.steps
    model = model.to(device).eval()
    config = model.config
    start = model.brick_values.detach().reshape(-1).clone()
    sample_points = torch.from_numpy(np.asarray(points, np.float32)).to(device)
    with torch.no_grad():
        index, factors, fixed, _ = model.interpolation(sample_points)
        stored = index >= 0
        # the curvature term, held at its start: the values are fitted so that the whole field matches
        curvature = (factors * torch.where(stored, start[index.clamp(min=0)], fixed)).sum(1) - model.fine(sample_points)
    targets = torch.from_numpy(np.asarray(distances, np.float32)).to(device).clamp(-config.band, config.band)
    targets = targets + curvature - (factors * torch.where(stored, 0.0, fixed)).sum(1)  # less corners without values
    index, factors = index.clamp(min=0).reshape(-1), torch.where(stored, factors, 0.0)
    weight = preset.regularisation * len(targets) * 8 / max(len(start), 1)

    def normal(values: torch.Tensor) -> torch.Tensor:  # (A^T A + w I) values
        read = (factors * values[index].view(factors.shape)).sum(1)
        return torch.zeros_like(values).index_add_(0, index, (factors * read[:, None]).reshape(-1)) + weight * values

    right = torch.zeros_like(start).index_add_(0, index, (factors * targets[:, None]).reshape(-1)) + weight * start
    values = start.clone()
    residual = right - normal(values)
    direction = residual.clone()
    size = residual.dot(residual)
    for step in range(steps):
        product = normal(direction)
        alpha = size / direction.dot(product).clamp(min=1e-30)
        values.add_(direction, alpha=float(alpha))
        residual.sub_(product, alpha=float(alpha))
        new_size = residual.dot(residual)
        direction.mul_(new_size / size.clamp(min=1e-30)).add_(residual)
        size = new_size
        if on_step is not None:
            on_step(step + 1, steps, math.sqrt(float(size) / max(len(start), 1)) / config.cell)
    with torch.no_grad():
        model.brick_values.copy_(values.clamp(-config.band, config.band).reshape(model.brick_values.shape))
    model.update_curvature()
    return model
