"""The neural field: multi-resolution dense feature grids, read by trilinear interpolation,
and a small MLP that maps the concatenated features to a signed distance."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

DOMAIN_HALF_EXTENT = 0.6  # the grids cover [-0.6, 0.6]^3 of the unit frame
TRUNCATION = 0.1  # the field learns the signed distance clamped to +-TRUNCATION (unit frame)


@dataclasses.dataclass(frozen=True)
class FieldConfig:
    """Shape of the field; stored with its weights so that a field file rebuilds itself."""

    grid_resolutions: tuple[int, ...] = (16, 32, 64, 128)
    features: int = 2
    hidden: int = 64
    hidden_layers: int = 2


class NeuralField(nn.Module):
    """f(x) -> signed distance, for points x of shape (N, 3) in the unit frame."""

    def __init__(self, config: FieldConfig) -> None:
        super().__init__()
        self.config = config
        self.grids = nn.ParameterList(
            nn.Parameter(torch.empty(1, config.features, r, r, r).uniform_(-1e-4, 1e-4))
            for r in config.grid_resolutions
        )
        layers: list[nn.Module] = []
        width = config.features * len(config.grid_resolutions)
        for _ in range(config.hidden_layers):
            layers += [nn.Linear(width, config.hidden), nn.ReLU()]
            width = config.hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        count = points.shape[0]
        coords = (points / DOMAIN_HALF_EXTENT).view(1, count, 1, 1, 3)
        features = [
            F.grid_sample(grid, coords, mode="bilinear", padding_mode="border", align_corners=True).view(
                self.config.features, count
            )
            for grid in self.grids
        ]
        return self.mlp(torch.cat(features).T).squeeze(-1)

    @torch.inference_mode()
    def evaluate(self, points: torch.Tensor, batch: int = 65_536) -> torch.Tensor:
        """Evaluate many points in batches, without autograd."""
        return (
            torch.cat([self(points[start : start + batch]) for start in range(0, len(points), batch)])
            if len(points)
            else points.new_zeros(0)
        )
