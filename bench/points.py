"""Benchmark: closed solids from point clouds (scans). Open3D's Screened Poisson, Geometry Nodes' Points to
Volume -> Volume to Mesh and the add-on's worker, on the same points in the same run, scored against the
mesh the points were sampled from with ../shared/tools/meshmetrics.py.

    apt-get install -y libusb-1.0-0   # once: open3d-cpu's import needs it (`make bench` runs this step)
    python bench/points.py --zip dist/inr_addon-<version>.zip [--quick] [--meshes spot.obj ...]
        [--cases clean noisy holes sparse] [--methods spsr8 spsr9 gn ours] [--through-blender]

From each mesh, in its unit frame (bounding box centred, longest side 1), four point sets with fixed seeds:
clean (uniform by area), noisy (clean + Gaussian noise of NOISE), holes (clean less three balls of radius
HOLE_RADIUS and the bottom BOTTOM of the height) and sparse. Each is written as a PLY of x y z only, with
its true normals beside (<case>_normals.npy, never given to a method). Each method's wall time covers:
Screened Poisson: normal estimation, orientation and Poisson (in this process; "trim" rows add the
documented low-density trim, quantile 0.01); GN volume: the node tree's evaluation and read-back inside
Blender (after the PLY import); ours: the whole worker command (start-up, reading, fitting, extraction).
A method that fails gets status "failed" and its error's last line. GN volume's fog is a shell around the
points, so Volume to Mesh gives an outer and an inner surface: the inner one bounds a cavity, which IoU
(winding number) counts as outside.

Meshes, points and fields go to --work; results.json, table.md, points.png and sheet_<mesh>.png to --out,
each recording the command that made it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import igl
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MESHES = SHARED / "data" / "meshes"
sys.path[:0] = [str(SHARED / "tools"), str(ROOT / "scripts"), str(ROOT / "bench")]

from meshmetrics import compare_arrays, sample, unit_frame

CLOSED = ["spot.obj", "bunny_closed_hr.obj", "armadillo_lowres.obj"]
CASES = ["clean", "noisy", "holes", "sparse"]
METHODS = {
    "spsr8": ["SPSR d8", "SPSR d8 trim"],
    "spsr9": ["SPSR d9", "SPSR d9 trim"],
    "gn": ["GN volume"],
    "ours": ["ours"],
}
THROUGH_BLENDER = "ours via Blender"
BASE = "SPSR d8"  # the method every time is divided by, case by case
SHEET_METHODS = ["SPSR d8", "GN volume", "ours"]
COUNTS = {"dense": 100_000, "sparse": 8_000}
QUICK_COUNTS = {"dense": 20_000, "sparse": 4_000}
NOISE = 0.004  # Gaussian sigma, fraction of the longest side
HOLES, HOLE_RADIUS = 3, 0.08
BOTTOM = 0.04  # fraction of the height never seen
UP = 1  # the shared meshes stand along +y: their base is the lowest y
SEED = 0
RESOLUTION = 256
NORMAL_RADIUS, NORMAL_NEIGHBOURS, ORIENT_NEIGHBOURS = 0.1, 30, 100  # Open3D's documented values
TRIM_QUANTILE = 0.01
GN_RADIUS_SPACINGS = 2.0  # Points to Volume's radius, in mean nearest-neighbour distances
Y_UP_TO_Z_UP = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # +Z (the front) to the camera
SCORES = ("chamfer_l1", "f_score", "normal_consistency", "iou", "boundary_edges", "nonmanifold_edges")


def unit_mesh(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The mesh, moved into its unit frame."""
    vertices, triangles = igl.read_triangle_mesh(str(MESHES / name))[:2]
    centre, size = unit_frame(vertices)
    return (np.asarray(vertices, np.float64) - centre) / size, np.asarray(triangles, np.int64)


def point_sets(
    vertices: np.ndarray, triangles: np.ndarray, counts: dict[str, int]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The four cases' points and true normals, sampled uniformly by area with a fixed seed."""
    rng = np.random.default_rng(SEED)
    points, normals = sample(vertices, triangles, counts["dense"], rng)
    noisy = points + rng.normal(0.0, NOISE, points.shape)
    centres = points[rng.choice(len(points), HOLES, replace=False)]
    far = (np.linalg.norm(points[:, None] - centres[None], axis=2) > HOLE_RADIUS).all(1)
    low, high = points[:, UP].min(), points[:, UP].max()
    seen = far & (points[:, UP] >= low + BOTTOM * (high - low))
    sparse = sample(vertices, triangles, counts["sparse"], rng)
    return {
        "clean": (points, normals),
        "noisy": (noisy, normals),
        "holes": (points[seen], normals[seen]),
        "sparse": sparse,
    }


def write_points_ply(path: Path, points: np.ndarray) -> None:
    """Binary little-endian PLY with vertex x y z (float32) only."""
    header = (
        f"ply\nformat binary_little_endian 1.0\nelement vertex {len(points)}\n"
        "property float x\nproperty float y\nproperty float z\nend_header\n"
    )
    path.write_bytes(header.encode("ascii") + np.ascontiguousarray(points, "<f4").tobytes())


def points_in_ply(path: Path) -> int:
    """The vertex count in a PLY's header."""
    with path.open("rb") as file:
        for line in file:
            if line.startswith(b"element vertex"):
                return int(line.split()[2])
    raise ValueError(f"{path}: no vertex element")


def screened_poisson(points: np.ndarray, true_normals: np.ndarray | None, depth: int) -> list[tuple[dict, tuple]]:
    """Open3D's Screened Poisson as its documentation runs it, as is and with the low-density trim;
    each a (row fields, mesh). ``flipped_normals``, where true normals are given: the share of the
    oriented normals against them."""
    import open3d as o3d

    started = time.monotonic()
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=NORMAL_RADIUS, max_nn=NORMAL_NEIGHBOURS))
    cloud.orient_normals_consistent_tangent_plane(ORIENT_NEIGHBOURS)
    surface, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud, depth=depth)
    seconds = time.monotonic() - started
    flipped = {}
    if true_normals is not None:
        flipped["flipped_normals"] = float((np.einsum("ij,ij->i", np.asarray(cloud.normals), true_normals) < 0).mean())
    plain = (np.asarray(surface.vertices).copy(), np.asarray(surface.triangles, np.int64).copy())
    started = time.monotonic()
    densities = np.asarray(densities)
    surface.remove_vertices_by_mask(densities < np.quantile(densities, TRIM_QUANTILE))
    trimmed = (np.asarray(surface.vertices), np.asarray(surface.triangles, np.int64))
    trim_seconds = time.monotonic() - started
    return [
        ({"wall_s": seconds} | flipped, plain),
        ({"wall_s": seconds + trim_seconds} | flipped, trimmed),
    ]


def spsr_rows(base: dict, points: np.ndarray, normals: np.ndarray, depth: int, work: Path) -> list[dict]:
    """Screened Poisson's rows at ``depth``, as is and trimmed, with their meshes written under ``work``."""
    methods = METHODS[f"spsr{depth}"]
    try:
        found = screened_poisson(points, normals, depth)
    except (ImportError, RuntimeError) as error:
        return [base | {"method": method, "status": "failed", "error": last_line(str(error))} for method in methods]
    rows = []
    for method, (fields, mesh) in zip(methods, found):
        write_mesh(mesh_file(work, Path(base["mesh"]).stem, base["case"], method), mesh)
        rows.append(base | {"method": method, "status": "ok"} | fields)
        print(rows[-1], flush=True)
    return rows


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def run_ours(points_path: Path, mesh_path: Path, preset: str, timeout: float) -> dict:
    """The worker's command line on the points; row fields (status, time, field size or error)."""
    field = mesh_path.with_suffix(".safetensors")
    command = [sys.executable, "-m", "inr_worker", "fit", str(points_path), "--field", str(field)]
    command += ["--out", str(mesh_path), "--resolution", str(RESOLUTION), "--preset", preset]
    environment = os.environ | {"PYTHONPATH": str(ROOT / "inr_addon")}
    started = time.monotonic()
    try:
        done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "wall_s": time.monotonic() - started, "error": f"timed out after {timeout:.0f} s"}
    row = {"wall_s": time.monotonic() - started}
    if done.returncode != 0 or not mesh_path.is_file():
        return row | {"status": "failed", "error": last_line(done.stderr or done.stdout)}
    return row | {"status": "ok", "field_bytes": field.stat().st_size}


def mesh_file(work: Path, shape: str, case: str, method: str) -> Path:
    return work / shape / f"{case}_{method.replace(' ', '_')}.ply"


def write_mesh(path: Path, mesh: tuple[np.ndarray, np.ndarray]) -> None:
    igl.write_triangle_mesh(str(path), np.asarray(mesh[0], np.float64), np.asarray(mesh[1], np.int64))


def score(reference: tuple[np.ndarray, np.ndarray], path: Path) -> dict:
    """Scores of the mesh at ``path`` against ``reference``; status failed where it has no surface."""
    vertices, triangles = igl.read_triangle_mesh(str(path))[:2]
    if len(triangles) == 0:
        return {"status": "failed", "error": "no triangles"}
    try:
        metrics = compare_arrays(*reference, vertices, triangles, samples=100_000)
    except ValueError as error:
        return {"status": "failed", "error": str(error)}
    return {key: metrics[key] for key in SCORES} | {
        "signed_volume": metrics["signed_volume"],
        "triangles": len(triangles),
    }


def bench_shape(args: argparse.Namespace, name: str) -> list[dict]:
    """One mesh: its point sets, Screened Poisson and ours here, GN volume (and ours via Blender) in a
    Blender child, which also renders the contact sheet; then every surface scored."""
    shape = Path(name).stem
    (args.work / shape).mkdir(parents=True, exist_ok=True)
    reference = unit_mesh(name)
    write_mesh(args.work / shape / "reference.ply", reference)
    for case in args.cases:
        for stale in (args.work / shape).glob(f"{case}_*.*"):
            stale.unlink()
    rows: list[dict] = []
    for case, (points, normals) in point_sets(*reference, args.counts).items():
        if case not in args.cases:
            continue
        points_path = args.work / shape / f"{case}.ply"
        write_points_ply(points_path, points)
        np.save(args.work / shape / f"{case}_normals.npy", normals)
        base = {"mesh": name, "case": case, "points": len(points)}
        for depth in (8, 9):
            if f"spsr{depth}" in args.methods:
                rows += spsr_rows(base, points, normals, depth, args.work)
        if "ours" in args.methods:
            fields = run_ours(points_path, mesh_file(args.work, shape, case, "ours"), args.preset, args.timeout)
            rows.append(base | {"method": "ours", "preset": args.preset} | fields)
            print(rows[-1], flush=True)
    if "gn" in args.methods or args.through_blender:
        rows += blender_child(args, name)
    order = [method for methods in METHODS.values() for method in methods] + [THROUGH_BLENDER]
    rows.sort(key=lambda row: (CASES.index(row["case"]), order.index(row["method"])))
    for row in rows:
        if row["status"] == "ok":
            row.update(score(reference, mesh_file(args.work, shape, row["case"], row["method"])))
    return rows


def blender_child(args: argparse.Namespace, name: str) -> list[dict]:
    """Run this file's Blender part for one mesh in its own process; its rows."""
    command = [sys.executable, __file__, "--child", name, "--work", str(args.work), "--out", str(args.out)]
    command += ["--cases", *args.cases, "--methods", *args.methods, "--preset", args.preset]
    command += ["--command", args.command]
    command += (["--zip", str(args.zip)] if args.zip else []) + (["--through-blender"] if args.through_blender else [])
    rows_path = args.work / Path(name).stem / "blender_rows.json"
    rows_path.unlink(missing_ok=True)
    done = subprocess.run(command, check=False)
    if rows_path.is_file():
        return json.loads(rows_path.read_text())
    error = f"Blender child exited {done.returncode}"
    methods = (["GN volume"] if "gn" in args.methods else []) + ([THROUGH_BLENDER] if args.through_blender else [])
    return [
        {"mesh": name, "case": case, "method": method, "status": "failed", "error": error}
        for case in args.cases
        for method in methods
    ]


def blender_part(args: argparse.Namespace, name: str) -> None:
    """Inside Blender: GN volume (and ours via the add-on's operator) on each case's PLY, then the sheet."""
    if args.zip:
        from headless import start_blender

        bpy = start_blender(args.zip.resolve())
    else:
        import bpy
    bpy.ops.wm.read_homefile(use_empty=True)
    shape = Path(name).stem
    rows = []
    for case in args.cases:
        points_path = args.work / shape / f"{case}.ply"
        base = {"mesh": name, "case": case, "points": points_in_ply(points_path)}
        if "gn" in args.methods:
            row = base | {"method": "GN volume"}
            row.update(gn_volume(bpy, points_path, mesh_file(args.work, shape, case, "GN volume")))
            rows.append(row)
            print(row, flush=True)
        if args.through_blender:
            row = base | {"method": THROUGH_BLENDER, "preset": args.preset}
            row.update(ours_via_blender(bpy, points_path, mesh_file(args.work, shape, case, THROUGH_BLENDER), args))
            rows.append(row)
            print(row, flush=True)
    (args.work / shape / "blender_rows.json").write_text(json.dumps(rows, indent=1))
    contact_sheet(bpy, args, shape)


def import_points(bpy, path: Path):
    """The PLY as Blender's importer gives it (a mesh object with vertices only), selected and active."""
    bpy.ops.wm.ply_import(filepath=str(path))
    obj = bpy.context.active_object
    for other in bpy.context.selected_objects:
        other.select_set(other is obj)
    return obj


def gn_volume(bpy, points_path: Path, out: Path) -> dict:
    """Geometry Nodes: Mesh to Points -> Points to Volume (radius GN_RADIUS_SPACINGS mean nearest-neighbour
    distances, a voxel amount giving about RESOLUTION voxels along the longest side) -> Volume to Mesh."""
    from headless import mesh_arrays
    from scipy.spatial import cKDTree

    source = import_points(bpy, points_path)
    started = time.monotonic()
    vertices = mesh_arrays(source)[0]
    spacing = float(cKDTree(vertices).query(vertices, k=2)[0][:, 1].mean())
    extent = vertices.max(0) - vertices.min(0)
    tree = bpy.data.node_groups.new("points_to_volume", "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    group_in, group_out = tree.nodes.new("NodeGroupInput"), tree.nodes.new("NodeGroupOutput")
    to_points = tree.nodes.new("GeometryNodeMeshToPoints")
    to_volume, to_mesh = tree.nodes.new("GeometryNodePointsToVolume"), tree.nodes.new("GeometryNodeVolumeToMesh")
    to_volume.inputs["Resolution Mode"].default_value = "Amount"  # voxels along the bounding box's diagonal
    to_volume.inputs["Voxel Amount"].default_value = RESOLUTION * float(np.linalg.norm(extent) / extent.max())
    to_volume.inputs["Radius"].default_value = GN_RADIUS_SPACINGS * spacing
    to_mesh.inputs["Resolution Mode"].default_value = "Grid"
    tree.links.new(group_in.outputs[0], to_points.inputs["Mesh"])
    tree.links.new(to_points.outputs["Points"], to_volume.inputs["Points"])
    tree.links.new(to_volume.outputs["Volume"], to_mesh.inputs["Volume"])
    tree.links.new(to_mesh.outputs["Mesh"], group_out.inputs[0])
    source.modifiers.new("points_to_volume", "NODES").node_group = tree
    evaluated = source.evaluated_get(bpy.context.evaluated_depsgraph_get())
    result = bpy.data.objects.new("GN volume", bpy.data.meshes.new_from_object(evaluated))
    mesh = mesh_arrays(result)
    seconds = time.monotonic() - started
    bpy.data.objects.remove(source)
    bpy.data.objects.remove(result)
    if len(mesh[1]) == 0:
        return {"status": "failed", "wall_s": seconds, "error": "no triangles"}
    write_mesh(out, mesh)
    return {"status": "ok", "wall_s": seconds, "radius": GN_RADIUS_SPACINGS * spacing}


def ours_via_blender(bpy, points_path: Path, out: Path, args: argparse.Namespace) -> dict:
    """``inr.fit_mesh`` on the imported points (needs --zip); the operator's own wall time."""
    from headless import mesh_arrays

    source = import_points(bpy, points_path)
    bpy.context.view_layer.objects.active = source
    started = time.monotonic()
    try:
        bpy.ops.inr.fit_mesh(resolution=RESOLUTION, preset=args.preset)
    except (RuntimeError, AttributeError) as error:
        return {"status": "failed", "wall_s": time.monotonic() - started, "error": last_line(str(error))}
    seconds = time.monotonic() - started
    result = bpy.context.active_object
    if result is source:
        return {"status": "failed", "wall_s": seconds, "error": "no surface object was added"}
    write_mesh(out, mesh_arrays(result))
    bpy.data.objects.remove(source)
    bpy.data.objects.remove(result)
    return {"status": "ok", "wall_s": seconds}


def contact_sheet(bpy, args: argparse.Namespace, shape: str) -> None:
    """One Workbench row per case (the reference, then SHEET_METHODS' surfaces that exist), stacked; the
    shared meshes have Y up, so each is turned to stand with Z up before the front view."""
    rows = []
    for case in args.cases:
        paths = {"reference": args.work / shape / "reference.ply"}
        paths |= {method: mesh_file(args.work, shape, case, method) for method in SHEET_METHODS}
        objects, labels = [], []
        for label, path in paths.items():
            if path.is_file():
                objects.append(standing_object(bpy, label, path))
                labels.append(f"{case}: {label}" if label == "reference" else label)
        rows.append(sheet_row(bpy, objects, labels, args.work / shape / f"sheet_{case}.png"))
    save_png(stacked(rows), args.out / f"sheet_{shape}.png", args.command)


def standing_object(bpy, name: str, path: Path):
    """The mesh file at ``path`` (Y up, as the shared meshes stand) as a linked object standing with Z up."""
    vertices, triangles = igl.read_triangle_mesh(str(path))[:2]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata((vertices @ Y_UP_TO_Z_UP.T).tolist(), [], triangles.tolist())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def sheet_row(bpy, objects: list, labels: list[str], path: Path):
    """``objects`` rendered side by side (``report.contact_sheet``) to ``path``, on white, as a PIL image;
    then every object is removed from the scene."""
    import report
    from PIL import Image

    report.contact_sheet(bpy, objects, labels, path)
    picture = Image.open(path).convert("RGBA")
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    return Image.alpha_composite(Image.new("RGBA", picture.size, "white"), picture).convert("RGB")


def stacked(rows: list):
    """PIL images one above the other, on white."""
    from PIL import Image

    sheet = Image.new("RGB", (max(row.width for row in rows), sum(row.height for row in rows)), "white")
    for index, row in enumerate(rows):
        sheet.paste(row, (0, sum(previous.height for previous in rows[:index])))
    return sheet


def save_png(image, path: Path, command: str) -> None:
    """Save a PIL image with the command that made it in the PNG's Description."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Description", command)
    image.save(path, pnginfo=info)


def base_times(rows: list[dict]) -> dict[tuple[str, str], float]:
    return {(row["mesh"], row["case"]): row["wall_s"] for row in rows if row["method"] == BASE and "wall_s" in row}


def table(rows: list[dict], command: str) -> str:
    """Markdown: every row, then each method's time summed over the cases against Screened Poisson d8's."""
    bases = base_times(rows)
    lines = [
        f"# Point clouds to closed solids\n\nMade by `{command}`\n",
        (
            "| mesh | case | points | method | status | wall s | × SPSR d8 time | Chamfer-L1 | IoU | normal cons. "
            "| F-score | boundary / non-manifold edges | triangles | flipped normals | error |"
        ),
        "|" + "---|" * 15,
    ]
    for row in rows:
        base = bases.get((row["mesh"], row["case"]))
        scored = "chamfer_l1" in row
        cells = [
            row["mesh"],
            row["case"],
            str(row.get("points", "")),
            row["method"],
            row["status"],
            f"{row['wall_s']:.1f}" if "wall_s" in row else "",
            f"{row['wall_s'] / base:.2f}" if base and "wall_s" in row else "",
            f"{row['chamfer_l1']:.2e}" if scored else "",
            f"{row['iou']:.4f}" if scored else "",
            f"{row['normal_consistency']:.4f}" if scored else "",
            f"{row['f_score']:.4f}" if scored else "",
            f"{row['boundary_edges']} / {row['nonmanifold_edges']}" if scored else "",
            str(row.get("triangles", "")),
            f"{row['flipped_normals']:.3f}" if "flipped_normals" in row else "",
            row.get("error", "").replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["\n## Ours against Screened Poisson d8 on the same points\n", summary(rows)]
    lines += [
        "\n## Time summed over the cases where SPSR d8 also ran\n",
        "| method | cases | ok | wall s | × SPSR d8 time | Chamfer-L1 (geometric mean of ok) | IoU (median of ok) |",
        "|---|---|---|---|---|---|---|",
    ]
    by_method = defaultdict(list)
    for row in rows:
        by_method[row["method"]].append(row)
    for method, group in by_method.items():
        timed = [row for row in group if (row["mesh"], row["case"]) in bases and "wall_s" in row]
        total = sum(row["wall_s"] for row in timed)
        base = sum(bases[(row["mesh"], row["case"])] for row in timed)
        scored = [row for row in group if "chamfer_l1" in row]
        chamfer = math.exp(sum(math.log(row["chamfer_l1"]) for row in scored) / len(scored)) if scored else None
        iou = float(np.median([row["iou"] for row in scored])) if scored else None
        cells = [
            method,
            str(len(group)),
            str(len(scored)),
            f"{total:.1f}" if base else "",
            f"{total / base:.2f}" if base else "",
            "" if chamfer is None else f"{chamfer:.2e}",
            "" if iou is None else f"{iou:.4f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary(rows: list[dict]) -> str:
    """Markdown: ours against Screened Poisson d8 on the same points, one row per mesh and case."""
    found = {(row["mesh"], row["case"], row["method"]): row for row in rows if "chamfer_l1" in row}
    lines = [
        (
            "| mesh | case | Chamfer-L1: ours (× SPSR d8) | IoU: ours / SPSR d8 | normal cons.: ours / SPSR d8 "
            "| boundary + non-manifold edges: ours / SPSR d8 | time × SPSR d8 |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for mesh, case in dict.fromkeys((row["mesh"], row["case"]) for row in rows):
        ours, base = found.get((mesh, case, "ours")), found.get((mesh, case, BASE))
        if ours is None or base is None:
            continue
        cells = [
            Path(mesh).stem,
            case,
            f"{ours['chamfer_l1']:.2e} ({ours['chamfer_l1'] / base['chamfer_l1']:.2f})",
            f"{ours['iou']:.4f} / {base['iou']:.4f}",
            f"{ours['normal_consistency']:.4f} / {base['normal_consistency']:.4f}",
            f"{open_edges(ours)} / {open_edges(base)}",
            f"{ours['wall_s'] / base['wall_s']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def open_edges(row: dict) -> int:
    """Boundary and non-manifold edges together."""
    return row["boundary_edges"] + row["nonmanifold_edges"]


def plot(rows: list[dict], path: Path, command: str) -> None:
    """Chamfer-L1 and IoU per mesh and case, one bar per method (a missing bar: failed or not run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((row["mesh"], row["case"]) for row in rows))
    methods = list(dict.fromkeys(row["method"] for row in rows))
    found = {(row["mesh"], row["case"], row["method"]): row for row in rows if "chamfer_l1" in row}
    figure, axes = plt.subplots(2, 1, figsize=(max(8, 1.2 * len(groups)), 8), sharex=True)
    width = 0.8 / len(methods)
    for index, method in enumerate(methods):
        for axis, key in zip(axes, ("chamfer_l1", "iou")):
            spots = [
                (number + (index - (len(methods) - 1) / 2) * width, found[(*group, method)][key])
                for number, group in enumerate(groups)
                if (*group, method) in found
            ]
            if spots:
                axis.bar(*zip(*spots), width=width, label=method)
    axes[0].set(yscale="log", ylabel="Chamfer-L1 (unit frame), lower is better")
    axes[1].set(ylabel="IoU, higher is better", ylim=(0, 1))
    axes[1].set_xticks(range(len(groups)), [f"{Path(mesh).stem}\n{case}" for mesh, case in groups])
    axes[0].legend(fontsize=8, ncol=3)
    figure.text(0.01, 0.005, command, fontsize=6, family="monospace")
    figure.savefig(path, dpi=110, bbox_inches="tight", metadata={"Description": command})
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, help="the built extension (needed by --through-blender)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "points")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench-points", help="points and meshes")
    parser.add_argument("--quick", action="store_true", help=f"spot.obj only, counts {QUICK_COUNTS}")
    parser.add_argument("--meshes", nargs="+", help=f"default {CLOSED}")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=CASES)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--preset", default="BALANCED", help="ours' preset")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds for one run of ours")
    parser.add_argument("--through-blender", action="store_true", help="also ours via inr.fit_mesh (needs --zip)")
    parser.add_argument("--tables-only", action="store_true", help="rewrite table.md and the plot from results.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--command", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.command = args.command or shlex.join(["python", *sys.argv])
    if args.child:
        blender_part(args, args.child)
        return
    if args.through_blender and args.zip is None:
        parser.error("--through-blender needs --zip")
    if args.tables_only:
        results = json.loads((args.out / "results.json").read_text())
        (args.out / "table.md").write_text(table(results["rows"], results["command"]))
        plot(results["rows"], args.out / "points.png", results["command"])
        return
    args.meshes = args.meshes or (CLOSED[:1] if args.quick else CLOSED)
    args.counts = QUICK_COUNTS if args.quick else COUNTS
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for name in args.meshes:
        started = time.monotonic()
        rows += bench_shape(args, name)
        print(f"{name}: {time.monotonic() - started:.0f} s", flush=True)
        results = {"command": args.command, "cpu_count": os.cpu_count(), "counts": args.counts, "rows": rows}
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
    (args.out / "table.md").write_text(table(rows, args.command))
    plot(rows, args.out / "points.png", args.command)
    print((args.out / "table.md").read_text())


if __name__ == "__main__":
    main()
