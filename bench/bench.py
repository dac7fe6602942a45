"""Benchmark: the add-on's presets, fitted and re-extracted through Blender's operators, beside Blender's
Voxel Remesh (the operator, with its defaults, and the Remesh modifier in Voxel mode), Geometry Nodes' Mesh
to SDF Grid -> Grid to Mesh, point-cloud-utils' make_mesh_watertight and the exact-SDF floor, at several
resolutions, scored with ../shared/tools/meshmetrics.py. ``cad_part.obj`` names a CAD-like part that the
benchmark makes itself (exact booleans, see baselines.cad_part).

    python bench/bench.py --zip dist/inr_addon-<version>.zip --out bench/results [--quick]
        [--meshes spot.obj ...] [--presets FAST ...] [--resolutions 128 256 ...]
    python bench/bench.py --worker-only --device CUDA --out bench/results-cuda   # no Blender

Each mesh runs in its own process. Writes results.json, results.md (tables with ratios against the
floor and the Voxel Remesh operator measured in the same run), voxel_remesh.md (every method at 256 beside
the operator: faces, quads, edges, vertices, time), plots and one contact sheet per mesh to --out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import igl
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MESHES = SHARED / "data" / "meshes"
sys.path[:0] = [str(SHARED / "tools"), str(ROOT / "scripts"), str(ROOT / "inr_addon"), str(ROOT / "bench")]

import baselines
import report

CLOSED = ["spot.obj", "bunny_closed_hr.obj", "armadillo_lowres.obj", "bunny_closed_lowres.obj"]
OPEN = ["camelhead.obj", "bunny_stanford.obj", "bunny_stanford_res2.ply", "teapot.obj", "truck.obj", "plane_holes.obj"]
PRESETS = ["FAST", "BALANCED", "QUALITY"]
RESOLUTIONS = [128, 256, 512, 1024]
FIT_RESOLUTION = 256
CAD_PART = "cad_part.obj"  # made by the benchmark (baselines.cad_part), kept under out/bench
GENERATED = ROOT / "out" / "bench"
OPERATOR, MODIFIER = "Voxel Remesh operator", "Voxel Remesh modifier"
QUICK = {
    "meshes": ["spot.obj", "bunny_closed_lowres.obj", "teapot.obj"],
    "presets": ["FAST", "BALANCED"],
    "resolutions": [256, 512],
}


def mesh_path(name: str) -> Path:
    return GENERATED / name if name == CAD_PART else MESHES / name


def read_mesh(name: str) -> tuple[np.ndarray, np.ndarray]:
    vertices, triangles = igl.read_triangle_mesh(str(mesh_path(name)))[:2]
    return np.asarray(vertices, np.float64), np.asarray(triangles, np.int64)


def timed(rows: list, row: dict, run, *args, **kwargs) -> object:
    """Call ``run(*args, **kwargs)`` under a memory probe, add its time and memory to ``row`` and
    ``row`` to ``rows``; returns what ``run`` returned."""
    with baselines.PeakMemory() as probe:
        result = run(*args, **kwargs)
    row.update(wall_s=probe.seconds, own_MB=probe.own_MB, worker_MB=probe.children_MB)
    rows.append(row)
    return result


def floor_rows(args: argparse.Namespace, name: str, reference: tuple) -> list[dict]:
    """The exact-SDF floor at each resolution up to --floor-max; taken from --floor-cache where it holds
    the same mesh and resolution (the floor is deterministic), and added to it otherwise."""
    cache = json.loads(args.floor_cache.read_text()) if args.floor_cache and args.floor_cache.is_file() else {}
    rows = []
    for resolution in (r for r in args.resolutions if r <= args.floor_max):
        key = f"{name}@{resolution}"
        if key in cache:
            rows.append(cache[key])
            continue
        row = {"mesh": name, "method": "exact-SDF floor", "resolution": resolution}
        metrics, _ = timed(rows, row, baselines.exact_floor, str(mesh_path(name)), *reference, resolution)
        row.update(metrics)
        print(row, flush=True)
        if args.floor_cache:
            cache = json.loads(args.floor_cache.read_text()) if args.floor_cache.is_file() else {}
            args.floor_cache.write_text(json.dumps(cache | {key: row}, indent=1))
    return rows


def bench_blender(args: argparse.Namespace, name: str) -> list[dict]:
    """One mesh through every method, inside Blender (the child process of the benchmark)."""
    from headless import mesh_arrays, select_only, start_blender

    from inr_worker.protocol import read_safetensors

    bpy = start_blender(args.zip.resolve())
    bpy.ops.wm.read_homefile(use_empty=True)
    if name == CAD_PART:
        GENERATED.mkdir(parents=True, exist_ok=True)
        igl.write_triangle_mesh(str(mesh_path(name)), *baselines.cad_part(bpy))
    reference = read_mesh(name)
    mesh = bpy.data.meshes.new(Path(name).stem)
    mesh.from_pydata(reference[0].tolist(), [], reference[1].tolist())
    source = bpy.data.objects.new(Path(name).stem, mesh)
    bpy.context.scene.collection.objects.link(source)
    rows = floor_rows(args, name, reference)
    sheet = {"source": source}
    for resolution in args.resolutions:
        for method, make in (
            (OPERATOR, baselines.voxel_remesh_operator),
            (MODIFIER, baselines.voxel_remesh),
            ("SDF grid nodes", baselines.sdf_grid_nodes),
        ):
            row = {"mesh": name, "method": method, "resolution": resolution}
            result = timed(rows, row, make, bpy, source, resolution)
            row.update(baselines.scores(reference, mesh_arrays(result)), **baselines.face_stats(result))
            print(row, flush=True)
            if resolution == FIT_RESOLUTION and method != MODIFIER:
                sheet[method] = result
            else:
                bpy.data.objects.remove(result)
        if resolution <= args.watertight_max:
            row = {"mesh": name, "method": "pcu watertight", "resolution": resolution}
            result = timed(rows, row, baselines.watertight, *reference, resolution)
            row.update(baselines.scores(reference, result))
            print(row, flush=True)
    for preset, surface in ((preset, surface) for preset in args.presets for surface in args.surfaces):
        method = f"field {preset}" + (" quads" if surface == "QUADS" else "")
        select_only(bpy, source)
        row = {"mesh": name, "method": method, "resolution": FIT_RESOLUTION, "step": "fit"}
        timed(rows, row, bpy.ops.inr.fit_mesh, resolution=FIT_RESOLUTION, preset=preset, surface=surface)
        result = bpy.context.active_object
        field = result["_inr_field"]
        info = read_safetensors(field)[1]
        fitted = {
            "field_bytes": len(field),
            "sampling_s": float(info["sampling_s"]),
            "training_s": float(info["training_s"]),
        }
        row.update(fitted, **baselines.scores(reference, mesh_arrays(result)), **baselines.face_stats(result))
        print(row, flush=True)
        for resolution in (r for r in args.resolutions if r != FIT_RESOLUTION):
            again = {"mesh": name, "method": method, "resolution": resolution, "step": "re-extract"}
            timed(rows, again, bpy.ops.inr.extract_mesh, resolution=resolution, surface=surface)
            again.update(field_bytes=len(field), **baselines.scores(reference, mesh_arrays(result)))
            print(again, flush=True)
        # the same resolution again from the field alone: its vertices go onto the field's zero level
        alone = {"mesh": name, "method": method, "resolution": FIT_RESOLUTION, "step": "re-extract"}
        timed(rows, alone, bpy.ops.inr.extract_mesh, resolution=FIT_RESOLUTION, surface=surface)
        alone.update(field_bytes=len(field), **baselines.scores(reference, mesh_arrays(result)))
        alone.update(baselines.face_stats(result))
        print(alone, flush=True)
        if preset == "BALANCED":
            sheet["neural field" + (" quads" if surface == "QUADS" else "")] = result
        else:
            bpy.data.objects.remove(result)
    if "neural field quads" in sheet and OPERATOR in sheet:  # triangles, quads and Voxel Remesh side by side
        shown = [key for key in ("neural field", "neural field quads", OPERATOR) if key in sheet]
        report.contact_sheet(
            bpy,
            [sheet.pop(key) if key != OPERATOR else sheet[key] for key in shown],
            [{"neural field": "ours, triangles", "neural field quads": "ours, quads"}.get(key, key) for key in shown],
            args.out / f"quads_{Path(name).stem}.png",
        )
    if len(sheet) == 4:
        report.contact_sheet(
            bpy,
            [sheet[key] for key in ("source", OPERATOR, "SDF grid nodes", "neural field")],
            ["source", OPERATOR, "SDF grid nodes", "neural field BALANCED"],
            args.out / f"sheet_{Path(name).stem}.png",
        )
    return rows


def bench_worker(args: argparse.Namespace, name: str) -> list[dict]:
    """One mesh through the presets with the worker as a library on ``--device`` (no Blender)."""
    import torch

    from inr_worker.fields.field_file import save_field
    from inr_worker.jobs import extract, fit

    reference = read_mesh(name)
    rows = floor_rows(args, name, reference)
    cuda = args.device == "CUDA"
    for preset in args.presets:
        started = time.monotonic()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        row = {
            "mesh": name,
            "method": f"field {preset}",
            "resolution": FIT_RESOLUTION,
            "step": "fit",
            "device": args.device,
        }
        field = timed(rows, row, fit, *reference, preset=preset, device=args.device)
        surface = extract(field, FIT_RESOLUTION, args.device)
        row["wall_s"] = time.monotonic() - started
        path = args.out / f"field_{Path(name).stem}_{preset}.safetensors"
        save_field(path, field)
        row.update(
            field_bytes=path.stat().st_size,
            sampling_s=float(field.info["sampling_s"]),
            training_s=float(field.info["training_s"]),
            **baselines.scores(reference, surface),
        )
        path.unlink()
        print(row, flush=True)
        for resolution in (r for r in args.resolutions if r != FIT_RESOLUTION):
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            again = {
                "mesh": name,
                "method": f"field {preset}",
                "resolution": resolution,
                "step": "re-extract",
                "device": args.device,
            }
            surface = timed(rows, again, extract, field, resolution, args.device)
            if cuda:
                again["gpu_MB"] = torch.cuda.max_memory_allocated() / 1e6
            again.update(baselines.scores(reference, surface))
            print(again, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, help="the built extension (Blender mode)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--quick", action="store_true", help=f"a subset: {QUICK}")
    parser.add_argument("--meshes", nargs="+")
    parser.add_argument("--presets", nargs="+", choices=PRESETS)
    parser.add_argument("--resolutions", nargs="+", type=int)
    parser.add_argument(
        "--surfaces",
        nargs="+",
        choices=["TRIANGLES", "QUADS"],
        default=["TRIANGLES"],
        help="Blender mode: our surfaces",
    )
    parser.add_argument("--floor-max", type=int, default=512, help="largest resolution with an exact-SDF floor row")
    parser.add_argument("--floor-cache", type=Path, help="JSON of floor rows to reuse and extend")
    parser.add_argument("--watertight-max", type=int, default=512, help="largest resolution for make_mesh_watertight")
    parser.add_argument("--worker-only", action="store_true", help="the worker as a library, no Blender")
    parser.add_argument("--device", default="CPU", choices=["CPU", "CUDA", "MPS", "AUTO"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    preset_choice = QUICK if args.quick else {}
    args.meshes = args.meshes or preset_choice.get("meshes", CLOSED + OPEN)
    args.presets = args.presets or preset_choice.get("presets", PRESETS)
    args.resolutions = sorted(set(args.resolutions or preset_choice.get("resolutions", RESOLUTIONS)) | {FIT_RESOLUTION})
    args.out.mkdir(parents=True, exist_ok=True)
    if args.child:
        rows = bench_worker(args, args.child) if args.worker_only else bench_blender(args, args.child)
        (args.out / f"rows_{Path(args.child).stem}.json").write_text(json.dumps(rows, indent=1))
        return
    if not args.worker_only and args.zip is None:
        parser.error("--zip is needed unless --worker-only")
    rows = []
    for name in args.meshes:
        command = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--out",
            str(args.out),
            "--device",
            args.device,
            "--presets",
            *args.presets,
            "--resolutions",
            *map(str, args.resolutions),
            "--surfaces",
            *args.surfaces,
            "--floor-max",
            str(args.floor_max),
            "--watertight-max",
            str(args.watertight_max),
            *(["--floor-cache", str(args.floor_cache.resolve())] if args.floor_cache else []),
        ]
        command += ["--worker-only"] if args.worker_only else ["--zip", str(args.zip)]
        started = time.monotonic()
        done = subprocess.run(command, check=False)
        print(f"{name}: {time.monotonic() - started:.0f} s, exit {done.returncode}", flush=True)
        part = args.out / f"rows_{Path(name).stem}.json"
        if part.is_file():
            rows += json.loads(part.read_text())
            part.unlink()
        (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    report.write(rows, args.out, closed=CLOSED)
    (args.out / "voxel_remesh.md").write_text(operator_table(rows))
    print((args.out / "results.md").read_text())
    print((args.out / "voxel_remesh.md").read_text())


def operator_table(rows: list[dict]) -> str:
    """Every method at FIT_RESOLUTION beside the Voxel Remesh operator of the same run."""
    at = [row for row in rows if row["resolution"] == FIT_RESOLUTION]
    operators = {row["mesh"]: row for row in at if row["method"] == OPERATOR}
    floors = {row["mesh"]: row for row in at if row["method"] == "exact-SDF floor"}
    lines = [
        (
            f"At {FIT_RESOLUTION} cells along the longest side; Voxel Remesh operator = `object.voxel_remesh` with its "
            "defaults (Preserve Volume on), modifier = the Remesh modifier in Voxel mode; ratios to the operator "
            "measured in the same run.\n"
        ),
        (
            "| mesh | method | step | faces | quads | Chamfer-L1 | × floor | × operator | IoU | normal cons. "
            "| boundary / non-manifold edges | non-manifold vertices | wall s | × operator time |"
        ),
        "|" + "---|" * 14,
    ]
    for row in at:
        if row["method"] == "exact-SDF floor":
            continue
        operator, floor = operators.get(row["mesh"]), floors.get(row["mesh"])
        cells = [
            row["mesh"],
            row["method"],
            row.get("step", ""),
            str(row.get("faces", row.get("triangles", ""))),
            f"{row['quad_share']:.0%}" if "quad_share" in row else "",
            f"{row['chamfer_l1']:.2e}",
            f"{row['chamfer_l1'] / floor['chamfer_l1']:.2f}" if floor else "",
            f"{row['chamfer_l1'] / operator['chamfer_l1']:.2f}" if operator else "",
            f"{row['iou']:.4f}",
            f"{row['normal_consistency']:.4f}",
            f"{row['boundary_edges']} / {row['nonmanifold_edges']}",
            str(row.get("nonmanifold_vertices", "")),
            f"{row['wall_s']:.2f}",
            f"{row['wall_s'] / operator['wall_s']:.1f}" if operator else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
