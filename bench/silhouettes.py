"""Measure the 3D modes of inr.fit_image with the worker's library calls (no Blender):

- SILHOUETTE on ../shared/data/images/silhouettes: projection IoU of the fitted solid with the mask,
  at the image's own pixels;
- a disc at thickness 1 against the ball of the same radius (volume IoU);
- HULL of spot and armadillo_lowres seen from the front, the right and the top: projection IoU
  against each mask, volume IoU against the exact visual hull, and, plain and rounded, against the
  true shape.

    python bench/silhouettes.py [--preset BALANCED|TARGET] [--device AUTO] [--out out/bench/silhouettes.json]

Solids are compared as occupancy of the fitted field (its sign at grid points, the surface that
marching cubes extracts). The true shapes' occupancy comes from libigl's winding number, or from
``--solids`` (an .npz this script writes with ``--write-solids``, for a machine without libigl).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("INR_SHARED", ROOT.parent / "shared"))
sys.path[:0] = [str(ROOT / "inr_addon"), str(SHARED / "tools")]


from inr_worker.fields.field_file import StoredField
from inr_worker.jobs import fit_shape
from inr_worker.sources.silhouette import ShapeConfig, SilhouetteShape, View
from inr_worker.train import pick_device

RECT = np.array([-1.0, 1.0, -1.0, 1.0])
MESHES = ("spot.obj", "armadillo_lowres.obj")


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


Solid = Callable[[np.ndarray], np.ndarray]  # common-frame points (N, 3) -> inside (N,) bool


def occupancy(solid: Solid, axes: list[np.ndarray]) -> np.ndarray:
    """Where the solid is, at the grid points of ``axes`` (common frame)."""
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return solid(points).reshape([len(axis) for axis in axes])


def field_solid(field: StoredField, device: torch.device) -> Solid:
    """The fitted field's solid (value <= 0): the surface that marching cubes extracts."""

    def inside(points: np.ndarray) -> np.ndarray:
        unit = torch.from_numpy(field.frame.to_unit(points).astype(np.float32)).to(device)
        return field.model.to(device).evaluate(unit).cpu().numpy() <= 0

    return inside


def mesh_solid(name: str, axis: np.ndarray, solids: dict) -> np.ndarray:
    """The shared mesh, scaled to a unit box, as winding-number occupancy on the grid ``axis``^3."""
    if name in solids:
        return solids[name]
    import igl
    from meshmetrics import load

    vertices, triangles = load(str(SHARED / "data" / "meshes" / name))
    vertices = (vertices - (vertices.min(0) + vertices.max(0)) / 2) / (vertices.max(0) - vertices.min(0)).max()
    points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    return (igl.fast_winding_number(vertices, triangles, points) > 0.5).reshape(len(axis), len(axis), len(axis))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def fit(views: list[View], config: ShapeConfig, preset: str, device: str) -> tuple[Solid, float, float]:
    """Train a field (or, for preset TARGET, take the signed distance it would be trained on): the solid,
    the seconds it took and the top of its box (common z)."""
    started = time.monotonic()
    if preset == "TARGET":
        shape = SilhouetteShape(views, config)
        return (lambda points: shape.signed_distance(points) <= 0), time.monotonic() - started, shape.high[2]
    field = fit_shape(views, config, preset, device)
    top = field.frame.from_unit(field.high)[2]
    return field_solid(field, pick_device(device)), time.monotonic() - started, top


def silhouette_rows(preset: str, device: str) -> list[dict]:
    rows = []
    for path in sorted((SHARED / "data" / "images" / "silhouettes").glob("*.png")):
        mask = png_mask(path)
        height, width = mask.shape
        rect = np.array([-1.0, 1.0, -height / width, height / width])
        solid, seconds, top = fit([View(mask, np.eye(4), rect)], ShapeConfig(), preset, device)
        axes = [centres(width, -1, 1), centres(height, rect[2], rect[3]), np.linspace(-top, top, 64)]
        projected = occupancy(solid, axes).any(2).T
        rows.append({"case": f"SILHOUETTE {path.name}", "projection_iou": iou(projected, mask), "fit_s": seconds})
        print(rows[-1], flush=True)
    side = 256
    coordinates = centres(side, -1, 1)
    y, x = np.meshgrid(coordinates, coordinates, indexing="ij")
    solid, seconds, _ = fit([View(x**2 + y**2 < 0.8**2, np.eye(4), RECT)], ShapeConfig(), preset, device)
    axis = centres(128, -1, 1)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1)
    ball_iou = iou(occupancy(solid, [axis, axis, axis]), np.linalg.norm(grid, axis=-1) <= 0.8)
    rows.append({"case": "SILHOUETTE disc, thickness 1, vs ball", "volume_iou": ball_iou, "fit_s": seconds})
    print(rows[-1], flush=True)
    return rows


def hull_rows(preset: str, device: str, pixels: int, solids: dict, meshes: tuple[str, ...]) -> list[dict]:
    rows = []
    for name in meshes:
        axis = centres(pixels, -0.55, 0.55)
        solid = mesh_solid(name, axis, solids)
        masks = [solid.any(1).T, solid.any(0).T, solid.any(2).T]
        exact = masks[0].T[:, None, :] & masks[1].T[None, :, :] & masks[2].T[:, :, None]
        rect = np.array([-0.55, 0.55, -0.55, 0.55])
        views = [View(mask, frame, rect) for mask, frame in zip(masks, (FRONT, RIGHT, TOP))]
        for rounded in (False, True):
            fitted_solid, seconds, _ = fit(views, ShapeConfig(mode="HULL", rounded=rounded), preset, device)
            fitted = occupancy(fitted_solid, [axis, axis, axis])
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
    parser.add_argument("--preset", default="BALANCED", help="FAST, BALANCED, QUALITY, or TARGET (no training)")
    parser.add_argument("--device", default="AUTO")
    parser.add_argument("--pixels", type=int, default=192, help="mask size of the HULL views")
    parser.add_argument("--solids", type=Path, help="the meshes' occupancy, written by --write-solids")
    parser.add_argument("--write-solids", type=Path, help="only write the meshes' occupancy to this .npz")
    parser.add_argument("--only", help="'silhouettes', or one mesh name for its HULL rows")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench" / "silhouettes.json")
    args = parser.parse_args()
    axis = centres(args.pixels, -0.55, 0.55)
    if args.write_solids:
        np.savez_compressed(args.write_solids, **{name: mesh_solid(name, axis, {}) for name in MESHES})
        return
    solids = dict(np.load(args.solids)) if args.solids else {}
    rows = silhouette_rows(args.preset, args.device) if args.only in (None, "silhouettes") else []
    meshes = MESHES if args.only is None else tuple(name for name in MESHES if name == args.only)
    rows += hull_rows(args.preset, args.device, args.pixels, solids, meshes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"preset": args.preset, "device": args.device, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
