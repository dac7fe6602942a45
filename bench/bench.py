"""Benchmark: the add-on's Fit and Re-extract, run through Blender's operators, beside Blender's own
Voxel Remesh at the same resolution, scored with ../shared/tools/meshmetrics.py.

    python bench/bench.py --zip dist/inr_addon-<version>.zip --out out/bench [--presets FAST ...]
        [--meshes spot.obj ...] [--resolution 256] [--reextract 512]

Writes results.json and results.md (a Markdown table) to --out. Fit time is the worker's own
sampling + training time; the wall columns include starting the worker process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import igl
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path[:0] = [str(SHARED / "tools"), str(ROOT / "scripts"), str(ROOT / "inr_addon")]

from headless import mesh_arrays, start_blender
from meshmetrics import compare_arrays

from inr_worker.protocol import read_safetensors

CLOSED = ["spot.obj", "bunny_closed_hr.obj", "armadillo_lowres.obj"]
OPEN = ["camelhead.obj", "bunny_stanford.obj", "bunny_stanford_res2.ply", "teapot.obj", "truck.obj", "plane_holes.obj"]
METRICS = ("chamfer_l1", "f_score", "normal_consistency", "iou", "boundary_edges", "nonmanifold_edges")


def new_object(bpy, name: str, vertices: np.ndarray, triangles: np.ndarray):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(vertices.tolist(), [], triangles.tolist())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def scores(reference: tuple, candidate: tuple) -> dict:
    metrics = compare_arrays(*reference, *candidate)
    return {key: metrics[key] for key in METRICS}


def run_voxel_remesh(bpy, source, resolution: int) -> tuple[dict, tuple]:
    size = max(source.dimensions)
    remeshed = source.copy()
    remeshed.data = source.data.copy()
    bpy.context.scene.collection.objects.link(remeshed)
    modifier = remeshed.modifiers.new("remesh", "REMESH")
    modifier.mode = "VOXEL"
    modifier.voxel_size = size / resolution
    started = time.monotonic()
    bpy.context.view_layer.objects.active = remeshed
    bpy.ops.object.modifier_apply(modifier="remesh")
    elapsed = time.monotonic() - started
    arrays = mesh_arrays(remeshed)
    bpy.data.objects.remove(remeshed)
    return {"wall_s": elapsed}, arrays


def bench_mesh(bpy, path: Path, presets: list[str], resolution: int, reextract: int) -> list[dict]:
    bpy.ops.wm.read_homefile(use_empty=True)
    vertices, triangles = igl.read_triangle_mesh(str(path))[:2]
    reference = (vertices, triangles)
    source = new_object(bpy, path.stem, vertices, triangles)
    rows = []
    timing, remeshed = run_voxel_remesh(bpy, source, resolution)
    rows.append(
        {"mesh": path.name, "method": "Voxel Remesh", "resolution": resolution, **timing, **scores(reference, remeshed)}
    )
    print(rows[-1], flush=True)
    for preset in presets:
        for obj in list(bpy.context.selected_objects):
            obj.select_set(False)
        source.select_set(True)
        bpy.context.view_layer.objects.active = source
        started = time.monotonic()
        bpy.ops.inr.fit_mesh(resolution=resolution, preset=preset)
        fit_wall = time.monotonic() - started
        result = bpy.context.active_object
        field = result["_inr_field"]
        _, info = read_safetensors(field)
        row = {
            "mesh": path.name,
            "method": f"inr {preset}",
            "resolution": resolution,
            "fit_s": float(info["sampling_s"]) + float(info["training_s"]),
            "sampling_s": float(info["sampling_s"]),
            "training_s": float(info["training_s"]),
            "wall_s": fit_wall,
            "field_MB": len(field) / 1e6,
            **scores(reference, mesh_arrays(result)),
        }
        started = time.monotonic()
        bpy.ops.inr.extract_mesh(resolution=reextract)
        row[f"reextract_{reextract}_s"] = time.monotonic() - started
        row[f"faces_{reextract}"] = len(result.data.polygons)
        rows.append(row)
        print(row, flush=True)
        bpy.data.objects.remove(result)
    return rows


def markdown(rows: list[dict], reextract: int) -> str:
    lines = [
        f"| mesh | method | fit s | wall s | re-extract {reextract} s | Chamfer-L1 | F-score | normal cons. | IoU | "
        + "boundary / non-manifold edges |",
        "|" + "---|" * 10,
    ]
    for row in rows:
        fit = f"{row['fit_s']:.1f}" if "fit_s" in row else ""
        again = f"{row[f'reextract_{reextract}_s']:.1f}" if f"reextract_{reextract}_s" in row else ""
        lines.append(
            f"| {row['mesh']} | {row['method']} | {fit} | {row['wall_s']:.1f} | {again} | "
            f"{row['chamfer_l1']:.2e} | {row['f_score']:.4f} | {row['normal_consistency']:.4f} | "
            f"{row['iou']:.4f} | {row['boundary_edges']} / {row['nonmanifold_edges']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument(
        "--presets",
        nargs="+",
        help="presets to run on every mesh (default: all three on the closed meshes, BALANCED on the open ones)",
    )
    parser.add_argument("--meshes", nargs="+", default=CLOSED + OPEN)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--reextract", type=int, default=512)
    args = parser.parse_args()
    bpy = start_blender(args.zip.resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.meshes:
        presets = args.presets or (["FAST", "BALANCED", "QUALITY"] if name in CLOSED else ["BALANCED"])
        rows += bench_mesh(bpy, SHARED / "data" / "meshes" / name, presets, args.resolution, args.reextract)
        (args.out / "results.json").write_text(json.dumps(rows, indent=1))
        (args.out / "results.md").write_text(markdown(rows, args.reextract))
    print(markdown(rows, args.reextract))


if __name__ == "__main__":
    main()
