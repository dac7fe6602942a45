"""Fit time beside Blender's Voxel Remesh operator, in one Blender: the operator (its defaults, voxel size
= longest side / 256), then Fit (BALANCED, 256) with the ready worker (preference Keep a Worker Ready, the
default: the worker loaded torch before the job) and with a fresh worker (the preference off: the job
starts a new Python and waits for its imports). The median
of --repeats runs each.

    python bench/fit_time.py --zip dist/inr_addon-0.1.0.zip --out bench/results/fit-time
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import igl

ROOT = Path(__file__).resolve().parents[1]
MESHES = ROOT.parent / "shared" / "data" / "meshes"
sys.path[:0] = [
    str(ROOT.parent / "shared" / "tools"),
    str(ROOT / "scripts"),
    str(ROOT / "inr_addon"),
    str(ROOT / "bench"),
]

import baselines
from headless import select_only

CLOSED = ["spot.obj", "armadillo_lowres.obj", "bunny_closed_hr.obj", "cad_part"]
RESOLUTION = 256
READY_WAIT_S = 5.0  # between runs: the ready worker has loaded torch by then (about 1.5 s on a 2-core CPU)


def source_object(bpy, name: str):
    """The mesh ``name`` from the shared meshes (or the CAD-like part) as a linked object."""
    if name == "cad_part":
        vertices, triangles = baselines.cad_part(bpy)
    else:
        vertices, triangles = igl.read_triangle_mesh(str(MESHES / name))
    mesh = bpy.data.meshes.new(Path(name).stem)
    mesh.from_pydata(vertices.tolist(), [], triangles.tolist())
    obj = bpy.data.objects.new(Path(name).stem, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def timed_fit(bpy, source) -> tuple[float, int]:
    """Seconds for Fit on ``source`` (the operator, to its end), and the result's triangle count."""
    select_only(bpy, source)
    started = time.perf_counter()
    if bpy.ops.inr.fit_mesh(resolution=RESOLUTION, preset="BALANCED") != {"FINISHED"}:
        raise RuntimeError(f"Fit failed on {source.name}")
    seconds = time.perf_counter() - started
    result = bpy.context.active_object
    triangles = sum(len(polygon.vertices) - 2 for polygon in result.data.polygons)
    bpy.data.objects.remove(result)
    return seconds, triangles


def bench(args: argparse.Namespace) -> list[dict]:
    from headless import start_blender

    bpy = start_blender(args.zip.resolve())
    preferences = bpy.context.preferences.addons["bl_ext.user_default.inr_addon"].preferences
    rows = []
    for name in args.meshes:
        bpy.ops.wm.read_homefile(use_empty=True)
        source = source_object(bpy, name)
        times: dict[str, list[float]] = {"operator": [], "ready": [], "fresh": []}
        for _ in range(args.repeats):
            started = time.perf_counter()
            remeshed = baselines.voxel_remesh_operator(bpy, source, RESOLUTION)
            times["operator"].append(time.perf_counter() - started)
            bpy.data.objects.remove(remeshed)
            for mode in ("ready", "fresh"):
                preferences.keep_worker_ready = mode == "ready"
                time.sleep(READY_WAIT_S)
                seconds, triangles = timed_fit(bpy, source)
                times[mode].append(seconds)
        preferences.keep_worker_ready = True
        row = {"mesh": name, "triangles_in": len(source.data.polygons), "triangles_out": triangles}
        row |= {f"{mode}_s": statistics.median(values) for mode, values in times.items()}
        row |= {f"{mode}_x_operator": row[f"{mode}_s"] / row["operator_s"] for mode in ("ready", "fresh")}
        print(row, flush=True)
        rows.append(row)
    return rows


def table(rows: list[dict], command: str) -> str:
    lines = [
        "# Fit time beside the Voxel Remesh operator (256, BALANCED)",
        "",
        f"Made by `{command}`; medians of the runs, each in the same Blender.",
        "",
        "| mesh | triangles in | Voxel Remesh operator s | Fit, worker ready: s (× operator) | Fit, fresh worker: s "
        + "(× operator) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['mesh']} | {row['triangles_in']} | {row['operator_s']:.2f} "
            f"| {row['ready_s']:.2f} ({row['ready_x_operator']:.1f}) | {row['fresh_s']:.2f} ({row['fresh_x_operator']:.1f}) |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fit-time")
    parser.add_argument("--meshes", nargs="+", default=CLOSED)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = bench(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    command = "python bench/fit_time.py --zip dist/inr_addon-0.1.0.zip --out bench/results/fit-time"
    (args.out / "table.md").write_text(table(rows, command))
    print(table(rows, command))


if __name__ == "__main__":
    main()
