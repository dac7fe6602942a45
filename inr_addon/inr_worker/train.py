"""Training: presets, the device choice and one training loop."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch

from .model import TRUNCATION, FieldConfig, NeuralField
from .sampling import SampleConfig


@dataclasses.dataclass(frozen=True)
class Preset:
    """Everything a fit needs besides the mesh."""

    field: FieldConfig
    samples: SampleConfig
    steps: int
    batch: int = 16_384
    learning_rate: float = 1e-2
    final_learning_rate: float = 2e-4


PRESETS: dict[str, Preset] = {
    "FAST": Preset(FieldConfig(grid_resolutions=(16, 32, 64, 96)), SampleConfig(count=150_000), steps=200),
    "BALANCED": Preset(FieldConfig(), SampleConfig(count=400_000), steps=700),
    "QUALITY": Preset(FieldConfig(grid_resolutions=(16, 32, 64, 128, 192)), SampleConfig(count=800_000), steps=1600),
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
    points: np.ndarray,
    distances: np.ndarray,
    preset: Preset,
    device: torch.device,
    steps: int = 0,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> NeuralField:
    """Fit a field to (points, signed distances) with Adam and a cosine-decayed learning rate."""
    torch.manual_seed(seed)
    steps = steps or preset.steps
    model = NeuralField(preset.field).to(device)
    fused = device.type in ("cpu", "cuda")
    optimiser = torch.optim.Adam(model.parameters(), lr=preset.learning_rate, fused=fused)
    all_points = torch.from_numpy(points).to(device)
    all_targets = torch.from_numpy(distances).to(device).clamp(-TRUNCATION, TRUNCATION)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    batch = min(preset.batch, len(all_points))
    for step in range(steps):
        progress = step / max(steps - 1, 1)
        lr = preset.final_learning_rate + 0.5 * (preset.learning_rate - preset.final_learning_rate) * (
            1 + math.cos(math.pi * progress)
        )
        for group in optimiser.param_groups:
            group["lr"] = lr
        chosen = torch.randint(len(all_points), (batch,), generator=generator).to(device)
        prediction = model(all_points[chosen])
        loss = (prediction - all_targets[chosen]).abs().mean()
        optimiser.zero_grad(set_to_none=False)
        loss.backward()
        optimiser.step()
        if on_step is not None:
            on_step(step + 1, steps, loss.item())
    return model.eval()
