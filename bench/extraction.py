"""Re-extract one field at growing resolutions: time, peak memory and edge counts, beside dense marching
cubes (the whole grid evaluated, as the extractor did before) measured in the same run.

    python bench/extraction.py FIELD.safetensors [--resolutions 256 512 1024 2048] [--dense 256 512]
    python bench/extraction.py --blender-vs-cli [--meshes spot.obj ...] [--resolution 512] [--zip dist/...zip]

Each extraction runs in a process of its own, as the worker does it (``jobs.extract`` and
``jobs.write_job_surface``), so that the peak RSS is its own. Where both ran, the
Hausdorff distance between the sparse and the dense vertices is given in cells. The last line is the
time that ``mesh_data.fill_mesh`` (bpy) takes to write the largest result of at most 2M triangles back.

``--blender-vs-cli`` fits each shared mesh (BALANCED, by the command line), then re-extracts its field at
``--resolution`` both through Blender (``inr.extract_mesh`` on the field imported with ``inr.import_field``,
the add-on installed from the zip) and through ``inr_worker extract`` (a process of its own, writing a
binary PLY), one after the other, and gives each wall time, their ratio, and the share of Blender's time
spent reading the worker's surface and writing it into the mesh (``read_surface`` + ``fill_mesh``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "inr_addon")]


def edge_counts(triangles: np.ndarray) -> tuple[int, int]:
    """Edges used by one triangle (boundary) and by more than two (non-manifold)."""
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), 1)
    _, uses = np.unique(edges[:, 0] * (int(triangles.max()) + 1) + edges[:, 1], return_counts=True)
    return int((uses == 1).sum()), int((uses > 2).sum())


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def _dense_surface(model, low, high, resolution: int, device) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes on the field evaluated at every point of the extractor's grid."""
    from skimage.measure import marching_cubes

    from inr_worker.surface import extract as extraction

    lattice = extraction._lattice(model, low, high, resolution, device)
    shape = tuple(int(n) for n in lattice.points)
    values = np.empty(shape, dtype=np.float32)
    plane = np.stack(np.indices(shape[1:]).reshape(2, -1), -1)
    for i in range(shape[0]):
        points = np.concatenate([np.full((len(plane), 1), i), plane], 1)
        values[i] = lattice.evaluate(points).reshape(shape[1:])
    vertices, triangles, _, _ = marching_cubes(values, 0.0, method="lewiner")
    return vertices * lattice.cell + lattice.origin, triangles.astype(np.int64)


def run_one(field_path: Path, kind: str, resolution: int, out: Path) -> None:
    """One extraction in this process; prints a JSON line."""
    import torch

    from inr_worker import jobs
    from inr_worker.fields.field_file import load_field

    field = load_field(field_path)
    started = time.perf_counter()
    if kind == "sparse":  # as the worker does it
        vertices, triangles = jobs.extract(field, resolution, "CPU")
    else:
        vertices, triangles = _dense_surface(field.model, field.low, field.high, resolution, torch.device("cpu"))
        vertices = field.frame.from_unit(vertices)
    seconds = time.perf_counter() - started
    jobs.write_job_surface(out, vertices, triangles)
    boundary, nonmanifold = edge_counts(triangles)
    print(
        json.dumps(
            {
                "kind": kind,
                "resolution": resolution,
                "seconds": seconds,
                "peak_rss_gb": _peak_rss_gb(),
                "vertices": len(vertices),
                "triangles": len(triangles),
                "boundary_edges": boundary,
                "nonmanifold_edges": nonmanifold,
                "cell": field.frame.scale / resolution,
            }
        )
    )


def write_back(surface: Path) -> None:
    """Time ``fill_mesh`` on a result; prints a JSON line."""
    import bpy

    spec = importlib.util.spec_from_file_location("mesh_data", ROOT / "inr_addon" / "mesh_data.py")
    mesh_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mesh_data)
    with np.load(surface) as data:
        vertices, triangles = data["vertices"].astype(np.float32), data["triangles"].astype(np.int32)
    mesh = bpy.data.meshes.new("bench")
    times = []
    for _ in range(3):
        started = time.perf_counter()
        mesh_data.fill_mesh(mesh, vertices, triangles)
        times.append(time.perf_counter() - started)
    print(json.dumps({"triangles": len(triangles), "seconds": min(times)}))


def _timed(module, name: str, timings: dict[str, float]) -> None:
    """Wrap ``module.name`` so that its wall time adds up in ``timings[name]``."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started

    setattr(module, name, wrapper)


def blender_vs_cli(meshes: list[Path], resolution: int, zip_path: Path) -> None:
    """Re-extract each mesh's field at ``resolution`` in Blender and on the command line; prints a table."""
    sys.path[:0] = [str(ROOT / "scripts")]
    from headless import ADDON, start_blender

    bpy = start_blender(zip_path)
    operator = sys.modules[ADDON + ".operators.extract_mesh"]
    worker = {**os.environ, "PYTHONPATH": str(ROOT / "inr_addon")}
    print(f"Re-extraction at {resolution} of a BALANCED field (fitted by the command line)\n")
    print("| mesh | triangles | Blender s | reading + writing the mesh s (share) | command line s | Blender ÷ CLI |")
    print("|---|---|---|---|---|---|")
    timings: dict[str, float] = {}
    _timed(operator, "read_surface", timings)
    _timed(operator.mesh_data, "fill_mesh", timings)
    with tempfile.TemporaryDirectory() as scratch:
        for mesh in meshes:
            field = Path(scratch) / f"{mesh.stem}.safetensors"
            command = [sys.executable, "-m", "inr_worker", "fit", str(mesh), "--field", str(field)]
            subprocess.run(command, env=worker, capture_output=True, check=True)
            bpy.ops.wm.read_homefile(use_empty=True)
            bpy.ops.inr.import_field(filepath=str(field), resolution=32)
            timings.clear()
            started = time.perf_counter()
            bpy.ops.inr.extract_mesh(resolution=resolution)
            blender = time.perf_counter() - started
            triangles = len(bpy.context.active_object.data.polygons)
            started = time.perf_counter()
            out = Path(scratch) / f"{mesh.stem}.ply"
            command = [sys.executable, "-m", "inr_worker", "extract", str(field), "--resolution", str(resolution)]
            subprocess.run([*command, "--out", str(out)], env=worker, capture_output=True, check=True)
            cli = time.perf_counter() - started
            writing = sum(timings.values())
            print(
                f"| {mesh.name} | {triangles:,} | {blender:.1f} | {writing:.2f} ({writing / blender:.0%}) | "
                f"{cli:.1f} | {blender / cli:.2f} |",
                flush=True,
            )


def _child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False, timeout=3600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(lines[-1])


def _hausdorff_cells(a: Path, b: Path, cell: float) -> float:
    from scipy.spatial import cKDTree

    with np.load(a) as first, np.load(b) as second:
        x, y = first["vertices"].astype(np.float64), second["vertices"].astype(np.float64)
    return max(cKDTree(y).query(x)[0].max(), cKDTree(x).query(y)[0].max()) / cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("field", type=Path, nargs="?")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--dense", type=int, nargs="*", default=[256, 512])
    parser.add_argument("--one", nargs=3, metavar=("KIND", "RESOLUTION", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--write-back", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--blender-vs-cli", action="store_true", help="Blender's Re-extract against the CLI's")
    parser.add_argument("--meshes", nargs="+", default=None, help="shared meshes (default: all of them)")
    parser.add_argument("--resolution", type=int, default=512, help="for --blender-vs-cli (default 512)")
    parser.add_argument("--zip", type=Path, default=None, help="the extension zip (default: the newest in dist/)")
    args = parser.parse_args()
    if args.blender_vs_cli:
        folder = ROOT.parent / "shared" / "data" / "meshes"
        meshes = (
            [folder / name for name in args.meshes]
            if args.meshes
            else sorted(path for path in folder.iterdir() if path.suffix in (".obj", ".ply"))
        )
        blender_vs_cli(meshes, args.resolution, args.zip or max((ROOT / "dist").glob("inr_addon-*.zip")))
        return
    if args.field is None:
        parser.error("give a field file, or --blender-vs-cli")
    if args.one:
        run_one(args.field, args.one[0], int(args.one[1]), Path(args.one[2]))
        return
    if args.write_back:
        write_back(args.write_back)
        return
    with tempfile.TemporaryDirectory() as scratch:
        results = {}
        for kind, resolutions in (("dense", args.dense), ("sparse", args.resolutions)):
            for resolution in resolutions:
                out = Path(scratch) / f"{kind}_{resolution}.npz"
                results[kind, resolution] = {**_child(str(args.field), "--one", kind, str(resolution), str(out))}
                results[kind, resolution]["surface"] = out
                print(kind, resolution, results[kind, resolution], file=sys.stderr, flush=True)
        print(f"field: {args.field}\n")
        print(
            "| extractor | resolution | time s | peak RSS GB | vertices | triangles | boundary / non-manifold edges "
            "| Hausdorff to dense, cells |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for (kind, resolution), row in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
            if "error" in row:
                print(f"| {kind} | {resolution} | {row['error']} | | | | | |")
                continue
            dense = results.get(("dense", resolution), {})
            hausdorff = (
                f"{_hausdorff_cells(row['surface'], dense['surface'], row['cell']):.2f}"
                if kind == "sparse" and "seconds" in dense
                else ""
            )
            print(
                f"| {kind} | {resolution} | {row['seconds']:.1f} | {row['peak_rss_gb']:.2f} | {row['vertices']} | "
                f"{row['triangles']} | {row['boundary_edges']} / {row['nonmanifold_edges']} | {hausdorff} |"
            )
        written = [
            (row["triangles"], row["surface"])
            for row in results.values()
            if "triangles" in row and row["triangles"] <= 2_000_000
        ]
        if written:
            result = _child(str(args.field), "--write-back", str(max(written)[1]))
            if "error" in result:
                print(f"\nfill_mesh (bpy) not measured: {result['error']}")
            else:
                print(f"\nfill_mesh (bpy) writes {result['triangles']} triangles back in {result['seconds']:.2f} s")


if __name__ == "__main__":
    main()
