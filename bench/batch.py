"""Throughput of ``inr_worker batch`` on a local Ray against the same meshes fitted one after the other by
the CLI (``inr_worker fit``), so that Ray's overhead is measured in the same run.

    python bench/batch.py [--names spot.obj ...] [--preset FAST] [--resolution 128] [--parallel 1 2]

Both paths use the whole machine: the CLI's torch uses every core; Ray gets ``--num-cpus`` = the cores,
and ``n`` parallel tasks ask for cores/n CPUs each (so torch threads per task = cores/n). Walls include
every process start (a Python with torch a mesh for the CLI; Ray's start-up and its workers for batch).
Writes ``results.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MESHES = ROOT.parent / "shared" / "data" / "meshes"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "inr_addon")}
WORKER = [sys.executable, "-m", "inr_worker"]


def sequential_cli(meshes: list[Path], out: Path, preset: str, resolution: int) -> dict:
    """Each mesh by its own ``inr_worker fit`` process, one after the other."""
    out.mkdir(parents=True)
    started = time.monotonic()
    per_mesh = {}
    for mesh in meshes:
        mesh_started = time.monotonic()
        subprocess.run(
            [*WORKER, "fit", str(mesh), "--field", str(out / f"{mesh.stem}.safetensors"), "--preset", preset]
            + ["--out", str(out / f"{mesh.stem}_{resolution}.obj"), "--resolution", str(resolution)],
            env=ENV,
            check=True,
            capture_output=True,
        )
        per_mesh[mesh.name] = round(time.monotonic() - mesh_started, 2)
    wall = time.monotonic() - started
    return {"wall_s": round(wall, 1), "meshes_per_min": round(len(meshes) / wall * 60, 2), "per_mesh_s": per_mesh}


def ray_batch(meshes: list[Path], out: Path, preset: str, resolution: int, parallel: int, cores: int) -> dict:
    """All meshes by one ``inr_worker batch`` command on a local Ray with ``parallel`` tasks at a time."""
    library = out / "library"
    library.mkdir(parents=True)
    for mesh in meshes:
        (library / mesh.name).symlink_to(mesh)
    started = time.monotonic()
    subprocess.run(
        [*WORKER, "batch", str(library), "--out", str(out / "fields"), "--preset", preset]
        + ["--resolution", str(resolution), "--num-cpus", str(cores), "--cpus-per-task", str(cores / parallel)],
        env=ENV,
        check=True,
        capture_output=True,
    )
    wall = time.monotonic() - started
    rows = [json.loads(line) for line in (out / "fields" / "manifest.jsonl").read_text().splitlines()]
    failed = [row["input"] for row in rows if row["status"] != "done"]
    if failed:
        raise SystemExit(f"batch failed on {failed}")
    return {
        "wall_s": round(wall, 1),
        "meshes_per_min": round(len(meshes) / wall * 60, 2),
        "sum_task_s": round(sum(row["task_s"] for row in rows), 1),
        "per_mesh_s": {Path(row["input"]).name: row["task_s"] for row in rows},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meshes", type=Path, default=MESHES)
    parser.add_argument("--names", nargs="+", help="only these files of --meshes (default: all .obj and .ply)")
    parser.add_argument("--preset", default="FAST")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench-batch")
    args = parser.parse_args()
    meshes = sorted(p for p in args.meshes.iterdir() if p.suffix in (".obj", ".ply"))
    if args.names:
        meshes = [mesh for mesh in meshes if mesh.name in args.names]
    cores = os.cpu_count() or 1
    shutil.rmtree(args.out, ignore_errors=True)
    results = {
        "machine": f"{platform.machine()} {cores} cores, {platform.platform()}",
        "preset": args.preset,
        "resolution": args.resolution,
        "meshes": [mesh.name for mesh in meshes],
        "load_average_before": os.getloadavg(),
        "runs": {},
    }
    results["runs"]["sequential CLI"] = sequential_cli(meshes, args.out / "cli", args.preset, args.resolution)
    print("sequential CLI", results["runs"]["sequential CLI"]["wall_s"], "s", flush=True)
    for parallel in args.parallel:
        name = f"Ray batch, {parallel} task(s) at a time"
        results["runs"][name] = ray_batch(
            meshes, args.out / f"ray-{parallel}", args.preset, args.resolution, parallel, cores
        )
        print(name, results["runs"][name]["wall_s"], "s", flush=True)
    results["load_average_after"] = os.getloadavg()
    baseline = results["runs"]["sequential CLI"]["wall_s"]
    for run in results["runs"].values():
        run["throughput_vs_sequential_cli"] = round(baseline / run["wall_s"], 2)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\n{len(meshes)} meshes, {args.preset}, resolution {args.resolution}, {results['machine']}")
    print("| run | wall s | meshes/min | throughput vs sequential CLI |\n|---|---|---|---|")
    for name, run in results["runs"].items():
        print(f"| {name} | {run['wall_s']} | {run['meshes_per_min']} | {run['throughput_vs_sequential_cli']} |")


if __name__ == "__main__":
    main()
