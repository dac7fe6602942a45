"""Adaptivity beside Voxel Remesh's, in one Blender: for each closed mesh, Blender's Voxel Remesh operator
(voxel size = longest side / 256, Preserve Volume on) at Adaptivity 0 and 0.5, and ours (BALANCED, 256) at
Adaptivity 0 and 0.5, at Fit (vertices onto the source) and re-extracted from the field alone. Faces,
Chamfer-L1 and normal consistency against the source, IoU, boundary and non-manifold edges and vertices,
and time as a ratio to the operator at Adaptivity 0 in the same run (one timed run each, after an untimed
run of the operator).

    python bench/adaptivity.py --zip dist/inr_addon-0.1.0.zip --out bench/results/adaptivity
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(ROOT.parent / "shared" / "tools"),
    str(ROOT / "scripts"),
    str(ROOT / "inr_addon"),
    str(ROOT / "bench"),
]

import baselines
from fit_time import CLOSED, source_object

RESOLUTION = 256
ADAPTIVITY = 0.5
COMMAND = "python bench/adaptivity.py --zip dist/inr_addon-0.1.0.zip --out bench/results/adaptivity"


def measured(row: dict, reference: tuple, result, seconds: float) -> dict:
    """``row`` with ``result``'s scores and face count, and ``seconds``."""
    from headless import mesh_arrays

    row |= baselines.scores(reference, mesh_arrays(result)) | baselines.face_stats(result) | {"seconds": seconds}
    print(row, flush=True)
    return row


def bench(args: argparse.Namespace) -> list[dict]:
    from headless import mesh_arrays, select_only, start_blender

    bpy = start_blender(args.zip.resolve())
    rows = []
    for name in args.meshes:
        bpy.ops.wm.read_homefile(use_empty=True)
        source = source_object(bpy, name)
        reference = mesh_arrays(source)
        bpy.data.objects.remove(baselines.voxel_remesh_operator(bpy, source, RESOLUTION))  # untimed: warms it up
        for adaptivity in (0.0, ADAPTIVITY):
            started = time.perf_counter()
            remeshed = baselines.voxel_remesh_operator(bpy, source, RESOLUTION, adaptivity)
            seconds = time.perf_counter() - started
            row = {"mesh": name, "method": "Voxel Remesh operator", "step": "", "adaptivity": adaptivity}
            rows.append(measured(row, reference, remeshed, seconds))
            bpy.data.objects.remove(remeshed)
        for adaptivity in (0.0, ADAPTIVITY):
            select_only(bpy, source)
            started = time.perf_counter()
            if bpy.ops.inr.fit_mesh(resolution=RESOLUTION, preset="BALANCED", adaptivity=adaptivity) != {"FINISHED"}:
                raise RuntimeError(f"Fit failed on {name}")
            seconds = time.perf_counter() - started
            result = bpy.context.active_object
            row = {"mesh": name, "method": "ours", "step": "fit", "adaptivity": adaptivity}
            rows.append(measured(row, reference, result, seconds))
            started = time.perf_counter()
            if bpy.ops.inr.extract_mesh(resolution=RESOLUTION, adaptivity=adaptivity) != {"FINISHED"}:
                raise RuntimeError(f"Re-extract failed on {name}")
            seconds = time.perf_counter() - started
            row = {"mesh": name, "method": "ours", "step": "re-extract", "adaptivity": adaptivity}
            rows.append(measured(row, reference, result, seconds))
            bpy.data.objects.remove(result)
    for row in rows:  # ratios to the same method and step without adaptivity, and to the operator's time
        same = [
            other
            for other in rows
            if (other["mesh"], other["method"], other["step"]) == (row["mesh"], row["method"], row["step"])
        ]
        plain = next(other for other in same if other["adaptivity"] == 0.0)
        operator = next(
            other
            for other in rows
            if other["mesh"] == row["mesh"] and other["method"] == "Voxel Remesh operator" and not other["adaptivity"]
        )
        row["faces_x_plain"] = row["faces"] / plain["faces"]
        row["chamfer_x_plain"] = row["chamfer_l1"] / plain["chamfer_l1"]
        row["time_x_operator"] = row["seconds"] / operator["seconds"]
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        f"# Adaptivity {ADAPTIVITY} beside Voxel Remesh's ({RESOLUTION} cells, BALANCED)",
        "",
        f'Made by `{COMMAND}`, in one Blender. "× plain": the same method and step at Adaptivity 0.',
        "",
        "| mesh | method | step | adaptivity | faces | × plain | Chamfer-L1 | × plain | normal cons. | IoU "
        + "| boundary / non-manifold edges | non-manifold vertices | × operator time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['mesh']} | {row['method']} | {row['step']} | {row['adaptivity']:g} | {row['faces']} "
            f"| {row['faces_x_plain']:.2f} | {row['chamfer_l1']:.2e} | {row['chamfer_x_plain']:.2f} "
            f"| {row['normal_consistency']:.4f} | {row['iou']:.4f} | {row['boundary_edges']} / {row['nonmanifold_edges']} "
            f"| {row['nonmanifold_vertices']} | {row['time_x_operator']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "adaptivity")
    parser.add_argument("--meshes", nargs="+", default=CLOSED)
    args = parser.parse_args()
    rows = bench(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    (args.out / "table.md").write_text(table(rows))
    print(table(rows))


if __name__ == "__main__":
    main()
