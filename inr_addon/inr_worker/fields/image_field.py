"""A picture as a continuous 2D field f(x, y) -> RGB(A).

The field is a stack of dense 2D feature grids, read by bilinear interpolation: coarse grids for
smooth regions, one at (or near) the image's own resolution for luma detail, and half-resolution
grids for chroma (the features live in a decorrelated colour space, YCbCr). A linear colour map
and a tiny MLP decode the features to RGB(A). The grids start as a Laplacian pyramid of the image
(each grid holds what the coarser ones miss), so training only refines; it samples pixel batches
from an integer copy of the image, every pixel once an epoch, so an 8k picture never sits in
training memory as float32. The grids train aware of the quantisation they are stored with; the
file holds them as deflated integers with a step per channel, and the decoder as float32.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import typing
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .. import protocol
from ..progress import Progress
from ..sources.sampling import InputError

IMAGE_FIELD_FORMAT = "inr_addon.image_field"
IMAGE_FIELD_FORMAT_VERSION = 1
MAX_SIDE = 65_536  # the largest image side a field may describe
MAX_GRID_VALUES = 1 << 28  # more grid values than this in one file is not a field this module wrote
DEFLATE_MAX_RATIO = 1032  # deflate never expands data by more than this: bounds what a file may claim
STEP_FLOOR = 1 / 1024  # the finest quantisation step (colour units): near-empty grids store zeros
HEADER_BYTES = 1200  # about what a field file's JSON header takes
COMPONENTS = "YUVA"  # luma, the two chroma differences (Cb, Cr) and alpha; one grid feature each

# Full-range BT.601 (as JPEG): rows are Y, Cb, Cr from R, G, B.
RGB_TO_YUV = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
YUV_TO_RGB = np.linalg.inv(RGB_TO_YUV)


@dataclasses.dataclass(frozen=True)
class Level:
    """One feature grid: its size in nodes, the colour components it holds (one feature each) and
    the bits each stored value has."""

    width: int
    height: int
    components: str
    bits: int = 8

    @property
    def values(self) -> int:
        return self.width * self.height * len(self.components)


@dataclasses.dataclass(frozen=True)
class ImageFieldConfig:
    """Shape of an image field; stored with it so that a file rebuilds itself."""

    width: int
    height: int
    channels: int
    levels: tuple[Level, ...]
    hidden: int = 16

    def validate(self) -> None:
        """Raise ValueError for a shape no fit makes; cheap, so it runs before anything is allocated."""
        if not (1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE):
            raise ValueError(f"image size {self.width}x{self.height} is out of range")
        if self.channels not in (3, 4):
            raise ValueError(f"{self.channels} channels; expected 3 or 4")
        if not self.levels or not 1 <= self.hidden <= 256:
            raise ValueError("unusable grid or decoder settings")
        allowed = COMPONENTS[: self.channels]
        for level in self.levels:
            if not (2 <= level.width <= MAX_SIDE and 2 <= level.height <= MAX_SIDE and 2 <= level.bits <= 8):
                raise ValueError(f"grid {level} is out of range")
            if not level.components or any(c not in allowed for c in level.components):
                raise ValueError(f"grid components {level.components!r}; expected letters of {allowed}")
            if len(set(level.components)) != len(level.components):
                raise ValueError(f"grid components {level.components!r} repeat")
        if self.grid_values > MAX_GRID_VALUES:
            raise ValueError(f"{self.grid_values} grid values is more than a field may hold")

    @property
    def grid_values(self) -> int:
        return sum(level.values for level in self.levels)

    @property
    def features(self) -> int:
        return sum(len(level.components) for level in self.levels)


@dataclasses.dataclass(frozen=True)
class ImagePreset:
    """How an image is fitted: the grids (as divisors of the image size), steps and batch."""

    luma_divisor: int  # the finest luma (and alpha) grid
    chroma_divisors: tuple[int, ...]  # the finest chroma grid: these are tried finest first
    steps: int
    coarse_divisors: tuple[int, ...] = (4, 8, 16, 32)  # grids that hold every component
    fine_bits: tuple[int, ...] = (8, 7, 6, 5, 4)  # bits the finest grids may have
    batch: int = 1 << 15
    learning_rate: float = 2e-4
    final_learning_rate: float = 4e-5
    warm_up: float = 0.1  # fraction of the steps over which the learning rate rises (Adam's first steps are blind)
    max_nodes: int = 1 << 22  # a grid never has more nodes than this (big images get coarser grids)
    hidden: int = 16


IMAGE_PRESETS: dict[str, ImagePreset] = {
    "FAST": ImagePreset(luma_divisor=2, chroma_divisors=(2, 4), steps=10),
    "BALANCED": ImagePreset(luma_divisor=1, chroma_divisors=(1, 2), steps=30),
    "QUALITY": ImagePreset(luma_divisor=1, chroma_divisors=(1, 2), steps=160),
}
PNG_SHARE = 0.9  # of the size this module's PNG encoding has: a well-compressed PNG file can be smaller
PNG_SAMPLE_PIXELS = 1 << 22  # a bigger picture's PNG size is measured on this many of its pixels
PNG_BAND_ROWS = 64
MIN_FINE_BITS = 3  # the last resort for a field over its budget
BUDGET_MARGIN = 0.9  # a layout may start with this share of the budget (training adds a little)
EVALUATION_PIXELS = 1 << 16  # pixels on which the layouts' starting errors are compared


def level_layout(
    preset: ImagePreset, width: int, height: int, channels: int, chroma_divisor: int, fine_bits: int
) -> tuple[Level, ...]:
    """One layout of grids, fine to coarse; a grid over ``max_nodes`` nodes is made coarser."""
    luma = "YA" if channels == 4 else "Y"
    per_divisor: dict[int, str] = {divisor: luma + "UV" for divisor in preset.coarse_divisors}
    per_divisor[preset.luma_divisor] = luma + per_divisor.get(preset.luma_divisor, "")[len(luma) :]
    per_divisor[chroma_divisor] = per_divisor.get(chroma_divisor, "").replace("UV", "") + "UV"
    finest = {preset.luma_divisor, chroma_divisor}
    levels = []
    base = max(1.0, math.sqrt(width * height / preset.max_nodes))  # a big image: every grid coarser alike
    for divisor in sorted(per_divisor):
        scale = divisor * base
        while True:
            nodes_x, nodes_y = (max(2, math.ceil((side - 1) / scale) + 1) for side in (width, height))
            if nodes_x * nodes_y <= preset.max_nodes:
                break
            scale *= 1.01
        levels.append(Level(nodes_x, nodes_y, per_divisor[divisor], fine_bits if divisor in finest else 8))
    return tuple(levels)


def per_channel_step(grid: torch.Tensor, bits: int) -> torch.Tensor:
    """The quantisation step of each channel of a (1, C, H, W) grid, shaped (1, C, 1, 1)."""
    peak = grid.detach().abs().amax(dim=(0, 2, 3), keepdim=True)
    return (peak / (2 ** (bits - 1) - 1)).clamp_min(STEP_FLOOR)


def quantise(grid: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A grid as int8 values and its per-channel steps."""
    step = per_channel_step(grid, bits)
    limit = 2 ** (bits - 1) - 1
    return (grid.detach() / step).round().clamp(-limit, limit).to(torch.int8), step


def fake_quantise(grid: torch.Tensor, bits: int) -> torch.Tensor:
    """The grid as it will be stored; gradients pass straight through the rounding."""
    values, step = quantise(grid, bits)
    return grid + (values.float() * step - grid).detach()


class ImageField(nn.Module):
    """f(u, v) -> colour, for coordinates in [-1, 1] that span the source's pixel centres."""

    def __init__(self, config: ImageFieldConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.grids = nn.ParameterList(
            nn.Parameter(torch.zeros(1, len(level.components), level.height, level.width)) for level in config.levels
        )
        self.colour = nn.Linear(config.features, config.channels)  # the linear YCbCr(A) -> RGB(A) map
        self.mlp = nn.Sequential(
            nn.Linear(config.features, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.channels)
        )
        with torch.no_grad():
            self.colour.weight.copy_(torch.from_numpy(colour_matrix(config)))
            self.colour.bias.zero_()
            last = typing.cast(nn.Linear, self.mlp[-1])
            last.weight.zero_()  # the MLP starts as no correction at all
            last.bias.zero_()
        self.quantised = False  # read the grids as stored (training)

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
        for grid, level in zip(self.grids, self.config.levels, strict=True):
            values = fake_quantise(grid, level.bits) if self.quantised else grid
            sampled = F.grid_sample(values, grid_coords, mode="bilinear", padding_mode="border", align_corners=True)
            features.append(sampled.view(grid.shape[1], count))
        stacked = torch.cat(features).T.contiguous()
        return self.colour(stacked) + self.mlp(stacked)

    @torch.inference_mode()
    def render(self, width: int, height: int, device: torch.device | None = None) -> np.ndarray:
        """The field resampled to ``width`` x ``height``: (height, width, channels) float32 in [0, 1]."""
        if width < 1 or height < 1:
            raise InputError(f"cannot render {width}x{height} pixels")
        device = device or torch.device("cpu")
        model = self.to(device).eval()
        xs = pixel_centres(width, self.width, device)
        ys_all = pixel_centres(height, self.height, device)
        rows_per_batch = max(1, (1 << 18) // width)
        out = np.empty((height, width, self.channels), np.float32)
        for start in range(0, height, rows_per_batch):
            ys = ys_all[start : start + rows_per_batch]
            coords = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
            colours = model(coords).clamp(0.0, 1.0)
            out[start : start + len(ys)] = colours.view(len(ys), width, self.channels).cpu().numpy()
        return out


def colour_matrix(config: ImageFieldConfig) -> np.ndarray:
    """The linear decoder that sums each component over the grids and turns YCbCr(A) into RGB(A)."""
    matrix = np.zeros((config.channels, config.features), np.float32)
    column = 0
    for level in config.levels:
        for component in level.components:
            if component == "A":
                matrix[3, column] = 1.0
            else:
                matrix[:3, column] = YUV_TO_RGB[:, "YUV".index(component)]
            column += 1
    return matrix


def pixel_centres(count: int, source_count: int, device: torch.device) -> torch.Tensor:
    """Grid coordinates in [-1, 1] of ``count`` pixel centres resampling ``source_count`` pixels."""
    if source_count == 1:
        return torch.zeros(count, device=device)
    source = (torch.arange(count, device=device, dtype=torch.float32) + 0.5) * (source_count / count) - 0.5
    return (source / (source_count - 1) * 2 - 1).clamp(-1.0, 1.0)


def _integer_pixels(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """The image as uint8 or uint16 (a float image becomes uint16) and the value of full intensity."""
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise InputError(f"expected pixels of shape (height, width, 3 or 4), got {pixels.shape}")
    if pixels.shape[0] < 2 or pixels.shape[1] < 2:
        raise InputError(f"a {pixels.shape[1]}x{pixels.shape[0]} image is too small to fit")
    if pixels.dtype == np.uint8:
        return pixels, 255.0
    if pixels.dtype == np.uint16:
        return pixels, 65535.0
    if not np.issubdtype(pixels.dtype, np.floating):
        raise InputError(f"pixels of type {pixels.dtype}; expected float, uint8 or uint16")
    if not np.isfinite(pixels).all():
        raise InputError("the image has NaN or infinite values")
    return (np.clip(pixels, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16), 65535.0


def _to_components(rgba: torch.Tensor) -> torch.Tensor:
    """(N, 3 or 4) RGB(A) in [0, 1] as (N, 3 or 4) YCbCr(A)."""
    yuv = rgba[:, :3] @ torch.from_numpy(RGB_TO_YUV.T.astype(np.float32)).to(rgba.device)
    return torch.cat((yuv, rgba[:, 3:]), dim=1)


def _pyramid_start(model: ImageField, integer_pixels: np.ndarray, full_scale: float) -> None:
    """Set the grids to a Laplacian pyramid of the image, read at the finest grid's nodes."""
    config = model.config
    finest = max(config.levels, key=lambda level: level.width * level.height)
    # the image at the finest grid's nodes (the nearest pixel): a small float copy even for a huge image
    rows = np.rint(np.linspace(0, config.height - 1, finest.height)).astype(np.int64)
    columns = np.rint(np.linspace(0, config.width - 1, finest.width)).astype(np.int64)
    sampled = torch.from_numpy(integer_pixels[rows][:, columns].astype(np.float32) / full_scale)
    target = _to_components(sampled.reshape(-1, config.channels)).T.reshape(1, config.channels, *sampled.shape[:2])
    order = sorted(range(len(config.levels)), key=lambda i: config.levels[i].width * config.levels[i].height)
    approximation = torch.zeros_like(target)
    with torch.no_grad():
        for index in order:  # coarse to fine: each grid takes what the coarser ones left
            level = config.levels[index]
            picks = [COMPONENTS.index(component) for component in level.components]
            residual = (target - approximation)[:, picks]
            size = (level.height, level.width)
            values = F.interpolate(residual, size=size, mode="bilinear", antialias=True, align_corners=False)
            model.grids[index].copy_(values)
            back = F.interpolate(values, size=target.shape[2:], mode="bilinear", align_corners=True)
            approximation[:, picks] += back


def fit_image_field(
    pixels: np.ndarray,
    preset: str = "BALANCED",
    device: torch.device | None = None,
    steps: int = 0,
    seed: int = 0,
    progress: Progress | None = None,
    max_bytes: int = 0,
) -> ImageField:
    """Fit a field to ``pixels`` (height, width, 3 or 4): float in [0, 1] (display space), uint8 or uint16.

    The stored field stays under ``max_bytes`` (0: a little under the size of the picture as an
    8-bit PNG): the layout with the least starting error that fits is trained; coarser quantisation
    after training is the fallback.
    """
    progress = progress or Progress()
    device = device or torch.device("cpu")
    settings = IMAGE_PRESETS[preset]
    steps = steps or settings.steps
    integer_pixels, full_scale = _integer_pixels(pixels)
    height, width, channels = integer_pixels.shape
    budget = max_bytes or int(PNG_SHARE * png_size(integer_pixels, full_scale))
    progress.stage("starting", f"{width}x{height}, grids to fit in {budget} bytes")
    torch.manual_seed(seed)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    probe_coords, probe_target = _probe_pixels(integer_pixels, full_scale, generator)
    model = _best_start(settings, integer_pixels, full_scale, budget, probe_coords, probe_target)
    start, start_error = copy.deepcopy(model), _error(model, probe_coords, probe_target)
    config = model.config
    model.to(device)
    model.quantised = True
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate, fused=device.type in ("cpu", "cuda"))
    # an integer copy to sample from (int32 where torch lacks uint16 indexing); never the image as float
    stored = torch.from_numpy(integer_pixels.reshape(-1, channels).astype(np.int32 if full_scale > 255 else np.uint8))
    stored = stored.to(device)
    xs = pixel_centres(width, width, device)
    ys = pixel_centres(height, height, device)
    pixel_count = width * height
    batch = min(settings.batch, pixel_count)
    order, cursor = torch.empty(0, dtype=torch.int64), 0
    progress.stage("training", f"{steps} steps of {batch} pixels on {device.type}, {config.grid_values} grid values")
    for step in range(steps):
        fraction = step / max(steps - 1, 1)
        warm_up = min(1.0, (step + 1) / (settings.warm_up * steps + 1))
        lr = warm_up * (
            settings.final_learning_rate
            + 0.5 * (settings.learning_rate - settings.final_learning_rate) * (1 + math.cos(math.pi * fraction))
        )
        for group in optimiser.param_groups:
            group["lr"] = lr
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
    model = model.cpu().eval()
    if _error(model, probe_coords, probe_target) > start_error:  # training may not make it worse
        model = start
    model.quantised = False
    fine_count = len(model.config.levels) - len(settings.coarse_divisors)  # the grids before the coarse ones
    while stored_size(model) > budget and model.config.levels[0].bits > MIN_FINE_BITS:
        levels = model.config.levels
        coarser = tuple(dataclasses.replace(level, bits=min(level.bits, 7) - 1) for level in levels[:fine_count])
        model.config = dataclasses.replace(model.config, levels=coarser + levels[fine_count:])
    with torch.no_grad():
        for grid, level in zip(model.grids, model.config.levels, strict=True):
            values, step_size = quantise(grid, level.bits)
            grid.copy_(values.float() * step_size)
    return model


def _probe_pixels(
    integer_pixels: np.ndarray, full_scale: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates and colours of random pixels on which fields are compared."""
    height, width, channels = integer_pixels.shape
    chosen = _epoch_order(width * height, generator)[:EVALUATION_PIXELS]
    cpu = torch.device("cpu")
    coords = torch.stack(
        (pixel_centres(width, width, cpu)[chosen % width], pixel_centres(height, height, cpu)[chosen // width]), dim=-1
    )
    target = torch.from_numpy(integer_pixels.reshape(-1, channels)[chosen.numpy()].astype(np.float32) / full_scale)
    return coords, target


@torch.no_grad()
def _error(model: ImageField, coords: torch.Tensor, target: torch.Tensor) -> float:
    """Mean squared error of the field as stored (quantised) on the given pixels."""
    quantised, model.quantised = model.quantised, True
    error = F.mse_loss(model.cpu()(coords), target).item()
    model.quantised = quantised
    return error


def _best_start(
    settings: ImagePreset,
    integer_pixels: np.ndarray,
    full_scale: float,
    budget: int,
    coords: torch.Tensor,
    target: torch.Tensor,
) -> ImageField:
    """Of the preset's layouts, the started (pyramid) field with the least error among those that
    fit in the budget with room for training to spend; the smallest one if none does."""
    height, width, channels = integer_pixels.shape
    best, best_error, smallest, smallest_size = None, math.inf, None, math.inf
    for chroma_divisor in settings.chroma_divisors:
        levels = level_layout(settings, width, height, channels, chroma_divisor, 8)
        model = ImageField(ImageFieldConfig(width, height, channels, levels, settings.hidden))
        _pyramid_start(model, integer_pixels, full_scale)
        model.quantised = True
        for bits in sorted(settings.fine_bits, reverse=True):  # the most bits that fit: the least error
            model.config = dataclasses.replace(
                model.config, levels=level_layout(settings, width, height, channels, chroma_divisor, bits)
            )
            size = stored_size(model)
            if size < smallest_size:
                smallest, smallest_size = copy.deepcopy(model), size
            if size <= BUDGET_MARGIN * budget:
                error = _error(model, coords, target)
                if error < best_error:
                    best, best_error = copy.deepcopy(model), error
                break
    result = best or smallest
    assert result is not None  # the loop keeps at least the smallest layout
    return result


def png_size(integer_pixels: np.ndarray, full_scale: float) -> int:
    """Bytes of the picture as an 8-bit PNG file: what a field must not outweigh. A big picture is
    measured on evenly spaced bands of rows, scaled up."""
    height, width = integer_pixels.shape[:2]
    bands = max(1, min(height // PNG_BAND_ROWS, PNG_SAMPLE_PIXELS // (width * PNG_BAND_ROWS)))
    if bands * PNG_BAND_ROWS < height:
        starts = np.linspace(0, height - PNG_BAND_ROWS, bands).astype(np.int64)
        rows = (starts[:, None] + np.arange(PNG_BAND_ROWS)).ravel()
    else:
        rows = np.arange(height)
    sample = integer_pixels[rows]
    if full_scale > 255:
        sample = ((sample.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(sample).save(buffer, "PNG", optimize=True)
    return int(buffer.tell() * height / len(rows))


def stored_size(field: ImageField) -> int:
    """Bytes of the field as :func:`save_image_field` writes it, or a little more (a quicker deflate)."""
    decoder = sum(value.numel() for value in _decoder_state(field).values())
    return len(_pack_grids(field, effort=6)[0]) + 4 * decoder + 4 * field.config.features + HEADER_BYTES


def _pack_grids(field: ImageField, effort: int = 9) -> tuple[bytes, np.ndarray]:
    """The grids quantised and deflated (zlib level ``effort``), and their per-channel steps."""
    quantised = [quantise(grid, level.bits) for grid, level in zip(field.grids, field.config.levels, strict=True)]
    grid_bytes = b"".join(values.cpu().numpy().tobytes() for values, _ in quantised)
    steps = np.concatenate([step.cpu().numpy().ravel() for _, step in quantised]).astype("<f4")
    return zlib.compress(grid_bytes, effort), steps


def _epoch_order(count: int, generator: torch.Generator) -> torch.Tensor:
    """Every pixel once in random order; for a very big image, random pixels with replacement."""
    if count <= 1 << 24:
        return torch.randperm(count, generator=generator)
    return torch.randint(count, (1 << 24,), generator=generator)


def save_image_field(path: Path, field: ImageField) -> None:
    """Write the field: quantised grids deflated into one byte tensor, their steps and the decoder."""
    config = field.config
    packed, steps = _pack_grids(field)
    tensors: dict[str, tuple[str, tuple[int, ...], bytes]] = {
        "grids": ("U8", (len(packed),), packed),
        "grid_steps": ("F32", (len(steps),), steps.tobytes()),
    }
    for name, value in _decoder_state(field).items():
        array = np.ascontiguousarray(value.detach().cpu().numpy().astype("<f4"))
        tensors[name] = ("F32", tuple(array.shape), array.tobytes())
    metadata = {
        "format": IMAGE_FIELD_FORMAT,
        "format_version": str(IMAGE_FIELD_FORMAT_VERSION),
        "config": json.dumps(dataclasses.asdict(config), separators=(",", ":")),
    }
    protocol.write_safetensors(path, tensors, metadata)


def _decoder_state(field: ImageField) -> dict[str, torch.Tensor]:
    return {
        **{f"colour.{name}": value for name, value in field.colour.state_dict().items()},
        **{f"mlp.{name}": value for name, value in field.mlp.state_dict().items()},
    }


def load_image_field(path: Path) -> ImageField:
    """Read a field written by :func:`save_image_field`; ProtocolError for anything else."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise protocol.ProtocolError(f"cannot read the image field {path}: {error}") from error
    return image_field_from_bytes(data)


def image_field_from_bytes(data: bytes) -> ImageField:
    """Rebuild a field from its file's bytes; the stored config is checked against them first."""
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
        dtype, _, packed = tensors["grids"]
        if dtype != "U8" or config.grid_values > DEFLATE_MAX_RATIO * len(packed):
            raise ValueError("its grid data is shorter than its config says")
        dtype, shape, steps_raw = tensors["grid_steps"]
        if dtype != "F32" or shape != (config.features,):
            raise ValueError("its grid steps do not match its grids")
        model = ImageField(config)
        decoder = _decoder_state(model)
        for name, value in decoder.items():
            dtype, shape, raw_value = tensors[name]
            if dtype != "F32" or shape != tuple(value.shape):
                raise ValueError(f"decoder weight {name} has shape {shape}, expected {tuple(value.shape)}")
            value.copy_(torch.from_numpy(np.frombuffer(raw_value, "<f4").reshape(shape).copy()))
        decompressor = zlib.decompressobj()
        grid_bytes = decompressor.decompress(bytes(packed), config.grid_values)
        if len(grid_bytes) != config.grid_values or decompressor.unconsumed_tail or not decompressor.eof:
            raise ValueError("its grid data does not match its config")
        values = np.frombuffer(grid_bytes, np.int8)
        steps = np.frombuffer(steps_raw, "<f4")
        offset, channel = 0, 0
        with torch.no_grad():
            for grid, level in zip(model.grids, config.levels, strict=True):
                features = len(level.components)
                block = torch.from_numpy(values[offset : offset + level.values].astype(np.float32))
                step = torch.from_numpy(steps[channel : channel + features].copy())
                grid.copy_(block.view(1, features, level.height, level.width) * step.view(1, -1, 1, 1))
                offset += level.values
                channel += features
    except (KeyError, TypeError, ValueError, RuntimeError, zlib.error) as error:
        raise protocol.ProtocolError(f"the image field is damaged ({error}); fit the image again") from error
    return model.eval()
