"""Benchmark: an image fitted as a neural field (the worker's ``fit_image_field``) on the Kodak
pictures, against the same picture stored in the same bytes as a smaller bitmap, upsampled bicubically.

    python bench/images.py --out bench/results [--preset BALANCED] [--images kodim01 ...] [--crop kodim05]

PSNR is ../shared/tools/imagemetrics.py's (8-bit RGB, all pixels and channels). Two bicubic baselines
get the field's bytes: a raw 8-bit RGB bitmap (the issue's), and a PNG file (stricter: a lossless
coder spends the bytes better). Fit times are wall times next to a fixed reference workload timed in
the same run just before each fit (a float32 matmul loop), so that a change in the machine's speed shows as a ratio.
Writes images.json, images.md (a Markdown table) and images_crop.png (a 4x zoomed crop).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path[:0] = [str(SHARED / "tools"), str(ROOT / "inr_addon")]

from imagemetrics import load_rgb, psnr

from inr_worker.fields.image_field import fit_image_field, load_image_field, save_image_field

KODAK = SHARED / "data" / "images" / "kodak"
ZOOM = 4


def reference_seconds() -> float:
    """A fixed workload (16 GFLOP of float32 matmul) whose time tells how busy the machine is."""
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(1024, 1024, generator=generator), torch.randn(1024, 1024, generator=generator)
    started = time.perf_counter()
    for _ in range(8):
        a @ b
    return time.perf_counter() - started


def as_8bit(picture: np.ndarray) -> np.ndarray:
    return np.floor(np.clip(picture, 0, 1) * 255 + 0.5).astype(np.uint8)


def bicubic_from(source: np.ndarray, width: int, height: int) -> np.ndarray:
    """The picture reduced to ``width`` x ``height`` and enlarged back, both bicubic (Pillow)."""
    small = Image.fromarray(source).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(small.resize((source.shape[1], source.shape[0]), Image.Resampling.BICUBIC))


def raw_bitmap_size(source: np.ndarray, budget: int) -> tuple[int, int]:
    """The largest bitmap of the source's aspect whose raw 8-bit RGB bytes fit in ``budget``."""
    height, width = source.shape[:2]
    scale = min(1.0, math.sqrt(budget / (3 * width * height)))
    while max(1, int(width * scale)) * max(1, int(height * scale)) * 3 > budget:
        scale *= 0.999
    return max(1, int(width * scale)), max(1, int(height * scale))


def png_bitmap_size(source: np.ndarray, budget: int) -> tuple[int, int]:
    """The largest bitmap of the source's aspect whose PNG file fits in ``budget`` (bisection)."""
    height, width = source.shape[:2]

    def png_bytes(scale: float) -> int:
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        buffer = io.BytesIO()
        Image.fromarray(source).resize(size, Image.Resampling.BICUBIC).save(buffer, "PNG", optimize=True)
        return buffer.tell()

    low, high = 0.05, 1.0
    if png_bytes(high) <= budget:
        return width, height
    for _ in range(12):
        middle = (low + high) / 2
        low, high = (middle, high) if png_bytes(middle) <= budget else (low, middle)
    return max(1, int(width * low)), max(1, int(height * low))


def measure(path: Path, preset: str, work: Path) -> dict:
    source = np.asarray(Image.open(path).convert("RGB"))
    height, width = source.shape[:2]
    reference = reference_seconds()
    started = time.perf_counter()
    field = fit_image_field(source, preset)
    fit_s = time.perf_counter() - started
    field_path = work / f"{path.stem}.safetensors"
    save_image_field(field_path, field)
    field_bytes = field_path.stat().st_size
    rendered_path = work / f"{path.stem}_field.png"
    Image.fromarray(as_8bit(load_image_field(field_path).render(width, height))).save(rendered_path)
    reference_rgb = load_rgb(str(path))
    raw_size = raw_bitmap_size(source, field_bytes)
    png_size = png_bitmap_size(source, field_bytes)
    results = {
        "image": path.stem,
        "size": f"{width}x{height}",
        "png_bytes": path.stat().st_size,
        "field_bytes": field_bytes,
        "layout": " ".join(
            f"{level.components}{level.bits}@{level.width}x{level.height}" for level in field.config.levels[:2]
        ),
        "psnr": psnr(reference_rgb, load_rgb(str(rendered_path))),
        "bicubic_raw_size": f"{raw_size[0]}x{raw_size[1]}",
        "bicubic_raw_psnr": psnr(reference_rgb, bicubic_from(source, *raw_size) / 255.0),
        "bicubic_png_size": f"{png_size[0]}x{png_size[1]}",
        "bicubic_png_psnr": psnr(reference_rgb, bicubic_from(source, *png_size) / 255.0),
        "fit_s": fit_s,
        "reference_s": reference,
    }
    results["fit_over_reference"] = fit_s / reference
    return results


def crop_picture(path: Path, field_bytes: int, work: Path, out: Path) -> None:
    """Source | field | bicubic from the same bytes (raw bitmap), a crop enlarged 4x without smoothing."""
    source = np.asarray(Image.open(path).convert("RGB"))
    height, width = source.shape[:2]
    field = np.asarray(Image.open(work / f"{path.stem}_field.png"))
    bicubic = bicubic_from(source, *raw_bitmap_size(source, field_bytes))
    crop_w, crop_h = 96, 64
    # the crop with the most detail (largest gradient energy on a coarse search)
    gradient = (
        np.abs(np.diff(source.astype(np.float32).mean(-1), axis=1))[:-1]
        + np.abs(np.diff(source.astype(np.float32).mean(-1), axis=0))[:, :-1]
    )
    best, best_energy = (0, 0), -1.0
    for y in range(0, height - crop_h, 16):
        for x in range(0, width - crop_w, 16):
            energy = float(gradient[y : y + crop_h, x : x + crop_w].mean())
            if energy > best_energy:
                best, best_energy = (x, y), energy
    x, y = best
    label_h = 18
    panels = [("source", source), ("neural field", field), ("bicubic, same bytes", bicubic)]
    canvas = Image.new("RGB", (3 * crop_w * ZOOM + 2 * 8, crop_h * ZOOM + label_h), "white")
    draw = ImageDraw.Draw(canvas)
    for index, (label, picture) in enumerate(panels):
        crop = Image.fromarray(picture[y : y + crop_h, x : x + crop_w])
        left = index * (crop_w * ZOOM + 8)
        canvas.paste(crop.resize((crop_w * ZOOM, crop_h * ZOOM), Image.Resampling.NEAREST), (left, label_h))
        draw.text((left + 4, 3), f"{label} ({path.stem}, {crop_w}x{crop_h} at {x},{y}, 4x)", fill="black")
    canvas.save(out)


def table(rows: list[dict], preset: str) -> str:
    lines = [
        (
            f"| image ({preset}) | PSNR dB | field bytes | PNG bytes | finest grids | bicubic, raw bitmap | "
            "bicubic, PNG bitmap | fit s | fit / reference |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['image']} | {row['psnr']:.2f} | {row['field_bytes']:,} | {row['png_bytes']:,} | {row['layout']} | "
            f"{row['bicubic_raw_psnr']:.2f} ({row['bicubic_raw_size']}) | "
            f"{row['bicubic_png_psnr']:.2f} ({row['bicubic_png_size']}) | {row['fit_s']:.1f} | "
            f"{row['fit_over_reference']:.1f} |"
        )
    mean = {
        key: float(np.mean([row[key] for row in rows]))
        for key in ("psnr", "field_bytes", "png_bytes", "bicubic_raw_psnr", "bicubic_png_psnr", "fit_s")
    }
    ratio = float(np.mean([row["fit_over_reference"] for row in rows]))
    lines.append(
        f"| **mean** | **{mean['psnr']:.2f}** | {mean['field_bytes']:,.0f} | {mean['png_bytes']:,.0f} | | "
        f"{mean['bicubic_raw_psnr']:.2f} | {mean['bicubic_png_psnr']:.2f} | {mean['fit_s']:.1f} | {ratio:.1f} |"
    )
    lines.append("")
    lines.append(
        f"Minimum PSNR {min(row['psnr'] for row in rows):.2f} dB; reference workload (8 float32 1024x1024 "
        f"matmuls) {np.mean([row['reference_s'] for row in rows]):.2f} s on average in this run."
    )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--preset", default="BALANCED")
    parser.add_argument("--images", nargs="*", default=[])
    parser.add_argument("--crop", default="kodim05")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    paths = [KODAK / f"{name}.png" for name in args.images] or sorted(KODAK.glob("*.png"))
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for path in paths:
            rows.append(measure(path, args.preset, work))
            print(json.dumps(rows[-1]), flush=True)
        by_name = {row["image"]: row for row in rows}
        if args.crop in by_name:
            crop_picture(
                KODAK / f"{args.crop}.png", by_name[args.crop]["field_bytes"], work, args.out / "images_crop.png"
            )
    stem = "images" if args.preset == "BALANCED" else f"images_{args.preset.lower()}"
    (args.out / f"{stem}.json").write_text(json.dumps(rows, indent=1))
    (args.out / f"{stem}.md").write_text(table(rows, args.preset))
    print(table(rows, args.preset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
