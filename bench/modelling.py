"""Benchmark: modelling with fitted fields (combine, blend, offset, shell, morph) against exact references,
and Blender's Boolean modifier (Exact) on the same inputs, closed and open.

    python bench/modelling.py [--out out/bench-modelling] [--results bench/results/modelling] [--preset BALANCED]
                              [--resolution 256]

Fits run in-process through the worker library (``inr_worker.jobs.fit``); operations through
``inr_worker.fields.operations`` (no worker start-up in the times). References are the exact booleans of the
sources' winding-number solids, sampled at random points. Writes the fields and surfaces (for
bench/modelling_pictures.py) to --out, and results-<cases>-<resolution>.json and .md to --results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import igl
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path[:0] = [str(SHARED / "tools"), str(ROOT / "inr_addon")]

from meshmetrics import edge_counts

from inr_worker.fields import operations
from inr_worker.fields.field_file import load_field, save_field
from inr_worker.jobs import extract, fit

SAMPLES = 200_000
BOOLEANS = {"UNION": np.logical_or, "DIFFERENCE": lambda a, b: a & ~b, "INTERSECT": np.logical_and}


def read(name: str) -> tuple[np.ndarray, np.ndarray]:
    vertices, triangles = igl.read_triangle_mesh(str(SHARED / "data" / "meshes" / name))[:2]
    return vertices.astype(np.float64), triangles.astype(np.int64)


def placement(rotation_deg: tuple[float, float, float], shift: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """4x4: rotate about x, y, z (degrees), scale, then shift."""
    matrix = np.eye(3)
    for axis, angle in enumerate(np.radians(rotation_deg)):
        c, s = np.cos(angle), np.sin(angle)
        turn = np.eye(3)
        i, j = [k for k in range(3) if k != axis]
        turn[i, i], turn[i, j], turn[j, i], turn[j, j] = c, -s, s, c
        matrix = turn @ matrix
    result = np.eye(4)
    result[:3, :3], result[:3, 3] = matrix * scale, shift
    return result


def place_beside(
    first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray], rotation_deg, offset: np.ndarray
) -> np.ndarray:
    """Placement of ``second``: scaled to the size of ``first``, turned, its centre at first's centre + offset x size."""
    low_a, high_a = first[0].min(0), first[0].max(0)
    low_b, high_b = second[0].min(0), second[0].max(0)
    size = (high_a - low_a).max()
    where = placement(rotation_deg, np.zeros(3), size / (high_b - low_b).max())
    where[:3, 3] = (low_a + high_a) / 2 + offset * size - where[:3, :3] @ ((low_b + high_b) / 2)
    return where


def moved(mesh: tuple[np.ndarray, np.ndarray], matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return mesh[0] @ matrix[:3, :3].T + matrix[:3, 3], mesh[1]


def inside(mesh: tuple[np.ndarray, np.ndarray], points: np.ndarray) -> np.ndarray:
    return np.abs(igl.fast_winding_number(mesh[0], mesh[1], points)) > 0.5


def box_points(*meshes, rng: np.random.Generator) -> np.ndarray:
    low = np.min([m[0].min(0) for m in meshes], 0)
    high = np.max([m[0].max(0) for m in meshes], 0)
    pad = (high - low) * 0.05
    return rng.uniform(low - pad, high + pad, (SAMPLES, 3))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def components(vertices: np.ndarray, triangles: np.ndarray) -> tuple[int, int]:
    """Connected surfaces, and how many of them wind inwards (cavities)."""
    if len(triangles) == 0:
        return 0, 0
    volumes = operations.surface_pieces(vertices, triangles)[1]
    used = volumes != 0
    return int(used.sum()), int((volumes[used] < 0).sum())


def edge_angles(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Midpoints of the interior edges of a closed mesh and the angle (degrees) between their faces' normals."""
    corners = vertices[triangles]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-30)
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    faces = np.tile(np.arange(len(triangles)), 3)
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    edges, faces = edges[order], faces[order]
    pair = (edges[:-1] == edges[1:]).all(1)
    first, second = faces[:-1][pair], faces[1:][pair]
    cosine = np.clip(np.einsum("ij,ij->i", normals[first], normals[second]), -1, 1)
    return vertices[edges[:-1][pair]].mean(1), np.degrees(np.arccos(cosine))


def signed_distance(points: np.ndarray, mesh: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    squared = igl.point_mesh_squared_distance(points, mesh[0], mesh[1])[0]
    return np.where(inside(mesh, points), -1.0, 1.0) * np.sqrt(squared)


@dataclasses.dataclass(frozen=True)
class Cost:
    """What re-extracting inputs took: wall seconds and the triangles made."""

    seconds: float
    triangles: int

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.seconds + other.seconds, self.triangles + other.triangles)


class Bench:
    def __init__(self, preset: str, resolution: int, folder: Path, reuse: bool) -> None:
        self.preset, self.resolution, self.folder, self.reuse = preset, resolution, folder, reuse
        self.rng = np.random.default_rng(0)
        self.rows: list[dict] = []

    def fitted(self, name: str) -> tuple[operations.PlacedInput, tuple[np.ndarray, np.ndarray], Cost]:
        """The fitted input (identity placement), its source mesh and its re-extraction's cost."""
        source = read(name)
        path = self.folder / f"{Path(name).stem}.safetensors"
        if self.reuse and path.is_file():
            field = load_field(path)
        else:
            started = time.monotonic()
            field = fit(*source, preset=self.preset)
            print(f"fit {name}: {time.monotonic() - started:.1f} s", flush=True)
            save_field(path, field)
        data = path.read_bytes()
        started = time.monotonic()
        triangles = extract(field, self.resolution, "CPU")[1]
        cost = Cost(time.monotonic() - started, len(triangles))
        return operations.PlacedInput(data, field, np.eye(4)), source, cost

    def run(self, operation: operations.Operation, inputs: list[operations.PlacedInput]):
        started = time.monotonic()
        composite = operations.build(operation, inputs)
        vertices, triangles = extract(composite, self.resolution, "CPU")
        return (vertices, triangles), time.monotonic() - started, composite

    def record(self, case: str, result, seconds: float, inputs: Cost, **figures) -> None:
        boundary, nonmanifold = edge_counts(result[1])
        surfaces, cavities = components(*result)
        row = {
            "case": case,
            "seconds": round(seconds, 2),
            "inputs_reextract_s": round(inputs.seconds, 2),
            "time_ok": seconds <= inputs.seconds + 1.0,
            "triangles": len(result[1]),
            "inputs_triangles": inputs.triangles,
            "boundary_edges": boundary,
            "nonmanifold_edges": nonmanifold,
            "surfaces": surfaces,
            "cavities": cavities,
            **{key: round(value, 5) if isinstance(value, float) else value for key, value in figures.items()},
        }
        print(json.dumps(row), flush=True)
        self.rows.append(row)

    def booleans(self, label: str, first: str, second: str, where: np.ndarray, blender_booleans) -> None:
        a, source_a, cost_a = self.fitted(first)
        if second == first:
            b_field, source_b, cost_b = a, source_a, cost_a
        else:
            b_field, source_b, cost_b = self.fitted(second)
        b = operations.PlacedInput(b_field.data, b_field.field, where)
        world_b = moved(source_b, where)
        points = box_points(source_a, world_b, rng=self.rng)
        in_a, in_b = inside(source_a, points), inside(world_b, points)
        for kind, exact in BOOLEANS.items():
            result, seconds, _ = self.run(operations.Operation(kind), [a, b])
            score = iou(inside(result, points), exact(in_a, in_b))
            blender = blender_booleans(source_a, world_b, kind)
            blender_score = iou(inside(blender, points), exact(in_a, in_b)) if len(blender[1]) else 0.0
            blender_edges = edge_counts(blender[1]) if len(blender[1]) else (0, 0)
            self.record(
                f"{label} {kind.lower()}",
                result,
                seconds,
                cost_a + cost_b,
                iou=score,
                blender_exact_iou=blender_score,
                blender_boundary_edges=blender_edges[0],
                blender_nonmanifold_edges=blender_edges[1],
                blender_triangles=len(blender[1]),
            )
            np.savez(
                self.folder / f"{label}_{kind.lower()}.npz",
                ours_v=result[0],
                ours_f=result[1],
                blender_v=blender[0],
                blender_f=blender[1],
            )
        self.inputs = (a, b, source_a, world_b, cost_a + cost_b, points)
        self.single_cost = cost_a

    def blend(self) -> None:
        a, b, source_a, world_b, inputs, _ = self.inputs
        size = np.ptp(source_a[0], 0).max()
        radius = 0.03 * size
        sharp, _, _ = self.run(operations.Operation("UNION"), [a, b])
        blended, seconds, composite = self.run(operations.Operation("UNION", blend=radius), [a, b])
        cell = composite.frame.scale / self.resolution
        shift = np.sqrt(igl.point_mesh_squared_distance(blended[0], *sharp)[0])
        near_curve = (np.abs(signed_distance(blended[0], source_a)) < 2 * radius) & (
            np.abs(signed_distance(blended[0], world_b)) < 2 * radius
        )
        creases = {}  # the sharpest bend between faces within r of both sources' surfaces: the crease, or its fillet
        for name, mesh in (("sharp", sharp), ("blended", blended)):
            middles, angles = edge_angles(*mesh)
            on_curve = (np.abs(signed_distance(middles, source_a)) < radius) & (
                np.abs(signed_distance(middles, world_b)) < radius
            )
            creases[f"{name}_p99_angle_near_curve_deg"] = float(np.percentile(angles[on_curve], 99))
            creases[f"{name}_p99_angle_elsewhere_deg"] = float(np.percentile(angles[~on_curve], 99))
        self.record(
            "union blend",
            blended,
            seconds,
            inputs,
            radius=float(radius),
            cell=float(cell),
            max_shift_outside_2r=float(shift[~near_curve].max()),
            share_moved_over_a_cell_outside_2r=float((shift[~near_curve] > cell).mean()),
            max_shift_near_curve=float(shift[near_curve].max()),
            **creases,
        )

    def offsets(self) -> None:
        a, _, source_a, _, _, _ = self.inputs
        cost_a = self.single_cost
        size = np.ptp(source_a[0], 0).max()
        for fraction in (0.01, -0.01, 0.04, -0.04):  # 0.01: a few cells, right beyond the narrow band
            distance = fraction * size
            result, seconds, composite = self.run(operations.Operation("OFFSET", distance=distance), [a])
            cell = composite.frame.scale / self.resolution
            error = np.abs(signed_distance(result[0], source_a) - distance)
            self.record(
                f"offset {fraction:+.2f} x size",
                result,
                seconds,
                cost_a,
                distance=float(distance),
                cell=float(cell),
                mean_error=float(error.mean()),
                mean_error_cells=float(error.mean() / cell),
            )
        wall = 0.04 * size
        result, seconds, composite = self.run(operations.Operation("OFFSET", shell=wall), [a])
        depth = -signed_distance(result[0], source_a)
        cavity = depth > wall / 2
        self.record(
            "shell 0.04 x size",
            result,
            seconds,
            cost_a,
            wall=float(wall),
            cavity_depth_median=float(np.median(depth[cavity])),
            wall_error_median=float(abs(np.median(depth[cavity]) - wall) / wall),
            share_within_10pct=float((np.abs(depth[cavity] - wall) <= 0.1 * wall).mean()),
        )

    def morph(self, first: str, second: str) -> None:
        a, source_a, cost_a = self.fitted(first)
        b_input, source_b, cost_b = self.fitted(second)
        where = place_beside(source_a, source_b, (0, 0, 30), np.zeros(3))
        b = operations.PlacedInput(b_input.data, b_input.field, where)
        own_a = extract(a.field, self.resolution, "CPU")
        own_b = moved(extract(b.field, self.resolution, "CPU"), where)
        points = box_points(own_a, own_b, rng=self.rng)
        for factor in (0.0, 0.1, 0.25, 0.5, 0.6, 0.75, 0.9, 1.0):
            result, seconds, _ = self.run(operations.Operation("MORPH", factor=factor), [a, b])
            figures = {"factor": factor}
            if factor in (0.0, 1.0):
                figures["iou_vs_input"] = iou(inside(result, points), inside(own_a if factor == 0 else own_b, points))
            self.record(f"morph {factor:.2f}", result, seconds, cost_a + cost_b, **figures)
            np.savez(self.folder / f"morph_{factor:.2f}.npz", ours_v=result[0], ours_f=result[1])


def blender_boolean_factory():
    import bpy

    def boolean(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], kind: str):
        bpy.ops.wm.read_homefile(use_empty=True)
        objects = []
        for name, (vertices, triangles) in (("A", a), ("B", b)):
            mesh = bpy.data.meshes.new(name)
            mesh.from_pydata(vertices.tolist(), [], triangles.tolist())
            obj = bpy.data.objects.new(name, mesh)
            bpy.context.scene.collection.objects.link(obj)
            objects.append(obj)
        modifier = objects[0].modifiers.new("Boolean", "BOOLEAN")
        modifier.object, modifier.solver, modifier.operation = objects[1], "EXACT", kind
        objects[1].hide_set(True)
        evaluated = objects[0].evaluated_get(bpy.context.evaluated_depsgraph_get())
        mesh = evaluated.to_mesh()
        mesh.calc_loop_triangles()
        vertices = np.array([v.co[:] for v in mesh.vertices], np.float64).reshape(-1, 3)
        triangles = np.array([t.vertices[:] for t in mesh.loop_triangles], np.int64).reshape(-1, 3)
        evaluated.to_mesh_clear()
        return vertices, triangles

    return boolean


def write_markdown(rows: list[dict], path: Path) -> None:
    keys = sorted({key for row in rows for key in row if key != "case"}, key=lambda k: (k != "seconds", k))
    lines = ["| case | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row['case']} | " + " | ".join(str(row.get(key, "")) for key in keys) + " |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench-modelling"), help="fields and surfaces")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "modelling", help="tables")
    parser.add_argument("--preset", default="BALANCED")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--reuse-fields", action="store_true", help="use the fields a previous run left in --out")
    parser.add_argument("--cases", nargs="+", default=["closed", "open", "morph"], help="closed, open, morph")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    blender_boolean = blender_boolean_factory()
    bench = Bench(args.preset, args.resolution, args.out, args.reuse_fields)
    spot, bunny, camel = read("spot.obj"), read("bunny_closed_hr.obj"), read("camelhead.obj")
    if "closed" in args.cases:
        beside = place_beside(spot, bunny, (20, 35, 10), np.array([0.3, 0.1, 0.1]))
        bench.booleans("closed spot+bunny", "spot.obj", "bunny_closed_hr.obj", beside, blender_boolean)
        bench.blend()
        bench.offsets()
    if "open" in args.cases:
        beside = place_beside(camel, camel, (0, 0, 40), np.array([0.3, 0.1, 0.05]))
        bench.booleans("open camelhead x2", "camelhead.obj", "camelhead.obj", beside, blender_boolean)
    if "morph" in args.cases:
        bench.morph("spot.obj", "bunny_closed_hr.obj")
    name = f"results-{'-'.join(args.cases)}-{args.resolution}"
    (args.results / f"{name}.json").write_text(
        json.dumps({"preset": args.preset, "resolution": args.resolution, "rows": bench.rows}, indent=1)
    )
    write_markdown(bench.rows, args.results / f"{name}.md")
    print(f"wrote {name}.md in {args.results}")


if __name__ == "__main__":
    main()
