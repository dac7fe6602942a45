"""A picture as a continuous 2D field f(x, y) -> RGB(A).

The field is a stack of dense 2D feature grids, from a coarse one for smooth regions down to one
at (or near) the image's own resolution, read by bilinear interpolation and decoded by a tiny MLP.
Training samples pixel batches from an integer copy of the image (a full-epoch permutation), so an
8k picture never sits in training memory as float32. The grids are trained aware of the 8-bit (or
coarser) quantisation they are stored with; the stored file is the quantised grids, deflated,
and the MLP as float16, so that it stays well below the size of the lossless source file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import protocol
from .progress import Progress

IMAGE_FIELD_FORMAT = "inr_addon.image_field"
IMAGE_FIELD_FORMAT_VERSION = 1
MAX_SIDE = 65_536  # the largest image side a field may describe
MAX_GRID_VALUES = 1 << 28  # more grid values than this in one file is not a field this module wrote
DEFLATE_MAX_RATIO = 1032  # deflate cannot expand a stream by more than this; bounds what a file may claim


@dataclasses.dataclass(frozen=True)
class Level:
    """One feature grid: its size in nodes and its number of feature channels."""

    width: int
    height: int
    features: int


@dataclasses.dataclass(frozen=True)
class ImageFieldConfig:
    """Shape of an image field; stored with it so that a file rebuilds itself."""

    width: int
    height: int
    channels: int
    levels: tuple[Level, ...]
    hidden: int = 32
    hidden_layers: int = 1
    bits: int = 8  # quantisation of the stored grids

    def validate(self) -> None:
        """Raise ValueError for a shape no fit would make (checked before anything is allocated)."""
        if not (1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE):
            raise ValueError(f"image size {self.width}x{self.height} is out of range")
        if self.channels not in (3, 4):
            raise ValueError(f"{self.channels} channels; expected 3 or 4")
        if (
            not self.levels
            or not 2 <= self.bits <= 8
            or not 1 <= self.hidden <= 256
            or not 0 <= self.hidden_layers <= 4
        ):
            raise ValueError("unusable decoder or grid settings")
        total = 0
        for level in self.levels:
            if not (2 <= level.width <= MAX_SIDE and 2 <= level.height <= MAX_SIDE and 1 <= level.features <= 16):
                raise ValueError(f"grid {level} is out of range")
            total += level.width * level.height * level.features
        if total > MAX_GRID_VALUES:
            raise ValueError(f"{total} grid values is more than a field may hold")

    @property
    def grid_values(self) -> int:
        return sum(level.width * level.height * level.features for level in self.levels)


@dataclasses.dataclass(frozen=True)
class ImagePreset:
    """How an image is fitted: grid layout (as divisors of the image size), steps and batch."""

    divisors: tuple[tuple[int, int], ...]  # (divisor of the image size, features), fine to coarse
    steps: int
    batch: int = 1 << 16
    learning_rate: float = 2e-2
    final_learning_rate: float = 5e-4
    quantise_from: float = 0.6  # fraction of the steps after which the grids train quantised
    max_nodes: int = 1 << 22  # a level never has more nodes than this (big images get coarser grids)
    hidden: int = 32
    hidden_layers: int = 1
    bits: int = 8


IMAGE_PRESETS: dict[str, ImagePreset] = {
    "FAST": ImagePreset(divisors=((2, 2), (4, 2), (8, 2), (16, 2), (32, 2)), steps=250),
    "BALANCED": ImagePreset(divisors=((1, 1), (2, 2), (4, 2), (8, 2), (16, 2), (32, 2)), steps=500),
    "QUALITY": ImagePreset(divisors=((1, 2), (2, 2), (4, 2), (8, 2), (16, 2), (32, 2)), steps=1200),
}


def level_layout(preset: ImagePreset, width: int, height: int) -> tuple[Level, ...]:
    """The grids for an image: each divisor's grid, made coarser where it would exceed ``max_nodes``."""
    levels = []
    for divisor, features in preset.divisors:
        scale = max(float(divisor), math.sqrt(width * height / preset.max_nodes))
        levels.append(
            Level(
                width=max(2, math.ceil((width - 1) / scale) + 1),
                height=max(2, math.ceil((height - 1) / scale) + 1),
                features=features,
            )
        )
    return tuple(levels)


def fake_quantise(grid: torch.Tensor, bits: int) -> torch.Tensor:
    """Round each channel to ``bits`` signed levels of its own scale; gradients pass straight through."""
    scale = per_channel_scale(grid.detach(), bits)
    quantised = (grid / scale).round().clamp(-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1) * scale
    return grid + (quantised - grid).detach()


def per_channel_scale(grid: torch.Tensor, bits: int) -> torch.Tensor:
    """The step of each channel's quantisation, shaped (1, C, 1, 1)."""
    peak = grid.abs().amax(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)
    return peak / (2 ** (bits - 1) - 1)


class ImageField(nn.Module):
    """f(u, v) -> colour, for coordinates in [-1, 1] spanning the source's pixel centres."""

    def __init__(self, config: ImageFieldConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.grids = nn.ParameterList(
            nn.Parameter(torch.zeros(1, level.features, level.height, level.width)) for level in config.levels
        )
        layers: list[nn.Module] = []
        width = sum(level.features for level in config.levels)
        for _ in range(config.hidden_layers):
            layers += [nn.Linear(width, config.hidden), nn.ReLU()]
            width = config.hidden
        layers.append(nn.Linear(width, config.channels))
        self.mlp = nn.Sequential(*layers)
        self.quantised = False  # grids read through fake quantisation (training only)

    @property
    def width(self) -> int:
        return self.config.width

    @property
    def height(self) -> int:
        return self.config.height

    @property
    def channels(self) -> int:
        return self.config.channels

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        count = coords.shape[0]
        grid_coords = coords.view(1, 1, count, 2)
        features = []
        for grid in self.grids:
            values = fake_quantise(grid, self.config.bits) if self.quantised else grid
            sampled = F.grid_sample(values, grid_coords, mode="bilinear", padding_mode="border", align_corners=True)
            features.append(sampled.view(grid.shape[1], count))
        return self.mlp(torch.cat(features).T)

    @torch.inference_mode()
    def render(self, width: int, height: int, device: torch.device | None = None) -> np.ndarray:
        """The field resampled to ``width`` x ``height``: (height, width, channels) float32 in [0, 1]."""
        if width < 1 or height < 1:
            raise ValueError(f"cannot render {width}x{height} pixels")
        device = device or torch.device("cpu")
        model = self.to(device).eval()
        xs = pixel_centres(width, self.width, device)
        rows_per_batch = max(1, (1 << 18) // width)
        out = np.empty((height, width, self.channels), np.float32)
        ys_all = pixel_centres(height, self.height, device)
        for start in range(0, height, rows_per_batch):
            ys = ys_all[start : start + rows_per_batch]
            coords = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
            colours = model(coords).clamp(0.0, 1.0)
            out[start : start + len(ys)] = colours.view(len(ys), width, self.channels).cpu().numpy()
        return out


def pixel_centres(count: int, source_count: int, device: torch.device) -> torch.Tensor:
    """Grid coordinates in [-1, 1] of ``count`` pixel centres that resample ``source_count`` pixels."""
    if source_count == 1:
        return torch.zeros(count, device=device)
    source = (torch.arange(count, device=device, dtype=torch.float32) + 0.5) * (source_count / count) - 0.5
    return (source / (source_count - 1) * 2 - 1).clamp(-1.0, 1.0)


def _integer_pixels(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """The image as uint8 or uint16 (a float image becomes uint16) and the value of full intensity."""
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ValueError(f"expected pixels of shape (height, width, 3 or 4), got {pixels.shape}")
    if pixels.shape[0] * pixels.shape[1] < 2:
        raise ValueError(f"a {pixels.shape[1]}x{pixels.shape[0]} image is too small to fit")
    if pixels.dtype == np.uint8:
        return pixels, 255.0
    if pixels.dtype == np.uint16:
        return pixels, 65535.0
    if not np.issubdtype(pixels.dtype, np.floating):
        raise ValueError(f"pixels of type {pixels.dtype}; expected float, uint8 or uint16")
    if not np.isfinite(pixels).all():
        raise ValueError("the image has NaN or infinite values")
    return (np.clip(pixels, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16), 65535.0


def fit_image_field(
    pixels: np.ndarray,
    preset: str = "BALANCED",
    device: torch.device | None = None,
    steps: int = 0,
    seed: int = 0,
    progress: Progress | None = None,
) -> ImageField:
    """Fit a field to ``pixels`` (height, width, 3 or 4): float in [0, 1] (display space), uint8 or uint16."""
    progress = progress or Progress()
    device = device or torch.device("cpu")
    settings = IMAGE_PRESETS[preset]
    steps = steps or settings.steps
    integer_pixels, full_scale = _integer_pixels(pixels)
    height, width, channels = integer_pixels.shape
    config = ImageFieldConfig(
        width=width,
        height=height,
        channels=channels,
        levels=level_layout(settings, width, height),
        hidden=settings.hidden,
        hidden_layers=settings.hidden_layers,
        bits=settings.bits,
    )
    torch.manual_seed(seed)
    model = ImageField(config).to(device)
    grid_params = list(model.grids.parameters())
    optimiser = torch.optim.Adam(
        [{"params": grid_params}, {"params": model.mlp.parameters()}],
        lr=settings.learning_rate,
        fused=device.type in ("cpu", "cuda"),
    )
    # torch has no uint16 arithmetic on every device; int32 holds both integer kinds exactly
    stored = torch.from_numpy(integer_pixels.reshape(-1, channels).astype(np.int32 if full_scale > 255 else np.uint8))
    stored = stored.to(device)
    xs = pixel_centres(width, width, device)
    ys = pixel_centres(height, height, device)
    pixel_count = width * height
    batch = min(settings.batch, pixel_count)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    order, cursor = torch.empty(0, dtype=torch.int64), 0
    progress.stage(
        "training",
        f"{steps} steps of {batch} pixels on {device.type}, {width}x{height}, {config.grid_values} grid values",
    )
    for step in range(steps):
        fraction = step / max(steps - 1, 1)
        lr = settings.final_learning_rate + 0.5 * (settings.learning_rate - settings.final_learning_rate) * (
            1 + math.cos(math.pi * fraction)
        )
        for group in optimiser.param_groups:
            group["lr"] = lr
        model.quantised = fraction >= settings.quantise_from
        if cursor + batch > len(order):
            order, cursor = _epoch_order(pixel_count, generator), 0
        chosen = order[cursor : cursor + batch].to(device)
        cursor += batch
        coords = torch.stack((xs[chosen % width], ys[chosen // width]), dim=-1)
        target = stored[chosen].float() / full_scale
        loss = F.mse_loss(model(coords), target)
        optimiser.zero_grad(set_to_none=False)
        loss.backward()
        optimiser.step()
        progress.step(step + 1, steps, loss.item())
    model.quantised = False
    with torch.no_grad():
        for grid in model.grids:
            grid.copy_(dequantise(*quantise(grid, config.bits)))
    return model.cpu().eval()


def _epoch_order(count: int, generator: torch.Generator) -> torch.Tensor:
    """Every pixel once in random order; for very big images, random pixels with replacement."""
    if count <= 1 << 24:
        return torch.randperm(count, generator=generator)
    return torch.randint(count, (1 << 24,), generator=generator)


def quantise(grid: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A grid as int8 values and its per-channel steps."""
    scale = per_channel_scale(grid.detach(), bits)
    limit = 2 ** (bits - 1) - 1
    return (grid.detach() / scale).round().clamp(-limit, limit).to(torch.int8), scale


def dequantise(values: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return values.float() * scale


def save_image_field(path: Path, field: ImageField) -> None:
    """Write the field: quantised grids deflated into one byte tensor, their steps and the MLP."""
    config = field.config
    quantised = [quantise(grid, config.bits) for grid in field.grids]
    grid_bytes = b"".join(values.cpu().numpy().astype(np.int8).tobytes() for values, _ in quantised)
    packed = zlib.compress(grid_bytes, 9)
    scales = np.concatenate([scale.cpu().numpy().ravel() for _, scale in quantised]).astype("<f4")
    tensors: dict[str, tuple[str, tuple[int, ...], bytes]] = {
        "grids": ("U8", (len(packed),), packed),
        "grid_steps": ("F32", (len(scales),), scales.tobytes()),
    }
    for name, value in field.mlp.state_dict().items():
        array = np.ascontiguousarray(value.detach().cpu().numpy().astype("<f2"))
        tensors[f"mlp.{name}"] = ("F16", tuple(array.shape), array.tobytes())
    metadata = {
        "format": IMAGE_FIELD_FORMAT,
        "format_version": str(IMAGE_FIELD_FORMAT_VERSION),
        "config": json.dumps(dataclasses.asdict(config), separators=(",", ":")),
    }
    protocol.write_safetensors(path, tensors, metadata)


def load_image_field(path: Path) -> ImageField:
    """Read a field written by :func:`save_image_field`; ProtocolError for anything else."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise protocol.ProtocolError(f"cannot read the image field {path}: {error}") from error
    return image_field_from_bytes(data)


def image_field_from_bytes(data: bytes) -> ImageField:
    """Rebuild a field from the bytes of its file; the stored config is checked before any allocation."""
    tensors, metadata = protocol.read_safetensors(data)
    if metadata.get("format") != IMAGE_FIELD_FORMAT:
        raise protocol.ProtocolError("the data is not an inr_addon image field")
    if metadata.get("format_version") != str(IMAGE_FIELD_FORMAT_VERSION):
        raise protocol.ProtocolError(
            f"the image field has format version {metadata.get('format_version')}, this add-on reads "
            f"version {IMAGE_FIELD_FORMAT_VERSION}; fit the image again"
        )
    try:
        raw = json.loads(metadata["config"])
        config = ImageFieldConfig(**{**raw, "levels": tuple(Level(**level) for level in raw["levels"])})
        config.validate()
        dtype, shape, packed = tensors["grids"]
        if dtype != "U8" or config.grid_values > DEFLATE_MAX_RATIO * len(packed):
            raise ValueError("the grid data is shorter than its config says")
        dtype, shape, steps_raw = tensors["grid_steps"]
        if dtype != "F32" or shape != (sum(level.features for level in config.levels),):
            raise ValueError("grid steps do not match the grids")
        model = ImageField(config)
        state = {}
        for name, value in model.mlp.state_dict().items():
            dtype, shape, raw_value = tensors[f"mlp.{name}"]
            if dtype != "F16" or shape != tuple(value.shape):
                raise ValueError(f"decoder weight {name} has shape {shape}, expected {tuple(value.shape)}")
            state[name] = torch.from_numpy(np.frombuffer(raw_value, "<f2").astype(np.float32).reshape(shape))
        model.mlp.load_state_dict(state)
        decompressor = zlib.decompressobj()
        grid_bytes = decompressor.decompress(bytes(packed), config.grid_values)
        if len(grid_bytes) != config.grid_values or decompressor.unconsumed_tail or not decompressor.eof:
            raise ValueError("the grid data does not match its config")
        values = np.frombuffer(grid_bytes, np.int8)
        steps = np.frombuffer(steps_raw, "<f4")
        offset, channel = 0, 0
        with torch.no_grad():
            for grid, level in zip(model.grids, config.levels, strict=True):
                count = level.width * level.height * level.features
                block = torch.from_numpy(values[offset : offset + count].astype(np.float32))
                scale = torch.from_numpy(steps[channel : channel + level.features].astype(np.float32))
                grid.copy_(block.view(1, level.features, level.height, level.width) * scale.view(1, -1, 1, 1))
                offset += count
                channel += level.features
    except (KeyError, TypeError, ValueError, RuntimeError, zlib.error) as error:
        raise protocol.ProtocolError(f"the image field is damaged ({error}); fit the image again") from error
    return model.eval()
