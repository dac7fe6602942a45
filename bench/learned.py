"""The learned residual against the stored band, on the shared meshes, each against the exact-SDF floor.

    python bench/learned.py [--quick] [--preset BALANCED] [--resolutions 256 512 1024] [--out DIR]

For each mesh both fields are fitted at the preset (``jobs.fit`` with ``learned`` off and on, in this
process), saved, loaded back and extracted through the same path (``jobs.extract`` on the field alone, as
a re-extraction does) at each resolution: both read their values as stored. Each surface is scored against the source mesh (meshmetrics.compare_arrays,
100k samples) and divided by the **exact-SDF floor at that resolution**: the mesh's exact signed
distance (libigl distance, winding-number sign) meshed by the same sparse extractor at the same
resolution. Writes ``results.json``, ``results.md`` and ``pareto.png`` (bytes and fit time against the
Chamfer ratio) under ``--out``. Times are wall seconds on this machine, beside each other's ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path[:0] = [str(ROOT / "inr_addon"), str(SHARED / "tools")]

from meshmetrics import compare_arrays, load

from inr_worker import jobs
from inr_worker.fields.band_field import TRUNCATION
from inr_worker.fields.field_file import load_field, save_field
from inr_worker.sources.sampling import MeshDistance, UnitFrame
from inr_worker.surface.extract import extract_surface

MESHES = SHARED / "data" / "meshes"
QUICK = ("spot.obj", "armadillo_lowres.obj", "teapot.obj")
SAMPLES = 100_000


class ExactDistance:
    """The mesh's exact signed distance, clamped like a field's: what the floor extracts."""

    def __init__(self, distance: MeshDistance) -> None:
        self.distance = distance

    def to(self, device: torch.device) -> ExactDistance:
        return self

    def evaluate(self, points: torch.Tensor) -> torch.Tensor:
        signed = self.distance.signed(points.double().cpu().numpy())
        return torch.from_numpy(np.clip(signed, -TRUNCATION, TRUNCATION).astype(np.float32))


def score(vertices: np.ndarray, triangles: np.ndarray, surface: tuple[np.ndarray, np.ndarray]) -> dict:
    metrics = compare_arrays(vertices, triangles, surface[0], surface[1].astype(np.int64), samples=SAMPLES)
    return {key: metrics[key] for key in ("chamfer_l1", "normal_consistency", "iou", "boundary_edges")}


def floor_rows(name: str, vertices: np.ndarray, triangles: np.ndarray, resolutions: list[int]) -> dict[int, dict]:
    frame = UnitFrame.of(vertices)
    unit = frame.to_unit(vertices)
    exact = ExactDistance(MeshDistance(unit, triangles))
    rows = {}
    for resolution in resolutions:
        started = time.monotonic()
        surface = extract_surface(exact, unit.min(0), unit.max(0), resolution, torch.device("cpu"))
        rows[resolution] = score(vertices, triangles, (frame.from_unit(surface[0]), surface[1]))
        print(f"  floor {name} {resolution}: {time.monotonic() - started:.1f} s", flush=True)
    return rows


def field_rows(
    name: str, vertices: np.ndarray, triangles: np.ndarray, preset: str, learned: bool, resolutions: list[int]
) -> list[dict]:
    started = time.monotonic()
    field = jobs.fit(vertices, triangles, preset, "CPU", learned=learned)
    fit_s = time.monotonic() - started
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "field.safetensors"
        save_field(path, field)
        field_bytes = path.stat().st_size
        field = load_field(path)  # what Re-extract and a reopened file read: the band's values as stored (int8)
    rows = []
    for resolution in resolutions:
        started = time.monotonic()
        surface = jobs.extract(field, resolution, "CPU")
        extract_s = time.monotonic() - started
        row = {
            "mesh": name,
            "field": "learned" if learned else "band",
            "preset": preset,
            "resolution": resolution,
            "field_bytes": field_bytes,
            "fit_s": round(fit_s, 2),
            "extract_s": round(extract_s, 2),
            **score(vertices, triangles, surface),
        }
        rows.append(row)
        print(f"  {row['field']} {name} {resolution}: fit {fit_s:.1f} s, extract {extract_s:.1f} s", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        (
            "| mesh | R | band × floor | learned × floor | learned / band | NC band | NC learned | IoU band "
            "| IoU learned | bytes band | bytes learned | fit s band | fit s learned | extract s band "
            "| extract s learned |"
        ),
        "|---" * 15 + "|",
    ]
    pairs: dict[tuple[str, int], dict[str, dict]] = {}
    for row in rows:
        pairs.setdefault((row["mesh"], row["resolution"]), {})[row["field"]] = row
    for (mesh, resolution), pair in pairs.items():
        band, learned, floor = pair["band"], pair["learned"], pair["floor"]
        lines.append(
            f"| {mesh} | {resolution} | {band['chamfer_l1'] / floor['chamfer_l1']:.3f} | "
            f"{learned['chamfer_l1'] / floor['chamfer_l1']:.3f} | {learned['chamfer_l1'] / band['chamfer_l1']:.3f} | "
            f"{band['normal_consistency']:.4f} | {learned['normal_consistency']:.4f} | {band['iou']:.4f} | "
            f"{learned['iou']:.4f} | {band['field_bytes'] / 1e6:.2f} MB | {learned['field_bytes'] / 1e6:.2f} MB | "
            f"{band['fit_s']:.1f} | {learned['fit_s']:.1f} | {band['extract_s']:.1f} | {learned['extract_s']:.1f} |"
        )
    return "\n".join(lines)


def pareto(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floors = {(row["mesh"], row["resolution"]): row["chamfer_l1"] for row in rows if row["field"] == "floor"}
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    resolutions = sorted({row["resolution"] for row in rows})
    for field, marker in (("band", "o"), ("learned", "^")):
        for resolution, colour in zip(resolutions, ("tab:blue", "tab:orange", "tab:green"), strict=False):
            chosen = [row for row in rows if row["field"] == field and row["resolution"] == resolution]
            ratio = [row["chamfer_l1"] / floors[(row["mesh"], resolution)] for row in chosen]
            label = f"{field}, extracted at {resolution}"
            axes[0].scatter([row["field_bytes"] / 1e6 for row in chosen], ratio, marker=marker, c=colour, label=label)
            axes[1].scatter([row["fit_s"] for row in chosen], ratio, marker=marker, c=colour, label=label)
    for axis, label in zip(axes, ("field MB", "fit s (2-core CPU)"), strict=True):
        axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.set_ylabel("Chamfer-L1 / exact-SDF floor at that resolution")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle("learned residual (▲) against the stored band (●), each mesh, fitted at the preset")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--meshes", nargs="*", help="mesh file names in the shared meshes folder")
    parser.add_argument("--preset", default="BALANCED")
    parser.add_argument("--resolutions", nargs="+", type=int, default=[256, 512, 1024])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "learned")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the table and plot from results.json")
    args = parser.parse_args()
    torch.set_num_threads(1)  # other work shares the 2 cores: one thread avoids oversubscription stalls
    names = args.meshes or (
        list(QUICK) if args.quick else sorted(p.name for p in MESHES.iterdir() if p.suffix in (".obj", ".ply"))
    )
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    rows = json.loads(results_path.read_text()) if results_path.is_file() else []
    command = "python bench/learned.py " + " ".join(sys.argv[1:])
    for name in [] if args.table_only else names:
        print(name, flush=True)
        vertices, triangles = load(str(MESHES / name))
        floors = {row["resolution"]: row for row in rows if row["mesh"] == name and row["field"] == "floor"}
        rows = [row for row in rows if not (row["mesh"] == name and row["field"] == "floor")]
        missing = [resolution for resolution in args.resolutions if resolution not in floors]
        floors |= floor_rows(name, vertices, triangles, missing) if missing else {}
        for resolution in args.resolutions:  # the floor depends on the mesh alone: kept from earlier runs
            row = {key: value for key, value in floors[resolution].items() if key not in ("mesh", "field", "preset")}
            rows.append({"mesh": name, "field": "floor", "preset": args.preset, "resolution": resolution, **row})
        rows = [
            row
            for row in rows
            if not (row["mesh"] == name and row["field"] != "floor" and row["preset"] == args.preset)
        ]
        for learned in (False, True):
            rows += field_rows(name, vertices, triangles, args.preset, learned, args.resolutions)
        for row in rows[-3 * len(args.resolutions) :]:
            row["command"] = command
        results_path.write_text(json.dumps(rows, indent=1))
    chosen = [row for row in rows if row["preset"] == args.preset]
    commands = "\n".join(f"    {line}" for line in dict.fromkeys(row.get("command", command) for row in chosen))
    (args.out / "results.md").write_text(
        f"# Learned residual against the stored band ({args.preset})\n\nMade by\n\n{commands}\n\non a 2-core CPU "
        "shared with other work, torch on one thread (times are noisy; compare the two fields' times within a "
        "row). Both fields are saved and loaded back before extraction (as Re-extract reads them). Each Chamfer-L1 is "
        "divided by the exact-SDF floor at the same resolution.\n\n" + table(chosen) + "\n"
    )
    pareto(chosen, args.out / "pareto.png")


if __name__ == "__main__":
    main()
