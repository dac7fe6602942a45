"""Command line: ``python -m inr_worker fit|extract|run|check`` (with the add-on folder on PYTHONPATH)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import typing
from pathlib import Path
from typing import Any

import igl
import numpy as np
import torch

from . import protocol
from .fields.colour_field import surface_colours
from .fields.field_file import save_field
from .fields.operations import load_field_bytes
from .jobs import USER_ERRORS, add_vertex_colours, extract, fit, fit_points, run_job
from .memory import check_memory, estimate_memory_for_points
from .progress import TerminalProgress
from .sources.points import is_point_file, ply_point_count, read_points
from .sources.sampling import InputError
from .surface.adaptivity import simplifier
from .surface.surface_file import surface_suffix_problem, write_surface
from .train import pick_device


def _read_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise OSError(f"{path}: no such file")
    vertices, triangles = igl.read_triangle_mesh(str(path))[:2]
    if len(triangles) == 0:
        raise protocol.ProtocolError(f"{path}: no triangles could be read")
    return vertices, triangles


def _read_vertex_colours(path: Path, vertex_count: int) -> np.ndarray | None:
    """A PLY mesh's vertex colours (``red green blue``), linear, or None where it has none (or other formats)."""
    if path.suffix.lower() != ".ply":
        return None
    try:
        colours = read_points(path).colors
    except InputError:  # vertex properties this cannot read: the mesh fits without colour
        return None
    if colours is None or len(colours) != vertex_count or not np.isfinite(colours).all():
        return None
    return colours


class ArgumentParser(argparse.ArgumentParser):
    """Bad arguments are one line on stderr and exit status 1, like every other bad input."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(1, f"inr_worker: error: {message} (see inr_worker {self._command()}--help)\n")

    def _command(self) -> str:
        words = self.prog.split()[1:]
        return " ".join(words) + " " if words else ""


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse bad files and paths before any work: inputs that are missing, outputs that cannot be written."""
    inputs = {"fit": ["mesh"], "extract": ["field"], "batch": []}.get(args.command, [])
    for path in [getattr(args, name) for name in inputs] + (args.inputs if args.command == "batch" else []):
        if not path.exists():
            raise OSError(f"{path}: no such file")
    if getattr(args, "adaptivity", 0.0) > 0:
        simplifier()
    if args.command not in ("fit", "extract"):
        return
    if args.out is not None and (problem := surface_suffix_problem(args.out)):
        raise OSError(problem)
    for path in (args.field if args.command == "fit" else None, args.out):
        if path is not None and not path.parent.is_dir():
            raise OSError(f"{path.parent}: no such folder")


def _resolution(text: str) -> int:
    value = int(text)
    if not protocol.MIN_RESOLUTION <= value <= protocol.MAX_RESOLUTION:
        raise argparse.ArgumentTypeError(f"{value} is outside {protocol.MIN_RESOLUTION}..{protocol.MAX_RESOLUTION}")
    return value


def _adaptivity(text: str) -> float:
    value = float(text)
    low, high = protocol.ADAPTIVITY_RANGE
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
    return value


def _command_fit(args: argparse.Namespace) -> None:
    progress = TerminalProgress()
    started = time.monotonic()
    if is_point_file(args.mesh):
        count = ply_point_count(args.mesh) if args.mesh.suffix.lower() == ".ply" else None
        if count is not None:  # refused from the header, before the points are read
            check_memory(estimate_memory_for_points(count, args.resolution), args.resolution)
        point_set = read_points(args.mesh)
        check_memory(estimate_memory_for_points(len(point_set.points), args.resolution), args.resolution)
        field = fit_points(point_set, args.preset, args.device, args.steps, args.seed, progress)
    else:
        vertices, triangles = _read_mesh(args.mesh)
        field = fit(vertices, triangles, args.preset, args.device, args.steps, args.seed, progress, args.learned)
        if (vertex_colours := _read_vertex_colours(args.mesh, len(vertices))) is not None:
            add_vertex_colours(field, vertices, triangles, vertex_colours)
    save_field(args.field, field)
    print(f"field written to {args.field} ({time.monotonic() - started:.1f} s)", file=sys.stderr)
    if args.out:
        _extract_to(field, args, None if is_point_file(args.mesh) else (vertices, triangles))


def _command_extract(args: argparse.Namespace) -> None:
    data = args.field.read_bytes()
    if problem := protocol.field_file_problem(data):
        raise protocol.ProtocolError(f"{args.field}: {problem}")
    _extract_to(load_field_bytes(data), args)


def _extract_to(field, args: argparse.Namespace, source: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Extract ``field`` to ``args.out``; with ``source``, the mesh it was fitted to, onto that mesh."""
    started = time.monotonic()
    vertices, faces = extract(
        field,
        args.resolution,
        args.device,
        TerminalProgress(),
        source=source,
        surface=args.surface,
        adaptivity=args.adaptivity,
    )
    write_surface(args.out, vertices, faces, surface_colours(field, vertices))
    kind = "triangles" if faces.shape[1] == 3 else "faces"
    print(
        f"{len(vertices)} vertices, {len(faces)} {kind} written to {args.out} ({time.monotonic() - started:.1f} s)",
        file=sys.stderr,
    )


def _command_check(args: argparse.Namespace) -> None:
    device = pick_device(args.device)
    print(
        json.dumps(
            {
                "python": sys.executable,
                "python_version": platform.python_version(),
                "torch": torch.__version__,
                "device": device.type,
                "cpu_threads": torch.get_num_threads(),
                "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
                "mps": torch.backends.mps.is_available(),
            }
        )
    )


def _command_batch(args: argparse.Namespace) -> None:
    try:
        from . import batch
    except ImportError as error:
        raise RuntimeError(f"batch needs Ray ({error}); pip install -r requirements-batch.txt") from error
    config = batch.BatchConfig(
        preset=args.preset,
        resolutions=tuple(args.resolution),
        steps=args.steps,
        seed=args.seed,
        device=args.device,
        learned=args.learned,
        surface_format=args.format,
        surface=args.surface,
        adaptivity=args.adaptivity,
        score=args.score,
        score_samples=args.score_samples,
    )
    cluster = batch.ClusterConfig(
        address=args.address,
        num_cpus=args.num_cpus,
        cpus_per_task=args.cpus_per_task,
        gpus_per_task=args.gpus_per_task,
    )
    rows = batch.run_batch(args.inputs, args.out, config, cluster)
    failed = sum(row["status"] == "failed" for row in rows)
    if failed:
        raise batch.BatchError(f"{failed} of {len(rows)} meshes failed; see {args.out / batch.MANIFEST}")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="inr_worker", description="Fit neural fields to meshes and extract their surfaces at any resolution."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    device: dict[str, Any] = {"choices": protocol.DEVICES, "default": "AUTO", "help": "compute device (default AUTO)"}
    surface: dict[str, Any] = {
        "type": str.upper,
        "choices": protocol.SURFACE_NAMES,
        "default": "TRIANGLES",
        "help": "triangles (marching cubes, default) or quads (its dual, sharp edges kept)",
    }
    adaptivity: dict[str, Any] = {
        "type": _adaptivity,
        "default": 0.0,
        "help": "0..1: merge flat parts into larger triangles, keeping about 4^-A of the vertices (default 0)",
    }

    fit_parser = commands.add_parser(
        "fit", help="fit a field to a mesh (OBJ, PLY, OFF, STL) or to points (XYZ, PTS, or a PLY/OBJ without faces)"
    )
    fit_parser.add_argument("mesh", type=Path)
    fit_parser.add_argument("--field", type=Path, required=True, help="where to write the field (.safetensors)")
    fit_parser.add_argument("--preset", choices=protocol.PRESET_NAMES, default="BALANCED")
    fit_parser.add_argument(
        "--steps", type=int, default=0, help="refinement steps (default: the preset's; meshes need none)"
    )
    fit_parser.add_argument("--seed", type=int, default=0)
    fit_parser.add_argument(
        "--learned", action="store_true", help="meshes: train a residual on top of the stored band (see docs/meshes.md)"
    )
    fit_parser.add_argument("--out", type=Path, help="also extract the surface to this mesh file")
    fit_parser.add_argument("--resolution", type=_resolution, default=256, help="cells along the longest side")
    fit_parser.add_argument("--surface", **surface)
    fit_parser.add_argument("--adaptivity", **adaptivity)
    fit_parser.add_argument("--device", **device)
    fit_parser.set_defaults(run=_command_fit)

    extract_parser = commands.add_parser(
        "extract", help="extract the surface of a fitted or a composite field (combine, offset, morph)"
    )
    extract_parser.add_argument("field", type=Path)
    extract_parser.add_argument("--out", type=Path, required=True, help="mesh file to write (.obj, .ply, ...)")
    extract_parser.add_argument("--resolution", type=_resolution, default=256, help="cells along the longest side")
    extract_parser.add_argument("--surface", **surface)
    extract_parser.add_argument("--adaptivity", **adaptivity)
    extract_parser.add_argument("--device", **device)
    extract_parser.set_defaults(run=_command_extract)

    run_parser = commands.add_parser("run", help="run a job directory written by the Blender add-on")
    run_parser.add_argument("job_dir", type=Path)

    batch_parser = commands.add_parser(
        "batch", help="fit every mesh under the inputs on Ray (local, or a cluster with --address / RAY_ADDRESS)"
    )
    batch_parser.add_argument("inputs", nargs="+", type=Path, help="mesh files and folders (searched recursively)")
    batch_parser.add_argument("--out", type=Path, required=True, help="output folder (fields, surfaces, manifest)")
    batch_parser.add_argument("--preset", choices=protocol.PRESET_NAMES, default="BALANCED")
    batch_parser.add_argument(
        "--resolution", type=_resolution, nargs="+", default=[256], help="one surface a resolution (default 256)"
    )
    batch_parser.add_argument(
        "--steps", type=int, default=0, help="refinement steps (default: the preset's; meshes need none)"
    )
    batch_parser.add_argument("--seed", type=int, default=0)
    batch_parser.add_argument("--learned", action="store_true", help="meshes: train a residual on top of the band")
    batch_parser.add_argument("--format", choices=("obj", "ply", "off", "stl"), default="obj", help="surface files")
    batch_parser.add_argument(
        "--score", action="store_true", help="Chamfer-L1, F-score, normal consistency and IoU against each input"
    )
    batch_parser.add_argument("--score-samples", type=int, default=100_000, help="points per score (default 100000)")
    batch_parser.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    batch_parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all of this machine's)")
    batch_parser.add_argument("--cpus-per-task", type=float, default=1.0, help="CPUs (and torch threads) a mesh")
    batch_parser.add_argument("--gpus-per-task", type=float, default=0.0, help="GPUs a mesh (e.g. 1, or 0.5 to share)")
    batch_parser.add_argument("--surface", **surface)
    batch_parser.add_argument("--adaptivity", **adaptivity)
    batch_parser.add_argument("--device", **device)
    batch_parser.set_defaults(run=_command_batch)

    check_parser = commands.add_parser("check", help="print the torch version and the device found")
    check_parser.add_argument("--device", **device)
    check_parser.set_defaults(run=_command_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":  # the job's files are complete: skip the slow teardown of torch's modules
        status = run_job(args.job_dir)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    try:
        _check_arguments(args)
        args.run(args)
    except USER_ERRORS as error:
        print(f"inr_worker: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("inr_worker: interrupted", file=sys.stderr)
        return 130
    return 0
