"""Fit and extract, as library calls and as jobs that Blender starts in a worker process."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from . import protocol
from .fields import colour_field, operations
from .fields.band_field import BandField
from .fields.field_file import StoredField, save_field
from .fields.grid_field import TrainedDistance, train_on_points
from .fields.image_field import fit_image_field, load_image_field, save_image_field
from .fields.learned_band import LearnedBandField, residual_within, scale_to_surface, train_residual
from .memory import check_memory, estimate_memory_for_mesh, estimate_memory_for_points
from .progress import EventProgress, Progress
from .sources.points import PointSet, point_set_of, prepare_points
from .sources.sampling import InputError, coarse_distances, narrow_band, near_samples, sample_band, surface_points
from .sources.silhouette import ShapeConfig, ShapeDistance, SilhouetteShape, View
from .surface import quad_surface
from .surface.adaptivity import simplifier, simplify
from .surface.extract import NoSurfaceError, extract_surface, grid_frame
from .surface.surface_projection import (
    RELAX_WEIGHT,
    CreaseLines,
    Creases,
    FieldProjection,
    Projector,
    SourceProjection,
    crease_segments,
    settle,
)
from .train import LEARNED_PRESETS, POINTS_PRESETS, PRESETS, pick_device, train_field

WIDTH_SPACINGS = 1.5  # the points' moving-least-squares width, in point spacings, or
WIDTH_NOISE = 2.5  # in their scatter about their local planes, or
WIDTH_CELLS = 0.8  # in the fit's cells (so that it reaches across the band on dense clouds), whichever is widest
MAX_STORED_CREASES = 250_000  # a field keeps its source's sharp edges up to this many (24 bytes each)
PROJECTION_MAX_VERTICES = 4_000_000  # larger surfaces (2048 cells) keep marching cubes' vertices: bounded memory
POINTS_ISLAND_SHARE = 0.01  # pieces of a points fit under this share of its largest solid's volume are dropped
USER_ERRORS = (InputError, NoSurfaceError, protocol.ProtocolError, operations.OperationError, RuntimeError, OSError)


def fit(
    vertices: np.ndarray,
    triangles: np.ndarray,
    preset: str = "BALANCED",
    device: str = "AUTO",
    steps: int = 0,
    seed: int = 0,
    progress: Progress | None = None,
    learned: bool = False,
) -> StoredField:
    """Sample the exact signed distance on the mesh's narrow band; with ``steps`` (or the preset's), refit
    the band's values to it at points between the grid points. ``learned``: train a residual on top of the
    band instead (``steps`` are then its steps)."""
    progress = progress or Progress()
    settings = PRESETS[preset]
    torch_device = pick_device(device)
    config = settings.field
    started = time.monotonic()
    progress.stage("sampling", f"narrow band at {config.resolution} cells, {len(triangles)} triangles")
    band = sample_band(vertices, triangles, config)
    model = BandField(config, *(torch.from_numpy(array) for array in band.arrays()))
    sampled = time.monotonic()
    if learned:
        training = LEARNED_PRESETS[preset]
        points, distances = near_samples(band.distance, training.samples, training.sigma_cells * config.cell, seed)
        sampled = time.monotonic()
        progress.stage(
            "training",
            f"learned residual, {steps or training.steps} steps on {torch_device.type}, {len(band.keys)} bricks, "
            f"after {sampled - started:.1f} s of sampling",
        )
        band_bytes = sum(array.nbytes for array in model.stored_arrays().values())
        residual = residual_within(training.residual, band.keys, config, band_bytes, training.max_bytes)
        learned_model = LearnedBandField.around(model, residual)
        model = train_residual(learned_model, points, distances, training, torch_device, seed, progress.step, steps)
        rng = np.random.default_rng(seed + 1)  # surface points other than the training samples' origins
        held_out = surface_points(band.distance.vertices, band.distance.triangles, training.surface_checks, rng)
        scale_to_surface(model, held_out)
    elif steps := steps or settings.steps:
        points, distances = near_samples(
            band.distance, settings.samples, settings.sample_sigma_cells * config.cell, seed
        )
        sampled = time.monotonic()
        progress.stage(
            "training",
            f"{steps} steps on {torch_device.type}, {len(band.keys)} bricks, after {sampled - started:.1f} s of sampling",
        )
        model = train_field(model, points, distances, settings, torch_device, steps, seed, progress.step)
    trained = time.monotonic()
    unit_vertices = band.distance.vertices
    info = {
        "preset": preset,
        "device": torch_device.type,
        "sampling_s": f"{sampled - started:.2f}",
        "training_s": f"{trained - sampled:.2f}",
        "torch": torch.__version__,
        **({"learned": "residual"} if learned else {}),
    }
    creases = crease_segments(unit_vertices, band.distance.triangles)
    return StoredField(
        model=model.cpu(),
        frame=band.frame,
        low=unit_vertices.min(0),
        high=unit_vertices.max(0),
        info=info,
        creases=creases if len(creases) <= MAX_STORED_CREASES else None,
    )


def fit_points(
    point_set: PointSet,
    preset: str = "BALANCED",
    device: str = "AUTO",
    steps: int = 0,
    seed: int = 0,
    progress: Progress | None = None,
) -> StoredField:
    """Train a field on points (a scan): normals estimated and oriented where they carry none, then the
    trained field sampled on the narrow band like a mesh's exact distance."""
    progress = progress or Progress()
    settings, config = POINTS_PRESETS[preset], PRESETS[preset].field
    torch_device = pick_device(device)
    started = time.monotonic()
    known = "their own normals" if point_set.normals is not None else "estimating and orienting normals"
    progress.stage("normals", f"{len(point_set.points)} points, {known}")
    prepared = prepare_points(point_set)
    prepared_at = time.monotonic()
    progress.stage("training", f"{steps or settings.steps} steps on {torch_device.type}")
    trained = train_on_points(prepared, config.resolution, settings, torch_device, steps, seed, progress.step)
    trained_at = time.monotonic()
    progress.stage("sampling", f"narrow band at {config.resolution} cells")
    width = max(WIDTH_SPACINGS * prepared.spacing, WIDTH_NOISE * prepared.noise, WIDTH_CELLS * config.cell)
    distance = TrainedDistance(trained, prepared, torch_device, width)
    keys, values, inside = narrow_band(distance, config)
    if not inside.any() and not (values < 0).any():
        raise InputError("no surface found: the points enclose no volume")
    coarse = coarse_distances(distance, config)
    model = BandField(config, *(torch.from_numpy(array) for array in (keys, values, inside, coarse)))
    info = {
        "preset": preset,
        "device": torch_device.type,
        "source": "POINTS",
        "points": str(len(prepared.points)),
        "normals_s": f"{prepared_at - started:.2f}",
        "training_s": f"{trained_at - prepared_at:.2f}",
        "sampling_s": f"{time.monotonic() - trained_at:.2f}",
        "torch": torch.__version__,
    }
    low, high = prepared.points.min(0), prepared.points.max(0)
    colours = None
    if prepared.colors is not None:  # the points' colours, carried by the field
        colours = colour_field.points_colour_set(model, prepared.points, prepared.colors)
    return StoredField(model=model, frame=prepared.frame, low=low, high=high, info=info, colours=colours)


def fit_shape(
    views: list[View],
    config: ShapeConfig,
    preset: str = "BALANCED",
    device: str = "AUTO",
    progress: Progress | None = None,
) -> StoredField:
    """The field of the solid that reference images describe (inflated silhouette or visual hull): its
    signed distance sampled on the narrow band, as a mesh's is."""
    progress = progress or Progress()
    settings = PRESETS[preset]
    started = time.monotonic()
    pixels = sum(view.mask.size for view in views)
    progress.stage("sampling", f"{config.mode.lower()} of {len(views)} image(s), {pixels / 1e6:.1f} Mpixels")
    distance = ShapeDistance(SilhouetteShape(views, config))
    keys, values, inside = narrow_band(distance, settings.field)
    if not inside.any() and not (values < 0).any():
        raise InputError("no silhouette found: the solid has no volume")
    coarse = coarse_distances(distance, settings.field)
    model = BandField(settings.field, *(torch.from_numpy(array) for array in (keys, values, inside, coarse)))
    info = {
        "preset": preset,
        "device": pick_device(device).type,
        "source": config.mode,
        "sampling_s": f"{time.monotonic() - started:.2f}",
        "training_s": "0.00",
        "torch": torch.__version__,
    }
    low, high = (distance.frame.to_unit(bound) for bound in (distance.shape.low, distance.shape.high))
    return StoredField(model=model, frame=distance.frame, low=low, high=high, info=info)


def read_views(path: Path) -> list[View]:
    """The views of a ``fit_shape`` job: ``mask_<i>``, ``to_common_<i>``, ``rect_<i>`` for i = 0, 1, ..."""
    with np.load(path) as arrays:
        count = sum(1 for name in arrays.files if name.startswith("mask_"))
        return [
            View(mask=arrays[f"mask_{i}"] > 0, to_common=arrays[f"to_common_{i}"], rect=arrays[f"rect_{i}"])
            for i in range(count)
        ]


def run_image_job(job_dir: Path, spec: protocol.JobSpec, progress: Progress) -> None:
    """``fit_image``: fit the image and render it; ``resample_image``: render a stored field."""
    torch_device = pick_device(spec.device)
    if spec.task == "fit_image":
        with np.load(job_dir / spec.image) as image:
            pixels = image["pixels"]
        try:
            field = fit_image_field(pixels, spec.preset, torch_device, spec.steps, spec.seed, progress)
        except ValueError as error:
            raise InputError(str(error)) from error
        save_image_field(job_dir / spec.image_field, field)
    else:
        field = load_image_field(job_dir / spec.image_field)
    progress.stage("rendering", f"{spec.width}x{spec.height} pixels")
    rendered = field.render(spec.width, spec.height, torch_device)
    partial = job_dir / (spec.rendered + ".partial.npz")
    np.savez(partial, pixels=rendered)
    os.replace(partial, job_dir / spec.rendered)


def extract(
    field: StoredField | operations.CompositeField,
    resolution: int,
    device: str = "AUTO",
    progress: Progress | None = None,
    memory_limit: int | None = None,
    source: tuple[np.ndarray, np.ndarray] | None = None,
    surface: str = "TRIANGLES",
    adaptivity: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The surface of a fitted or a composite field at ``resolution`` cells along the longest side, in its
    object's coordinates. With ``source``, the mesh that the field was fitted to (vertices, triangles in
    the same coordinates), the vertices go onto it where it bounds the solid; without, onto the field's
    zero level and the sharp edges it kept (``surface_projection``). ``surface``: ``"TRIANGLES"`` (marching
    cubes; faces (T, 3)) or ``"QUADS"`` (its dual, ``quad_surface``; faces (F, 4), where a triangle's fourth
    index is -1).
    ``adaptivity`` above 0 merges triangles where the surface is flat (``adaptivity``) and gives triangles
    whichever ``surface`` is asked for, as Voxel Remesh's adaptivity does.

    Raises MemoryLimitError, before the surface is meshed, when it would need more than ``memory_limit``
    bytes (default: the memory free now); for a composite, OperationError where nothing is left."""
    progress = progress or Progress()
    composite = field if isinstance(field, operations.CompositeField) else None
    what = f"{composite.operation.kind.lower()} at " if composite else ""
    progress.stage("extracting", f"{what}resolution {resolution}")
    torch_device = pick_device(device)
    try:
        vertices, triangles = extract_surface(
            field.model.to(torch_device),
            field.low,
            field.high,
            resolution,
            torch_device,
            memory_limit,
            lambda done, total: progress.step(done, total, 0.0),
        )
    except NoSurfaceError as error:
        if composite is None:
            raise
        raise operations.OperationError(operations.empty_message(composite.operation)) from error
    if composite is not None:
        vertices, triangles = operations.finish_surface(composite, vertices, triangles, torch_device)
    elif field.info.get("source") == "POINTS":  # a scan's stray points can leave specks beside the solid
        vertices, triangles = operations.drop_islands(vertices, triangles, POINTS_ISLAND_SHARE)
    if adaptivity > 0:  # the merged surface is triangles, whichever surface was asked for
        surface = "TRIANGLES"
    faces, relax, cell = triangles, RELAX_WEIGHT, 1 / resolution
    if surface == "QUADS":  # the dual's vertices are evenly spread and on sharp edges already: no smoothing
        relax = 0.0
        progress.stage("quads", f"dual of {len(triangles)} triangles")
        origin, _ = grid_frame(field.model, field.low, field.high, resolution)
        gradient = quad_surface.field_gradient(field.model, cell, torch_device)
        vertices, quads, fans = quad_surface.quad_surface(vertices, triangles, origin, cell, gradient)
        faces, triangles = quad_surface.as_faces(quads, fans), quad_surface.split_quads(quads, fans)
    project, creases = _projection(field, cell, torch_device, source, composite is None, len(vertices))
    if project is not None:
        progress.stage("projecting", f"{len(vertices)} vertices onto the {'source' if source is not None else 'field'}")
        vertices = settle(vertices, triangles, project, cell, creases, relax)
    if adaptivity > 0:
        progress.stage("adaptivity", f"merging flat parts of {len(triangles)} triangles")
        vertices, faces = simplify(vertices, triangles, adaptivity, cell)
        if project is not None:  # the merged vertices sit on the merged triangles' planes: onto the surface again
            vertices = settle(vertices, faces, project, cell, creases, relax=0.0)
    if surface == "QUADS":
        faces = quad_surface.surface_diagonals_first(vertices, faces, field.model, torch_device)
    return field.frame.from_unit(vertices), faces


def _projection(
    field: StoredField | operations.CompositeField,
    cell: float,
    device: torch.device,
    source: tuple[np.ndarray, np.ndarray] | None,
    fitted: bool,
    vertex_count: int,
) -> tuple[Projector | None, Creases | None]:
    """Where an extracted surface's vertices go: onto the ``source`` (and its creases) where it is at hand,
    else onto the field's zero level (and the source's creases, where the field kept them); nowhere for a
    composite (``fitted`` false) or a surface too large."""
    if not fitted or vertex_count > PROJECTION_MAX_VERTICES:  # as marching cubes puts them: bounded memory
        return None, None
    if source is not None:
        to_source = SourceProjection(field.frame.to_unit(np.asarray(source[0], np.float64)), source[1], cell)
        return to_source, to_source.onto_creases
    kept = field.creases if isinstance(field, StoredField) else None
    return FieldProjection(field.model, cell, device), None if kept is None else CreaseLines(kept, cell)


def warm_up() -> None:
    """Fit and extract a tetrahedron on the CPU, so that the first calls into torch, libigl and scikit-image
    (about 0.2 s of a real job's time) are made before a job waits for them."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    triangles = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    extract(fit(vertices, triangles, "FAST", "CPU"), 16, "CPU", source=(vertices, triangles))


def _watch_parent(parent_pid: int) -> None:
    """End this process when the process that started it is gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(3)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(3)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def run_job(job_dir: Path) -> int:
    """Carry out the job in ``job_dir``; returns the exit status (0 done, 1 failed)."""
    events = protocol.EventWriter(job_dir / protocol.EVENTS_FILE)
    try:
        spec = protocol.JobSpec.read(job_dir)
        if spec.adaptivity > 0:
            simplifier()  # before any work: a worker set up before adaptivity existed lacks its package
        if spec.parent_pid:
            _watch_parent(spec.parent_pid)
        if spec.threads:
            torch.set_num_threads(spec.threads)
        progress = EventProgress(events)
        field: StoredField | operations.CompositeField
        source = None  # the fitted mesh, where the job has it
        if spec.task in protocol.IMAGE_TASKS:
            run_image_job(job_dir, spec, progress)
            events.emit("done", width=spec.width, height=spec.height)
            return 0
        if spec.task == "fit_shape":
            config = ShapeConfig(mode=spec.mode, thickness=spec.thickness, rounded=spec.rounded)
            views = read_views(job_dir / spec.views)
            shaped = fit_shape(views, config, spec.preset, spec.device, progress)
            save_field(job_dir / spec.field, shaped)
            field = shaped
        elif spec.task == "fit":
            with np.load(job_dir / spec.mesh) as mesh:
                vertices, triangles = mesh["vertices"], mesh["triangles"]
                coloured_mesh = (vertices, triangles)
                if "parts" in mesh:  # several objects fitted as one solid
                    vertices, triangles = operations.union_of_parts(vertices, triangles, mesh["parts"])
            samples = LEARNED_PRESETS[spec.preset].samples if spec.learned else 0
            band_resolution = PRESETS[spec.preset].field.resolution
            needed = estimate_memory_for_mesh(vertices, triangles, spec.resolution, samples, band_resolution)
            check_memory(needed, spec.resolution)
            fitted = fit(vertices, triangles, spec.preset, spec.device, spec.steps, spec.seed, progress, spec.learned)
            add_mesh_colours(fitted, *coloured_mesh, job_dir / protocol.COLOUR_FILE, progress)
            save_field(job_dir / spec.field, fitted)
            field, source = fitted, (vertices, triangles)
        elif spec.task == "fit_points":
            with np.load(job_dir / spec.points) as arrays:
                check_memory(estimate_memory_for_points(len(arrays["points"]), spec.resolution), spec.resolution)
                point_set = point_set_of(arrays)
            fitted = fit_points(point_set, spec.preset, spec.device, spec.steps, spec.seed, progress)
            save_field(job_dir / spec.field, fitted)
            field = fitted
        elif spec.task == "operate":
            field = operations.operate_job(job_dir, spec)
        else:
            field = operations.load_any_field(job_dir / spec.field)
        vertices, faces = extract(
            field,
            spec.resolution,
            spec.device,
            progress,
            source=source,
            surface=spec.surface_kind,
            adaptivity=spec.adaptivity,
        )
        write_job_surface(job_dir / spec.surface, vertices, faces, colour_field.surface_colours(field, vertices))
        events.emit("done", vertices=len(vertices), faces=len(faces))
        return 0
    except USER_ERRORS as error:
        events.emit("error", message=str(error))
        return 1
    except Exception as error:
        events.emit("error", message=f"worker failed: {type(error).__name__}: {error}")
        raise
    finally:
        events.close()


def add_mesh_colours(
    field: StoredField, vertices: np.ndarray, triangles: np.ndarray, path: Path, progress: Progress
) -> None:
    """Give a mesh's field the colours in ``path`` (a job's colour file), where there is one."""
    if not path.is_file():
        return
    started = time.monotonic()
    with np.load(path) as arrays:
        colours = colour_field.MeshColours.of(arrays)
    if colours is None:
        return
    try:
        colours.check(len(triangles))
    except ValueError as error:
        raise protocol.ProtocolError(f"the job's colours do not fit its mesh: {error}") from error
    progress.stage("colour", f"colours of {len(triangles)} triangles, {len(colours.images)} texture(s)")
    _store_mesh_colours(field, vertices, triangles, colours)
    field.info["colour_s"] = f"{time.monotonic() - started:.2f}"


def add_vertex_colours(
    field: StoredField, vertices: np.ndarray, triangles: np.ndarray, vertex_colours: np.ndarray
) -> None:
    """Give a mesh's field its vertex colours (V, 3), linear (a PLY's or glTF's, read by the command line)."""
    colours = colour_field.MeshColours(corner_colors=np.asarray(vertex_colours, np.float32)[triangles])
    _store_mesh_colours(field, vertices, triangles, colours)


def _store_mesh_colours(
    field: StoredField, vertices: np.ndarray, triangles: np.ndarray, colours: colour_field.MeshColours
) -> None:
    """Sample the mesh's colours onto the field's colour store."""
    unit_vertices = field.frame.to_unit(np.asarray(vertices, np.float64))
    field.colours = colour_field.mesh_colour_set(field.model, unit_vertices, np.asarray(triangles, np.int64), colours)


def write_job_surface(path: Path, vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray | None = None) -> None:
    """Write a job's surface as ``.npz`` (vertices float32, triangles int32, quads int32 where ``faces`` has
    four columns (a -1 fourth index marks a triangle), and colours (V, 3) float32 linear where the field has
    colour), atomically."""
    partial = path.with_name(path.name + ".partial.npz")
    arrays = {"vertices": vertices.astype(np.float32)}
    quads, triangles = quad_surface.quads_and_triangles(faces)
    if faces.shape[1] == 4:
        arrays["quads"] = quads.astype(np.int32)
    arrays["triangles"] = triangles.astype(np.int32)
    if colours is not None:
        arrays["colors"] = np.asarray(colours, np.float32)
    np.savez(partial, **arrays)
    os.replace(partial, path)
