"""A trained field: multi-resolution grids of values, summed, fitted by gradient descent where only
samples of the shape exist (a point cloud).

The field is ``f(x) = sum_l trilinear(grid_l, x)`` over grids whose cells halve from level to level; the
coarse grids carry the solid's overall shape and close what was never seen, the fine ones the detail
near the points. Value and gradient are both linear in the
grids' values, so the eikonal and normal terms train with first-order autograd alone, on any device.

Training (:func:`train_on_points`) asks: zero at the points, gradient equal to their outward normals,
slope 1 everywhere (eikonal), gradient along the nearest point's normal off the surface too (fading over
``follow_cells``: as in Screened Poisson, the walls go on across a hole or past where the points end
instead of closing flat there), a gradient that changes little over ``smooth_cells`` (a Hessian penalty
by finite differences, so that what closes a hole or an unseen base is smooth, not ragged), and, at
samples off the surface, the side that the points' winding number (where it is clearly in or out) or,
next to the points, the nearest normal gives, by at least half the distance to the nearest point.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from ..protocol import DOMAIN_HALF_EXTENT
from ..sources.points import PreparedPoints
from .band_field import TRUNCATION

INSIDE_WINDING = 0.5  # samples whose winding number exceeds this are inside
WINDING_DOUBT = 0.8  # how sure a side must be (4 |w - INSIDE_WINDING| above this) before it counts
MLS_NEIGHBOURS = 12  # points in each moving-least-squares distance
CORNER_OFFSETS = torch.tensor([(i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1)])


@dataclasses.dataclass(frozen=True)
class PointsTraining:
    """How a field is trained on points."""

    grid_cells: tuple[int, ...] = (16, 32, 64)  # each grid's cells per unit length
    steps: int = 300
    surface_batch: int = 8_192  # points a step
    space_batch: int = 8_192  # samples off the surface a step
    pool: int = 120_000  # samples off the surface, drawn once
    learning_rate: float = 0.01  # of the coarsest grid; finer grids take less, in proportion to their cell
    zero_weight: float = 1.0
    normal_weight: float = 0.2
    eikonal_weight: float = 0.1
    side_weight: float = 1.0
    follow_weight: float = 1.0  # gradient along the nearest point's normal, fading with the distance to it
    follow_cells: float = 16.0  # the fade's width, in the fit's cells
    smooth_weight: float = 0.3  # the gradient changes little between a sample and a point next to it
    smooth_cells: float = 2.0  # how far that point is (Gaussian), in the fit's cells


class GridLevel(nn.Module):
    """One dense grid: values at the points ``(i, j, k) * spacing - DOMAIN_HALF_EXTENT``."""

    def __init__(self, cells: int) -> None:
        super().__init__()
        self.side = round(2 * DOMAIN_HALF_EXTENT * cells) + 1  # grid points a side
        self.spacing = 2 * DOMAIN_HALF_EXTENT / (self.side - 1)
        self.values = nn.Parameter(torch.zeros(self.side**3))

    def forward(self, points: torch.Tensor, with_gradient: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        position = ((points + DOMAIN_HALF_EXTENT) / self.spacing).clamp(0, self.side - 1 - 1e-4)
        low = position.floor()
        t = position - low
        base = low.long()
        flat = (base[:, 0] * self.side + base[:, 1]) * self.side + base[:, 2]
        values = self.values[flat[:, None] + self._corner_steps.to(points.device)]  # (N, 8), CORNERS order
        x, y, z = (torch.stack([1 - t[:, axis], t[:, axis]], 1) for axis in range(3))  # (N, 2) each
        value = (_outer(x, y, z) * values).sum(1)
        if not with_gradient:
            return value, None
        slope = t.new_tensor([-1.0, 1.0]).expand(len(t), 2) / self.spacing
        gradient = torch.stack(
            [
                (_outer(slope, y, z) * values).sum(1),
                (_outer(x, slope, z) * values).sum(1),
                (_outer(x, y, slope) * values).sum(1),
            ],
            1,
        )
        return value, gradient

    @property
    def _corner_steps(self) -> torch.Tensor:
        """Flat offsets of a cell's 8 corners from its low corner, in CORNERS order."""
        i, j, k = CORNER_OFFSETS.unbind(1)
        return (i * self.side + j) * self.side + k


def _outer(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Products of per-axis pairs (N, 2) over a cell's 8 corners: (N, 8), in CORNERS order."""
    return (x[:, :, None, None] * y[:, None, :, None] * z[:, None, None, :]).reshape(len(x), 8)


class GridField(nn.Module):
    """The sum of the levels; reads as a signed distance, clamped to the truncation where asked."""

    def __init__(self, levels: list[GridLevel]) -> None:
        super().__init__()
        self.levels = nn.ModuleList(levels)
        self.truncation = TRUNCATION

    def forward(self, points: torch.Tensor, with_gradient: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        value = points.new_zeros(len(points))
        gradient = points.new_zeros(len(points), 3) if with_gradient else None
        for level in self.levels:
            level_value, level_gradient = level(points, with_gradient)
            value = value + level_value
            if gradient is not None and level_gradient is not None:
                gradient = gradient + level_gradient
        return value, gradient

    @torch.inference_mode()
    def evaluate(self, points: torch.Tensor, batch: int = 262_144) -> torch.Tensor:
        return torch.cat([self(points[start : start + batch])[0] for start in range(0, len(points), batch)])


@dataclasses.dataclass
class SpaceSamples:
    """Samples off the surface with the side they should read and the distance to the nearest point."""

    points: torch.Tensor
    sides: torch.Tensor  # +1 outside, -1 inside
    confidence: torch.Tensor  # 0..1
    nearest: torch.Tensor  # distance to the nearest point
    nearest_normal: torch.Tensor  # the nearest point's normal


def space_samples(prepared: PreparedPoints, count: int, cell: float, rng: np.random.Generator) -> SpaceSamples:
    """Samples near the points (at 1, 4 and 16 cells) and across the domain, with their sides: the nearest
    point's normal says where it is near and clear, the winding number elsewhere."""
    points = prepared.points
    parts = [points[rng.integers(len(points), size=count // 4)] + rng.normal(size=(count // 4, 3)) * sigma * cell
             for sigma in (1.0, 4.0, 16.0)]  # fmt: skip
    parts.append(rng.uniform(-DOMAIN_HALF_EXTENT, DOMAIN_HALF_EXTENT, size=(count - 3 * (count // 4), 3)))
    samples = np.clip(np.concatenate(parts), -DOMAIN_HALF_EXTENT, DOMAIN_HALF_EXTENT)
    distance, index = cKDTree(points).query(samples, workers=-1)
    offset = samples - points[index]
    along = np.einsum("ij,ij->i", offset, prepared.normals[index])
    near = distance < 3 * max(prepared.spacing, cell)
    clear = np.abs(along) > 0.7 * distance
    sides, confidence = np.sign(along), np.where(clear, 1.0, 0.0)
    far = ~near
    winding = prepared.winding(samples[far])
    sides[far] = np.where(winding > INSIDE_WINDING, -1.0, 1.0)
    confidence[far] = np.clip(np.abs(winding - INSIDE_WINDING) * 4 - WINDING_DOUBT, 0, 1)
    as_tensor = lambda array: torch.from_numpy(np.asarray(array, np.float32))
    normals = as_tensor(prepared.normals[index])
    return SpaceSamples(as_tensor(samples), as_tensor(sides), as_tensor(confidence), as_tensor(distance), normals)


StepCallback = Callable[[int, int, float], None]  # step, steps, loss


@dataclasses.dataclass
class TrainingData:
    """What the field is trained on, on the training device."""

    surface: torch.Tensor  # the points (N, 3)
    normals: torch.Tensor  # their outward unit normals (N, 3)
    space: SpaceSamples
    cell: float  # the fit's cell: the unit of the zero and side terms

    def loss(
        self, field: GridField, settings: PointsTraining, chosen: torch.Tensor, sampled: torch.Tensor
    ) -> torch.Tensor:
        """The weighted terms at the points ``chosen`` and the space samples ``sampled``."""
        value, gradient = field(self.surface[chosen], with_gradient=True)
        space_value, space_gradient = field(self.space.points[sampled], with_gradient=True)
        assert gradient is not None and space_gradient is not None
        margin = 0.5 * self.space.nearest[sampled].clamp(max=TRUNCATION)
        shortfall = torch.relu(margin - self.space.sides[sampled] * space_value)
        fade = torch.exp(-(self.space.nearest[sampled] / (settings.follow_cells * self.cell)).square())
        follow = fade * (space_gradient - self.space.nearest_normal[sampled]).square().sum(1)
        beside = self.space.points[sampled] + torch.randn_like(space_gradient) * (settings.smooth_cells * self.cell)
        beside_gradient = field(beside, with_gradient=True)[1]
        assert beside_gradient is not None
        smooth = (beside_gradient - space_gradient).square().sum(1)
        return (
            settings.zero_weight * (value / self.cell).square().mean()
            + settings.normal_weight * (gradient - self.normals[chosen]).square().sum(1).mean()
            + settings.eikonal_weight * (space_gradient.norm(dim=1) - 1).square().mean()
            + settings.side_weight * (self.space.confidence[sampled] * (shortfall / self.cell).square()).mean()
            + settings.follow_weight * follow.mean()
            + settings.smooth_weight * smooth.mean()
        )


@contextlib.contextmanager
def _one_thread_on_cpu(device: torch.device) -> Iterator[None]:
    """A step's tensors are small: on the CPU, more threads only wait on each other."""
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_on_points(
    prepared: PreparedPoints,
    resolution: int,
    settings: PointsTraining,
    device: torch.device,
    steps: int = 0,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> GridField:
    """Fit a :class:`GridField` to the prepared points (see the module's note for the terms)."""
    steps = steps or settings.steps
    torch.manual_seed(seed)
    space = space_samples(prepared, settings.pool, 1.0 / resolution, np.random.default_rng(seed))
    data = TrainingData(
        surface=torch.from_numpy(prepared.points.astype(np.float32)).to(device),
        normals=torch.from_numpy(prepared.normals.astype(np.float32)).to(device),
        space=SpaceSamples(*(tensor.to(device) for tensor in dataclasses.astuple(space))),
        cell=1.0 / resolution,
    )
    levels = [GridLevel(cells) for cells in settings.grid_cells]
    field = GridField(levels).to(device)
    optimiser = torch.optim.Adam(
        [
            {"params": [level.values], "lr": settings.learning_rate * level.spacing / levels[0].spacing}
            for level in levels
        ]
    )
    generator = torch.Generator(device=device).manual_seed(seed)
    surface_batch = min(settings.surface_batch, len(data.surface))
    with _one_thread_on_cpu(device):
        for step in range(steps):
            chosen = torch.randint(len(data.surface), (surface_batch,), device=device, generator=generator)
            sampled = torch.randint(len(space.points), (settings.space_batch,), device=device, generator=generator)
            loss = data.loss(field, settings, chosen, sampled)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if on_step is not None:
                on_step(step + 1, steps, float(loss.detach()))
    return field.eval()


class TrainedDistance:
    """A trained field as the distance queries that the narrow band samples (``sampling.DistanceQueries``):
    next to the points, their moving-least-squares distance (the weighted mean of the distances to the
    nearby points' tangent planes) takes over from the trained grids, which hold the rest."""

    closed = True

    def __init__(self, field: GridField, prepared: PreparedPoints, device: torch.device, width: float) -> None:
        self.field, self.device, self.width = field, device, width
        self.points, self.normals = prepared.points, prepared.normals
        self.tree = cKDTree(prepared.points)

    def _values(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed values at ``points`` and the distance to the nearest point (which bounds the distance to
        the surface from above, where the grids may overstate it next to a thin part)."""
        if not len(points):
            return np.zeros(0), np.zeros(0)
        points = np.asarray(points, np.float64)
        tensor = torch.from_numpy(points.astype(np.float32)).to(self.device)
        values = self.field.evaluate(tensor).double().cpu().numpy()
        nearest = self.tree.query(points, workers=-1)[0]
        close = np.flatnonzero(nearest < 3 * self.width)
        if len(close):
            distances, index = self.tree.query(points[close], MLS_NEIGHBOURS, workers=-1)
            weights = np.exp(-((distances / self.width) ** 2))
            planes = np.einsum("nki,nki->nk", points[close, None] - self.points[index], self.normals[index])
            mls = (weights * planes).sum(1) / np.maximum(weights.sum(1), 1e-300)
            blend = np.clip(3 - nearest[close] / self.width, 0, 1)
            values[close] = blend * mls + (1 - blend) * values[close]
        return values, nearest

    def unsigned(self, points: np.ndarray) -> np.ndarray:
        values, nearest = self._values(points)
        return np.minimum(np.abs(values), nearest)

    def inside(self, points: np.ndarray) -> np.ndarray:
        return self._values(points)[0] < 0

    def unsigned_and_side(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        values, nearest = self._values(points)
        return np.minimum(np.abs(values), nearest), values < 0
