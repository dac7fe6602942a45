"""Batch fitting of a mesh library on Ray: one Ray task a mesh, running the worker's own ``fit`` and
``extract``; the driver (this process) alone writes the outputs and the manifest.

Every mesh file under the inputs becomes ``OUT/<relative folder>/<name>.safetensors`` (the field) and
``OUT/<relative folder>/<name>_<resolution>.<format>`` (one surface a resolution). Each output is written
to a hidden temporary name and moved into place when complete, so a mesh whose outputs all exist is done
and a rerun skips it; a killed run loses only the tasks in flight. Mesh bytes travel to the tasks and
the results travel back through Ray, so a cluster needs no shared filesystem.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

import igl
import numpy as np
import ray
import torch
import tqdm

from .fields import colour_field
from .fields.field_file import load_field, save_field
from .jobs import USER_ERRORS, add_vertex_colours, extract, fit, fit_points
from .sources.points import PointSet, _read_ply, is_point_file, read_points
from .surface import quad_surface
from .surface.surface_file import write_surface

IGL_SUFFIXES = (".obj", ".ply", ".stl", ".off")
GLTF_SUFFIXES = (".glb", ".gltf")
MESH_SUFFIXES = IGL_SUFFIXES + GLTF_SUFFIXES
POINT_SUFFIXES = (".xyz", ".pts")  # point clouds; a PLY or OBJ without faces is one too
INPUT_SUFFIXES = MESH_SUFFIXES + POINT_SUFFIXES
SURFACE_FORMATS = ("obj", "ply", "off", "stl")
MANIFEST = "manifest.jsonl"
F_SCORE_TAU = 0.01  # of the input's longest side, as ../shared/tools/meshmetrics.py


class BatchError(RuntimeError):
    """The batch cannot start or did not fully succeed; the message is one line for the user."""


@dataclasses.dataclass(frozen=True)
class BatchConfig:
    """What every task does to its mesh."""

    preset: str = "BALANCED"
    resolutions: tuple[int, ...] = (256,)
    steps: int = 0  # 0: the preset's
    seed: int = 0
    device: str = "AUTO"
    learned: bool = False  # meshes: train a residual on top of the band (learned_band)
    surface_format: str = "obj"
    surface: str = "TRIANGLES"  # or "QUADS" (protocol.SURFACE_NAMES)
    adaptivity: float = 0.0  # protocol.ADAPTIVITY_RANGE: above 0, flat parts merged (triangles)
    score: bool = False
    score_samples: int = 100_000


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """Where the tasks run and what each one asks Ray for."""

    address: str | None = None  # None and no RAY_ADDRESS: a local Ray on this machine
    num_cpus: int | None = None  # local Ray only; default: this machine's CPUs
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0


@dataclasses.dataclass(frozen=True)
class MeshItem:
    """One input mesh and where its outputs go (``relative`` is the output path without suffix)."""

    source: Path
    relative: Path

    def field_path(self, out: Path) -> Path:
        return out / self.relative.parent / f"{self.relative.name}.safetensors"

    def surface_path(self, out: Path, resolution: int, surface_format: str) -> Path:
        return out / self.relative.parent / f"{self.relative.name}_{resolution}.{surface_format}"


# --- finding the meshes -------------------------------------------------------------------


def find_meshes(inputs: Iterable[Path], out: Path) -> list[MeshItem]:
    """Mesh files under ``inputs`` (files as given, folders searched recursively), skipping ``out``.

    A folder's meshes keep their path relative to it; a file given by itself goes to the top of ``out``.
    """
    out = out.resolve()
    items = []
    for given in inputs:
        if given.is_file():
            items.append(MeshItem(given.absolute(), Path(given.stem)))
        elif given.is_dir():
            for path in sorted(given.rglob("*")):
                if path.suffix.lower() in INPUT_SUFFIXES and path.is_file() and not path.resolve().is_relative_to(out):
                    relative = path.relative_to(given)
                    items.append(MeshItem(path.absolute(), relative.parent / relative.stem))
        else:
            raise BatchError(f"{given}: no such file or folder")
    return items


def read_points_file(data: bytes, suffix: str) -> PointSet | None:
    """The points of a point file's bytes (XYZ, PTS, or a PLY or OBJ without faces); None for a mesh."""
    with tempfile.TemporaryDirectory(prefix="inr_batch_") as folder:
        path = Path(folder) / f"input{suffix.lower()}"
        path.write_bytes(data)
        return read_points(path) if is_point_file(path) else None


def read_mesh(data: bytes, suffix: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and triangles of a mesh file's bytes; InputError-style ValueError if there is no mesh."""
    suffix = suffix.lower()
    if suffix in GLTF_SUFFIXES:
        import trimesh

        try:
            mesh = trimesh.load(io.BytesIO(data), file_type=suffix[1:], force="mesh")
        except Exception as error:  # trimesh raises many kinds on a broken file
            raise ValueError(f"cannot read it as {suffix[1:]} ({error})") from error
        vertices, triangles = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    elif suffix in IGL_SUFFIXES:
        with tempfile.TemporaryDirectory(prefix="inr_batch_") as folder:
            path = Path(folder) / f"mesh{suffix}"
            path.write_bytes(data)
            try:
                vertices, triangles = igl.read_triangle_mesh(str(path))[:2]
            except (RuntimeError, ValueError) as error:
                raise ValueError(f"libigl cannot read it as {suffix[1:]}") from error
    else:
        raise ValueError(f"{suffix or 'no suffix'} is not a mesh format this reads ({', '.join(MESH_SUFFIXES)})")
    if len(vertices) == 0:
        raise ValueError("no mesh could be read from it")
    if len(triangles) == 0:
        raise ValueError("the mesh has no faces")
    return np.asarray(vertices, np.float64), np.asarray(triangles, np.int64)


def read_mesh_colours(data: bytes, suffix: str, vertex_count: int) -> np.ndarray | None:
    """Linear RGB (V, 3) of a PLY or glTF mesh's vertex colours, or None where it carries none."""
    suffix = suffix.lower()
    colours = None
    if suffix in GLTF_SUFFIXES:
        import trimesh

        visual = trimesh.load(io.BytesIO(data), file_type=suffix[1:], force="mesh").visual
        if getattr(visual, "kind", None) == "vertex":  # glTF's COLOR_0 is linear
            colours = np.asarray(visual.vertex_colors, np.float32)[:, :3] / 255
    elif suffix == ".ply":
        with tempfile.TemporaryDirectory(prefix="inr_batch_") as folder:
            path = Path(folder) / "mesh.ply"
            path.write_bytes(data)
            colours = _read_ply(path).colors
    if colours is None or len(colours) != vertex_count or not np.isfinite(colours).all():
        return None
    return np.clip(colours, 0, 1).astype(np.float32)


# --- what a task does ---------------------------------------------------------------------


def edge_counts(triangles: np.ndarray) -> tuple[int, int]:
    """Edges used by one face (boundary) and by more than two (non-manifold)."""
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    _, uses = np.unique(edges, axis=0, return_counts=True)
    return int((uses == 1).sum()), int((uses > 2).sum())


def _surface_samples(vertices: np.ndarray, triangles: np.ndarray, count: int, rng: np.random.Generator):
    corners = vertices[triangles]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    areas = np.linalg.norm(cross, axis=1)
    normals = cross / np.maximum(areas, 1e-30)[:, None]
    chosen = rng.choice(len(triangles), count, p=areas / areas.sum())
    weights = rng.dirichlet((1.0, 1.0, 1.0), count)
    return np.einsum("nk,nkd->nd", weights, corners[chosen]), normals[chosen], normals


def score_surface(
    reference: tuple[np.ndarray, np.ndarray], candidate: tuple[np.ndarray, np.ndarray], samples: int, seed: int = 0
) -> dict[str, float]:
    """Chamfer-L1, F-score at 1 %, normal consistency and winding-number IoU of ``candidate`` against
    ``reference``, in the reference's unit frame: the conventions of ``../shared/tools/meshmetrics.py``,
    computed here with numpy and libigl (the worker does not depend on the shared tools)."""
    rng = np.random.default_rng(seed)
    low, high = reference[0].min(0), reference[0].max(0)
    centre, size = (low + high) / 2, float((high - low).max())
    ref_v, cand_v = (reference[0] - centre) / size, (candidate[0] - centre) / size
    ref_f, cand_f = reference[1], np.asarray(candidate[1], np.int64)
    ref_points, ref_normals, ref_face_normals = _surface_samples(ref_v, ref_f, samples, rng)
    cand_points, cand_normals, cand_face_normals = _surface_samples(cand_v, cand_f, samples, rng)
    to_ref, ref_faces, _ = igl.point_mesh_squared_distance(cand_points, ref_v, ref_f)
    to_cand, cand_faces, _ = igl.point_mesh_squared_distance(ref_points, cand_v, cand_f)
    to_ref, to_cand = np.sqrt(to_ref), np.sqrt(to_cand)
    precision, recall = (to_ref < F_SCORE_TAU).mean(), (to_cand < F_SCORE_TAU).mean()
    normal_consistency = (
        np.abs((cand_normals * ref_face_normals[ref_faces]).sum(1)).mean()
        + np.abs((ref_normals * cand_face_normals[cand_faces]).sum(1)).mean()
    ) / 2
    pad = (ref_v.max(0) - ref_v.min(0)) * 0.05
    queries = rng.uniform(ref_v.min(0) - pad, ref_v.max(0) + pad, (samples, 3))
    inside_ref = np.abs(igl.fast_winding_number(ref_v, ref_f, queries)) > 0.5
    inside_cand = np.abs(igl.fast_winding_number(cand_v, cand_f, queries)) > 0.5
    union = (inside_ref | inside_cand).sum()
    return {
        "chamfer_l1": float((to_ref.mean() + to_cand.mean()) / 2),
        "f_score": float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0,
        "normal_consistency": float(normal_consistency),
        "iou": float((inside_ref & inside_cand).sum() / union) if union else 0.0,
    }


def _encode_surface(
    vertices: np.ndarray, faces: np.ndarray, surface_format: str, colours: np.ndarray | None = None
) -> bytes:
    with tempfile.TemporaryDirectory(prefix="inr_batch_") as folder:
        path = Path(folder) / f"surface.{surface_format}"
        write_surface(path, vertices, faces, colours)
        return path.read_bytes()


def process_mesh(
    suffix: str,
    mesh_bytes: bytes,
    field_bytes: bytes | None,
    resolutions: tuple[int, ...],
    config: BatchConfig,
    threads: int,
) -> dict[str, Any]:
    """One task: fit (unless ``field_bytes`` holds the mesh's field already) and extract at ``resolutions``.

    Returns ``{"row": manifest fields, "files": {"field" or resolution: bytes}}``; a bad mesh gives a
    row with status ``failed`` and a one-line ``error``, never an exception.
    """
    torch.set_num_threads(max(1, threads))
    started = time.monotonic()
    row: dict[str, Any] = {"node": socket.gethostname(), "fitted": field_bytes is None, "status": "failed"}
    files: dict[str | int, bytes] = {}
    try:
        point_set = read_points_file(mesh_bytes, suffix)
        if point_set is None:
            vertices, triangles = read_mesh(mesh_bytes, suffix)
            vertex_colours = read_mesh_colours(mesh_bytes, suffix, len(vertices))
            row.update(input_vertices=len(vertices), input_triangles=len(triangles))
        else:
            row.update(input_points=len(point_set.points))
        row["read_s"] = round(time.monotonic() - started, 3)
        with tempfile.TemporaryDirectory(prefix="inr_batch_") as folder:
            field_path = Path(folder) / "field.safetensors"
            if field_bytes is None:
                field = (
                    fit(
                        vertices,
                        triangles,
                        config.preset,
                        config.device,
                        config.steps,
                        config.seed,
                        learned=config.learned,
                    )
                    if point_set is None
                    else fit_points(point_set, config.preset, config.device, config.steps, config.seed)
                )
                if point_set is None and vertex_colours is not None:  # the mesh's vertex colours, carried
                    add_vertex_colours(field, vertices, triangles, vertex_colours)
                save_field(field_path, field)
                files["field"] = field_bytes = field_path.read_bytes()
                row.update(sampling_s=float(field.info["sampling_s"]), training_s=float(field.info["training_s"]))
            else:
                field_path.write_bytes(field_bytes)
                field = load_field(field_path)
        row["field_bytes"] = len(field_bytes)
        row["surfaces"] = []
        for resolution in resolutions:
            extract_start = time.monotonic()
            surface_vertices, faces = extract(
                field, resolution, config.device, surface=config.surface, adaptivity=config.adaptivity
            )
            surface = (surface_vertices, quad_surface.triangulated(faces))
            quad_faces, triangle_faces = quad_surface.quads_and_triangles(faces)
            surface_colours = colour_field.surface_colours(field, surface_vertices)
            files[resolution] = _encode_surface(surface_vertices, faces, config.surface_format, surface_colours)
            boundary, nonmanifold = edge_counts(surface[1])
            entry = {
                "resolution": resolution,
                "extract_s": round(time.monotonic() - extract_start, 3),
                "vertices": len(surface_vertices),
                "triangles": len(triangle_faces),
                **({"quads": len(quad_faces)} if config.surface == "QUADS" and not config.adaptivity else {}),
                "boundary_edges": boundary,
                "nonmanifold_edges": nonmanifold,
            }
            if config.score and point_set is None:  # points have no surface to score against
                entry.update(score_surface((vertices, triangles), surface, config.score_samples, config.seed))
            row["surfaces"].append(entry)
        row["status"] = "done"
    except (ValueError, *USER_ERRORS) as error:
        row.update(status="failed", error=str(error).splitlines()[0] if str(error) else type(error).__name__)
    except Exception as error:  # noqa: BLE001 (a bug or a library failure on one mesh must not stop the batch)
        row.update(status="failed", error=f"worker failed: {type(error).__name__}: {error}".splitlines()[0])
    if row["status"] == "failed":
        files.clear()
        row.pop("surfaces", None)
        row.pop("field_bytes", None)
    row["task_s"] = round(time.monotonic() - started, 3)
    return {"row": row, "files": files}


# --- the driver ---------------------------------------------------------------------------


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def read_manifest(out: Path) -> dict[str, dict[str, Any]]:
    """The rows of an earlier run, by input path (unreadable lines, e.g. from a killed write, are ignored)."""
    rows: dict[str, dict[str, Any]] = {}
    try:
        lines = (out / MANIFEST).read_text().splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            row = json.loads(line)
            rows[row["input"]] = row
        except (ValueError, KeyError, TypeError):
            continue
    return rows


class BatchProgress:
    """A bar on a terminal (done/failed/total, meshes a minute, time left); one plain line a mesh elsewhere."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.counts = {"done": 0, "failed": 0}
        self._stream = stream
        self._started = time.monotonic()
        self._bar = None
        if stream.isatty():
            self._bar = tqdm.tqdm(total=total, file=stream, bar_format="{percentage:3.0f}%|{bar}| {desc}")
            self._bar.set_description_str(self._figures())

    def _figures(self) -> str:
        finished = sum(self.counts.values())
        elapsed = time.monotonic() - self._started
        rate = finished / elapsed * 60 if elapsed > 0 else 0.0
        left = f"{(self.total - finished) / rate:.1f} min left" if rate > 0 else "time left unknown"
        return (
            f"{finished}/{self.total}: {self.counts['done']} done, {self.counts['failed']} failed, "
            f"{rate:.2f} meshes/min, {left}"
        )

    def update(self, row: dict[str, Any]) -> None:
        self.counts[row["status"]] += 1
        line = f"{row['status']} {row['input']} ({row.get('task_s', 0):.1f} s)" + (
            f": {row['error']}" if row.get("error") else ""
        )
        if self._bar is not None:
            if row["status"] == "failed":
                self._bar.write(line, file=self._stream)
            self._bar.set_description_str(self._figures(), refresh=False)
            self._bar.update(1)
        else:
            self._stream.write(f"{line}  [{self._figures()}]\n")
            self._stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _start_ray(cluster: ClusterConfig) -> None:
    runtime_env = {"py_modules": [str(Path(__file__).resolve().parent)]}
    if cluster.address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=cluster.address, runtime_env=runtime_env, logging_level=logging.WARNING, log_to_driver=False)
        return
    num_cpus = cluster.num_cpus or os.cpu_count() or 1
    if cluster.cpus_per_task > num_cpus:
        raise BatchError(f"--cpus-per-task {cluster.cpus_per_task:g} is more than this machine's {num_cpus} CPUs")
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        runtime_env=runtime_env,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    if cluster.gpus_per_task > ray.cluster_resources().get("GPU", 0):
        raise BatchError(f"--gpus-per-task {cluster.gpus_per_task:g}: this machine has no such GPU")


def _tasks_in_flight(cluster: ClusterConfig) -> int:
    """Enough tasks queued to keep every slot busy, few enough that queued meshes do not fill memory."""
    resources = ray.cluster_resources()
    if cluster.gpus_per_task > 0:
        slots = resources.get("GPU", 0) / cluster.gpus_per_task
    else:
        slots = resources.get("CPU", 0) / max(cluster.cpus_per_task, 1e-3)
    return 2 * max(1, int(slots)) + 4


def _skipped_row(item: MeshItem, out: Path, config: BatchConfig, earlier: dict[str, Any] | None) -> dict[str, Any]:
    row = dict(earlier or {})
    row.update(
        input=str(item.source),
        field=str(item.field_path(out).relative_to(out)),
        status="skipped",
        error="",
        field_bytes=item.field_path(out).stat().st_size,
    )
    if not earlier:
        row["surfaces"] = [
            {"resolution": r, "file": str(item.surface_path(out, r, config.surface_format).relative_to(out))}
            for r in config.resolutions
        ]
    return row


def run_batch(
    inputs: list[Path],
    out: Path,
    config: BatchConfig,
    cluster: ClusterConfig,
    stream: TextIO = sys.stderr,
) -> list[dict[str, Any]]:
    """Fit every mesh under ``inputs`` on Ray and write the outputs and ``out/manifest.jsonl``; returns the rows.

    Meshes whose outputs are complete are skipped; a mesh whose field exists but a surface is missing is only
    extracted. Raises BatchError for a run that cannot start (failed meshes are rows, not errors).
    """
    if config.surface_format not in SURFACE_FORMATS:
        raise BatchError(f"surface format {config.surface_format}: write one of {', '.join(SURFACE_FORMATS)}")
    items = find_meshes(inputs, out)
    if not items:
        raise BatchError(f"no mesh or point files ({', '.join(INPUT_SUFFIXES)}) under {' '.join(map(str, inputs))}")
    out.mkdir(parents=True, exist_ok=True)
    rows, todo = _plan(items, out, config, read_manifest(out))
    skipped = sum(row["status"] == "skipped" for row in rows)
    stream.write(f"{len(items)} meshes: {len(todo)} to do, {skipped} skipped (outputs complete)\n")
    started = time.monotonic()
    with open(out / MANIFEST, "w") as manifest:  # rewritten each run: one line a mesh, as it stands now

        def record(row: dict[str, Any]) -> None:
            manifest.write(json.dumps(row) + "\n")
            manifest.flush()

        for row in rows:
            record(row)
        try:
            if todo:
                _start_ray(cluster)
                rows += _run_tasks(todo, out, config, cluster, record, BatchProgress(len(todo), stream))
        finally:
            ray.shutdown()
    stream.write(summary_table(rows, time.monotonic() - started, out))
    return rows


def _plan(
    items: list[MeshItem], out: Path, config: BatchConfig, earlier: dict[str, dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[tuple[MeshItem, list[int], bool]]]:
    """Rows of the meshes decided before any task (skipped, or refused) and the work left:
    (mesh, surfaces to make, whether its field exists already)."""
    rows, todo = [], []
    claimed: dict[Path, MeshItem] = {}
    for item in items:
        field_path = item.field_path(out)
        if field_path in claimed:
            rows.append(
                {
                    "input": str(item.source),
                    "status": "failed",
                    "error": f"its outputs would overwrite those of {claimed[field_path].source}; rename one",
                }
            )
            continue
        claimed[field_path] = item
        missing = [r for r in config.resolutions if not item.surface_path(out, r, config.surface_format).is_file()]
        if field_path.is_file() and not missing:
            rows.append(_skipped_row(item, out, config, earlier.get(str(item.source))))
        else:
            todo.append((item, missing if field_path.is_file() else list(config.resolutions), field_path.is_file()))
    return rows, todo


def _run_tasks(
    todo: list[tuple[MeshItem, list[int], bool]],
    out: Path,
    config: BatchConfig,
    cluster: ClusterConfig,
    record: Callable[[dict[str, Any]], None],
    progress: BatchProgress,
) -> list[dict[str, Any]]:
    """Submit the tasks (a bounded number in flight), move each result into place as it arrives; the rows."""
    rows = []
    task = ray.remote(process_mesh).options(
        num_cpus=cluster.cpus_per_task, num_gpus=cluster.gpus_per_task, name="inr_batch_fit"
    )
    threads = max(1, round(cluster.cpus_per_task))
    limit = _tasks_in_flight(cluster)
    queue = list(reversed(todo))
    pending: dict[ray.ObjectRef, tuple[MeshItem, float]] = {}

    def finished(row: dict[str, Any]) -> None:
        rows.append(row)
        record(row)
        progress.update(row)

    try:
        while queue or pending:
            while queue and len(pending) < limit:
                item, resolutions, has_field = queue.pop()
                try:
                    mesh_bytes = item.source.read_bytes()
                    field_bytes = item.field_path(out).read_bytes() if has_field else None
                except OSError as error:
                    finished(
                        {"input": str(item.source), "status": "failed", "error": f"cannot read it ({error.strerror})"}
                    )
                    continue
                reference = task.remote(
                    item.source.suffix, mesh_bytes, field_bytes, tuple(resolutions), config, threads
                )
                pending[reference] = (item, time.monotonic())
            if not pending:
                continue
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for reference in ready:
                item, submitted = pending.pop(reference)
                row = _collect(reference, item, out, config)
                row["wall_s"] = round(time.monotonic() - submitted, 3)
                finished(row)
    finally:
        for reference in pending:
            ray.cancel(reference, force=True)
        progress.close()
    return rows


def _collect(reference: ray.ObjectRef, item: MeshItem, out: Path, config: BatchConfig) -> dict[str, Any]:
    """The task's row, with its files moved into place (field first: a surface never lacks its field)."""
    try:
        result = ray.get(reference)
    except ray.exceptions.RayError as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return {"input": str(item.source), "status": "failed", "error": f"the task failed: {message}"}
    row = {"input": str(item.source), "field": str(item.field_path(out).relative_to(out)), **result["row"]}
    row.setdefault("error", "")
    if row["status"] != "done":
        return row
    files = result["files"]
    if "field" in files:
        _write_atomically(item.field_path(out), files["field"])
    for surface in row["surfaces"]:
        path = item.surface_path(out, surface["resolution"], config.surface_format)
        _write_atomically(path, files[surface["resolution"]])
        surface["file"] = str(path.relative_to(out))
    return row


def summary_table(rows: list[dict[str, Any]], wall_s: float, out: Path) -> str:
    """Counts by status, mean times and sizes, scores when present, and the failures with their reasons."""
    lines = ["", f"{'status':8}  {'meshes':>6}  {'mean task s':>11}  {'mean field MB':>13}"]
    for status in ("done", "skipped", "failed"):
        chosen = [row for row in rows if row["status"] == status]
        times = [row["task_s"] for row in chosen if "task_s" in row]
        sizes = [row["field_bytes"] / 1e6 for row in chosen if "field_bytes" in row]
        mean_time = f"{np.mean(times):.1f}" if times else "-"
        mean_size = f"{np.mean(sizes):.2f}" if sizes else "-"
        lines.append(f"{status:8}  {len(chosen):6d}  {mean_time:>11}  {mean_size:>13}")
    done = [row for row in rows if row["status"] == "done"]
    scored = [surface for row in done for surface in row["surfaces"] if "chamfer_l1" in surface]
    if scored:
        lines.append(
            f"scores over {len(scored)} surfaces: mean Chamfer-L1 {np.mean([s['chamfer_l1'] for s in scored]):.2e}, "
            f"mean IoU {np.mean([s['iou'] for s in scored]):.4f}, worst IoU {min(s['iou'] for s in scored):.4f}"
        )
    open_surfaces = sum(
        1 for row in done for s in row["surfaces"] if s.get("boundary_edges") or s.get("nonmanifold_edges")
    )
    rate = len(done) / wall_s * 60 if wall_s > 0 else 0.0
    lines.append(
        f"{len(done)} fitted in {wall_s:.1f} s ({rate:.2f} meshes/min); "
        f"{open_surfaces} surfaces with boundary or non-manifold edges; manifest: {out / MANIFEST}"
    )
    lines += [f"failed: {row['input']}: {row['error']}" for row in rows if row["status"] == "failed"]
    return "\n".join(lines) + "\n"
