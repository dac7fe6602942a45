"""Measure the 3D modes of inr.fit_image with the worker's library calls (no Blender):

- SILHOUETTE on ../shared/data/images/silhouettes: projection IoU of the fitted solid with the mask,
  at the image's own pixels;
- a disc at thickness 1 against the ball of the same radius (volume IoU);
- HULL of spot and armadillo_lowres seen from the front, the right and the top: projection IoU
  against each mask, volume IoU against the exact visual hull, and, plain and rounded, against the
  true shape.

    python bench/silhouettes.py [--preset BALANCED] [--resolution 256] [--out out/bench/silhouettes.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import igl
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path[:0] = [str(ROOT / "inr_addon"), str(SHARED / "tools")]

from meshmetrics import load

from inr_worker.jobs import extract, fit_shape
from inr_worker.silhouette import ShapeConfig, View

RECT = np.array([-1.0, 1.0, -1.0, 1.0])


def rotation(x_degrees: float, z_degrees: float) -> np.ndarray:
    ax, az = np.radians(x_degrees), np.radians(z_degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    matrix = np.eye(4)
    matrix[:3, :3] = rz @ rx
    return matrix


FRONT, RIGHT, TOP = rotation(90, 0), rotation(90, 90), rotation(0, 0)


def png_mask(path: Path) -> np.ndarray:
    """The add-on's mask rule: alpha where meaningful, else luminance < 0.5; row 0 at the bottom."""
    rgba = np.asarray(Image.open(path).convert("RGBA"), np.float32)[::-1] / 255
    if (rgba[..., 3] < 0.5).mean() >= 0.001:
        return rgba[..., 3] >= 0.5
    return rgba[..., 0] * 0.2126 + rgba[..., 1] * 0.7152 + rgba[..., 2] * 0.0722 < 0.5


def centres(count: int, low: float, high: float) -> np.ndarray:
    return low + (np.arange(count) + 0.5) * (high - low) / count


def occupancy(vertices: np.ndarray, triangles: np.ndarray, axes: list[np.ndarray]) -> np.ndarray:
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    inside = np.empty(len(points), bool)
    for start in range(0, len(points), 2_000_000):
        chunk = points[start : start + 2_000_000]
        inside[start : start + 2_000_000] = igl.fast_winding_number(vertices, triangles, chunk) > 0.5
    return inside.reshape([len(axis) for axis in axes])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def fit(views: list[View], config: ShapeConfig, preset: str, resolution: int) -> tuple[np.ndarray, np.ndarray, float]:
    started = time.monotonic()
    field = fit_shape(views, config, preset)
    vertices, triangles = extract(field, resolution)
    return vertices, triangles, time.monotonic() - started


def silhouette_rows(preset: str, resolution: int) -> list[dict]:
    rows = []
    for path in sorted((SHARED / "data" / "images" / "silhouettes").glob("*.png")):
        mask = png_mask(path)
        height, width = mask.shape
        rect = np.array([-1.0, 1.0, -height / width, height / width])
        vertices, triangles, seconds = fit([View(mask, np.eye(4), rect)], ShapeConfig(), preset, resolution)
        depth = np.abs(vertices[:, 2]).max() * 1.01
        axes = [centres(width, -1, 1), centres(height, rect[2], rect[3]), np.linspace(-depth, depth, 48)]
        projected = occupancy(vertices, triangles, axes).any(2).T
        rows.append({"case": f"SILHOUETTE {path.name}", "projection_iou": iou(projected, mask), "fit_s": seconds})
        print(rows[-1], flush=True)
    side = 256
    coordinates = centres(side, -1, 1)
    y, x = np.meshgrid(coordinates, coordinates, indexing="ij")
    vertices, triangles, seconds = fit([View(x**2 + y**2 < 0.8**2, np.eye(4), RECT)], ShapeConfig(), preset, resolution)
    axis = centres(96, -1, 1)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1)
    ball_iou = iou(occupancy(vertices, triangles, [axis, axis, axis]), np.linalg.norm(grid, axis=-1) <= 0.8)
    rows.append({"case": "SILHOUETTE disc, thickness 1, vs ball", "volume_iou": ball_iou, "fit_s": seconds})
    print(rows[-1], flush=True)
    return rows


def hull_rows(preset: str, resolution: int, pixels: int) -> list[dict]:
    rows = []
    for name in ("spot.obj", "armadillo_lowres.obj"):
        vertices, triangles = load(str(SHARED / "data" / "meshes" / name))
        vertices = (vertices - (vertices.min(0) + vertices.max(0)) / 2) / (vertices.max(0) - vertices.min(0)).max()
        axis = centres(pixels, -0.55, 0.55)
        solid = occupancy(vertices, triangles, [axis, axis, axis])
        masks = [solid.any(1).T, solid.any(0).T, solid.any(2).T]
        exact = masks[0].T[:, None, :] & masks[1].T[None, :, :] & masks[2].T[:, :, None]
        rect = np.array([-0.55, 0.55, -0.55, 0.55])
        views = [View(mask, frame, rect) for mask, frame in zip(masks, (FRONT, RIGHT, TOP))]
        for rounded in (False, True):
            fitted_vertices, fitted_triangles, seconds = fit(
                views, ShapeConfig(mode="HULL", rounded=rounded), preset, resolution
            )
            fitted = occupancy(fitted_vertices, fitted_triangles, [axis, axis, axis])
            projections = [iou(fitted.any(a).T, m) for a, m in zip((1, 0, 2), masks)]
            rows.append(
                {
                    "case": f"HULL{' rounded' if rounded else ''} {name}",
                    "projection_iou_front_right_top": projections,
                    "volume_iou_vs_exact_hull": iou(fitted, exact),
                    "volume_iou_vs_true_shape": iou(fitted, solid),
                    "exact_hull_vs_true_shape": iou(exact, solid),
                    "fit_s": seconds,
                }
            )
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="BALANCED")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--pixels", type=int, default=192, help="mask size of the HULL views")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench" / "silhouettes.json")
    args = parser.parse_args()
    rows = silhouette_rows(args.preset, args.resolution) + hull_rows(args.preset, args.resolution, args.pixels)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"preset": args.preset, "resolution": args.resolution, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
