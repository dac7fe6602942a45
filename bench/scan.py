"""Benchmark: a real scan to a closed solid. The shared scan (../shared/data/scans/srb_lord_quas.xyz, the
Surface Reconstruction Benchmark's simulated optical scan of a statue: noise, holes, uneven density, no
normals) through the add-on's worker and Open3D's Screened Poisson at depth 8, as is and trimmed, in the
same run.

    apt-get install -y libusb-1.0-0   # once: open3d-cpu's import needs it (`make bench` runs this step)
    python bench/scan.py --zip dist/inr_addon-<version>.zip --out bench/results/scan

The scan has no ground truth, so each surface is scored by how close it passes to the points (the distance
from each point to the surface: mean, 95th percentile and largest) and by what it adds where there are no
points (the share of its area farther than FAR of the longest side from every point: blobs and sheets),
with its boundary and non-manifold edges and its pieces. Distances are fractions of the scan's longest
side. Times: Screened Poisson's normal estimation, orientation and Poisson; ours, the whole worker
command. Writes results.json, table.md and scan.png (front and back of each surface) to --out.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import igl
import numpy as np
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
SCAN = ROOT.parent / "shared" / "data" / "scans" / "srb_lord_quas.xyz"
sys.path[:0] = [
    str(ROOT.parent / "shared" / "tools"),
    str(ROOT / "scripts"),
    str(ROOT / "bench"),
    str(ROOT / "inr_addon"),
]

from meshmetrics import edge_counts, sample
from points import run_ours, save_png, screened_poisson, sheet_row, stacked, standing_object, write_mesh

FAR = 0.02  # surface farther than this from every point (a fraction of the longest side) was never seen
METHODS = ["SPSR d8", "SPSR d8 trim", "ours"]


def score(points: np.ndarray, size: float, vertices: np.ndarray, triangles: np.ndarray) -> dict:
    """How close the surface passes to the points, and how much of it lies far from all of them."""
    from inr_worker.fields.operations import surface_pieces  # torch: not for the Blender child that draws the picture

    squared = igl.point_mesh_squared_distance(points, vertices, triangles)[0]
    to_surface = np.sqrt(squared) / size
    on_surface = sample(vertices, triangles, 200_000, np.random.default_rng(0))[0]
    from_points = cKDTree(points).query(on_surface, workers=-1)[0] / size
    boundary, nonmanifold = edge_counts(triangles)
    return {
        "to_surface_mean": float(to_surface.mean()),
        "to_surface_p95": float(np.quantile(to_surface, 0.95)),
        "to_surface_max": float(to_surface.max()),
        "far_area_share": float((from_points > FAR).mean()),
        "boundary_edges": boundary,
        "nonmanifold_edges": nonmanifold,
        "pieces": len(np.unique(surface_pieces(vertices, triangles)[0])),
        "triangles": len(triangles),
    }


def table(rows: list[dict], command: str) -> str:
    base = next(row["wall_s"] for row in rows if row["method"] == "SPSR d8")
    lines = [
        "# A real scan (srb_lord_quas, 57,263 points, no normals) to a closed solid",
        "",
        f"Made by `{command}`. Distances are fractions of the scan's longest side.",
        "",
        (
            "| method | points to surface: mean / 95th pct / largest | area farther than 2% from every point | "
            "boundary / non-manifold edges | pieces | triangles | wall s | × SPSR d8 time |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['method']} | {row['to_surface_mean']:.2e} / {row['to_surface_p95']:.2e} / "
            f"{row['to_surface_max']:.2e} | {100 * row['far_area_share']:.1f}% | "
            f"{row['boundary_edges']} / {row['nonmanifold_edges']} | {row['pieces']} | {row['triangles']} | "
            f"{row['wall_s']:.1f} | {row['wall_s'] / base:.2f} |"
        )
    return "\n".join(lines) + "\n"


def pictures(args: argparse.Namespace) -> None:
    """Inside Blender: each surface from the front and from the back, on white, in one picture."""
    import math

    from headless import start_blender

    bpy = start_blender(args.zip.resolve())
    bpy.ops.wm.read_homefile(use_empty=True)
    halves = []
    for turn, side in ((math.pi, "front"), (0.0, "back")):
        objects = [standing_object(bpy, method, mesh_path(args.work, method)) for method in METHODS]
        for obj in objects:
            obj.rotation_euler[2] = turn
        labels = [f"{method}, {side}" for method in METHODS]
        halves.append(sheet_row(bpy, objects, labels, args.work / f"scan_{side}.png"))
    save_png(stacked(halves), args.out / "scan.png", args.command)


def mesh_path(work: Path, method: str) -> Path:
    return work / f"{method.replace(' ', '_')}.ply"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, required=True, help="the built extension (for the pictures)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scan")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench-scan")
    parser.add_argument("--preset", default="BALANCED", help="ours' preset")
    parser.add_argument("--pictures", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--command", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.command = args.command or shlex.join(["python", *sys.argv])
    if args.pictures:
        pictures(args)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    points = np.loadtxt(SCAN)[:, :3]
    size = float(np.ptp(points, axis=0).max())
    rows = []
    for (fields, mesh), method in zip(screened_poisson(points, None, 8), METHODS):
        write_mesh(mesh_path(args.work, method), mesh)
        rows.append({"method": method, **fields, **score(points, size, *mesh)})
        print(rows[-1], flush=True)
    fields = run_ours(SCAN, mesh_path(args.work, "ours"), args.preset, timeout=3600)
    if fields["status"] != "ok":
        raise SystemExit(f"ours failed: {fields.get('error')}")
    vertices, triangles = igl.read_triangle_mesh(str(mesh_path(args.work, "ours")))[:2]
    rows.append({"method": "ours", **fields, **score(points, size, vertices, triangles)})
    print(rows[-1], flush=True)
    (args.out / "results.json").write_text(json.dumps({"command": args.command, "rows": rows}, indent=1))
    (args.out / "table.md").write_text(table(rows, args.command))
    command = [sys.executable, __file__, "--pictures", "--zip", str(args.zip), "--out", str(args.out)]
    subprocess.run([*command, "--work", str(args.work), "--command", args.command], check=True)
    print((args.out / "table.md").read_text())


if __name__ == "__main__":
    main()
