"""The image field on its own (real torch): fit, quality floor, storage, resampling and bad input."""

from __future__ import annotations

import dataclasses
import io
import json
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from inr_worker import protocol
from inr_worker.fields import image_field
from inr_worker.fields.image_field import fit_image_field, load_image_field, save_image_field
from inr_worker.progress import Progress
from inr_worker.sources.sampling import InputError


def psnr(reference: np.ndarray, candidate: np.ndarray) -> float:
    """As ../shared/tools/imagemetrics.py: 8-bit values, all pixels and channels."""
    quantised = np.floor(candidate * 255 + 0.5) / 255
    return float(10 * np.log10(1 / np.mean((reference.astype(np.float64) - quantised) ** 2)))


def make_picture(width: int = 120, height: int = 80, seed: int = 0) -> np.ndarray:
    """A synthetic photo: smooth shading, a hard-edged coloured disc, stripes and fine noise (uint8)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    picture = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * np.sin(6 * x + 3 * y)], axis=-1)
    disc = (x - 0.45) ** 2 + (y - 0.3) ** 2 < 0.04
    picture[disc] = [0.9, 0.2, 0.1]
    picture[:, ::7] *= 0.8
    picture += rng.normal(0, 0.02, picture.shape)
    return (np.clip(picture, 0, 1) * 255 + 0.5).astype(np.uint8)


def png_size(pixels: np.ndarray) -> int:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.tell()


class LossLog(Progress):
    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []

    def step(self, step: int, steps: int, loss: float) -> None:
        self.losses.append(loss)


@pytest.fixture(scope="module")
def fitted():
    pixels = make_picture()
    log = LossLog()
    field = fit_image_field(pixels, "BALANCED", steps=15, progress=log)
    return pixels, field, log


def test_fit_reaches_the_quality_floor_in_fewer_bytes_than_the_png(fitted, tmp_path):
    pixels, field, log = fitted
    assert (field.width, field.height, field.channels) == (120, 80, 3)
    rendered = field.render(120, 80)
    assert rendered.shape == (80, 120, 3) and rendered.dtype == np.float32
    assert psnr(pixels / 255, rendered) >= 33
    assert len(log.losses) == 15 and np.isfinite(log.losses).all()
    path = tmp_path / "picture.safetensors"
    save_image_field(path, field)
    assert path.stat().st_size <= png_size(pixels)


def test_saved_field_renders_the_same_after_loading(fitted, tmp_path):
    _, field, _ = fitted
    path = tmp_path / "picture.safetensors"
    save_image_field(path, field)
    loaded = load_image_field(path)
    assert np.array_equal(loaded.render(120, 80), field.render(120, 80))
    assert np.array_equal(loaded.render(333, 17), field.render(333, 17))


def test_resampling_is_continuous(fitted):
    pixels, field, _ = fitted
    double = field.render(240, 160)
    assert double.shape == (160, 240, 3)
    # averaging 2x2 blocks of the double-size picture gives back the picture (a smooth resampling)
    halved = double.reshape(80, 2, 120, 2, 3).mean(axis=(1, 3))
    assert psnr(pixels / 255, halved) >= 30
    thumbnail = field.render(30, 20)
    assert thumbnail.shape == (20, 30, 3) and 0.0 <= thumbnail.min() and thumbnail.max() <= 1.0


def test_rgba_and_16_bit_and_float_inputs():
    rgb = make_picture(128, 96, seed=1).astype(np.float64) / 255
    alpha = np.zeros((96, 128, 1))
    alpha[16:80, 20:100] = 1.0
    rgba = np.concatenate([rgb, alpha], axis=-1)
    sixteen = (rgba * 65535 + 0.5).astype(np.uint16)
    field = fit_image_field(sixteen, "BALANCED", steps=5)
    assert field.channels == 4
    rendered = field.render(128, 96)
    assert rendered.shape == (96, 128, 4)
    assert psnr(alpha, rendered[..., 3:]) >= 30
    floats = fit_image_field(rgb.astype(np.float32), "FAST")
    assert psnr(rgb, floats.render(128, 96)) >= 25  # FAST: luma at half resolution


def test_a_flat_picture_makes_a_small_exact_field(tmp_path):
    flat = np.full((128, 256, 3), (200, 40, 90), np.uint8)
    field = fit_image_field(flat, "FAST", steps=2)
    assert psnr(flat / 255, field.render(256, 128)) >= 50
    path = tmp_path / "flat.safetensors"
    save_image_field(path, field)
    assert path.stat().st_size < 4000  # near-empty grids are stored as zeros, which deflate to nothing


def test_a_big_image_gets_grids_no_bigger_than_the_cap(monkeypatch):
    balanced = image_field.IMAGE_PRESETS["BALANCED"]
    for chroma_divisor in balanced.chroma_divisors:
        layout = image_field.level_layout(balanced, 8192, 8192, 3, chroma_divisor, 8)
        assert all(level.width * level.height <= balanced.max_nodes for level in layout)
        assert max(level.width for level in layout) > 1000  # still a fine grid
    # the same cap, scaled down so that a small image exercises it: grids coarser than the image
    small_cap = dataclasses.replace(image_field.IMAGE_PRESETS["FAST"], max_nodes=600)
    monkeypatch.setitem(image_field.IMAGE_PRESETS, "SMALL_CAP", small_cap)
    pixels = make_picture(90, 60, seed=2)
    field = fit_image_field(pixels, "SMALL_CAP", steps=5)
    assert all(level.width * level.height <= 600 for level in field.config.levels)
    assert psnr(pixels / 255, field.render(90, 60)) >= 20


@pytest.mark.parametrize(
    "pixels, message",
    [
        (np.zeros((1, 1, 3), np.uint8), "too small"),
        (np.zeros((10, 10), np.uint8), "expected pixels of shape"),
        (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
        (np.zeros((8, 8, 3), np.int64), "expected float, uint8 or uint16"),
    ],
)
def test_bad_pixels_are_one_clear_error(pixels, message):
    with pytest.raises(InputError, match=message):
        fit_image_field(pixels, "FAST", steps=1)


def test_foreign_or_damaged_files_are_refused(fitted, tmp_path):
    _, field, _ = fitted
    path = tmp_path / "field.safetensors"
    save_image_field(path, field)
    data = path.read_bytes()
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(data[: len(data) // 2])
    with pytest.raises(protocol.ProtocolError, match="not a readable field file"):
        load_image_field(damaged)
    mesh_field = tmp_path / "mesh.safetensors"
    protocol.write_safetensors(mesh_field, {}, {"format": protocol.FIELD_FORMAT, "format_version": "1"})
    with pytest.raises(protocol.ProtocolError, match="not an inr_addon image field"):
        load_image_field(mesh_field)
    with pytest.raises(protocol.ProtocolError, match="cannot read"):
        load_image_field(tmp_path / "missing.safetensors")


def crafted(path, config: dict, packed: bytes) -> None:
    """An image field file with the given config and grid bytes (and a matching decoder)."""
    levels = config["levels"]
    features = sum(len(level["components"]) for level in levels)
    tensors = {
        "grids": ("U8", (len(packed),), packed),
        "grid_steps": ("F32", (features,), np.ones(features, "<f4").tobytes()),
    }
    channels, hidden = config["channels"], config["hidden"]
    for name, shape in {
        "colour.weight": (channels, features),
        "colour.bias": (channels,),
        "mlp.0.weight": (hidden, features),
        "mlp.0.bias": (hidden,),
        "mlp.2.weight": (channels, hidden),
        "mlp.2.bias": (channels,),
    }.items():
        tensors[name] = ("F32", shape, np.zeros(shape, "<f4").tobytes())
    metadata = {"format": image_field.IMAGE_FIELD_FORMAT, "format_version": "1", "config": json.dumps(config)}
    protocol.write_safetensors(path, tensors, metadata)


def test_a_crafted_file_cannot_make_the_loader_allocate_what_its_bytes_do_not_hold(tmp_path):
    small = {"width": 8, "height": 8, "channels": 3, "hidden": 4}
    small["levels"] = [{"width": 8, "height": 8, "components": "YUV", "bits": 8}]
    path = tmp_path / "ok.safetensors"
    crafted(path, small, zlib.compress(bytes(8 * 8 * 3)))
    assert load_image_field(path).render(8, 8).shape == (8, 8, 3)  # the crafted format itself is right

    huge = {**small, "width": 8192, "height": 8192}
    huge["levels"] = [{"width": 8192, "height": 8192, "components": "YUV", "bits": 8}]
    path = tmp_path / "huge.safetensors"
    crafted(path, huge, zlib.compress(bytes(1000)))
    tracemalloc.start()
    with pytest.raises(protocol.ProtocolError, match="shorter than its config says"):
        load_image_field(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8_000_000  # the claimed grids would be 200 MB

    lying = {**small, "levels": [{"width": 8, "height": 8, "components": "YUV", "bits": 8}] * 2}
    path = tmp_path / "lying.safetensors"
    crafted(path, lying, zlib.compress(bytes(8 * 8 * 3)))  # half the values the config says
    with pytest.raises(protocol.ProtocolError, match="does not match its config"):
        load_image_field(path)
    for bad in ({**small, "channels": 7}, {**small, "levels": [{**small["levels"][0], "components": "YQ"}]}):
        crafted(path, bad, zlib.compress(bytes(8 * 8 * 3)))
        with pytest.raises(protocol.ProtocolError, match="damaged"):
            load_image_field(path)
