"""What crosses between Blender and the worker process. Standard library only.

A job is a directory holding ``job.json`` (a :class:`JobSpec`), the input arrays and,
as the worker runs, ``events.jsonl``: one JSON object a line, the last of which is
``{"event": "done"}`` or ``{"event": "error", "message": ...}``. Fields are stored as
safetensors files (a JSON header and raw little-endian arrays), which this module
reads and writes without numpy, so that Blender can check a stored field cheaply and a
field file never holds executable data.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FIELD_FORMAT = "inr_addon.field"
COMPOSITE_KEY = "composite"  # metadata entry (JSON) that marks a composite field (inr_worker.fields.operations)
COLOUR_VALUES = "colour.values"  # optional tensor of a fitted field: its colours (inr_worker.fields.colour_field)
COLOUR_MESH_VERTICES, COLOUR_MESH_TRIANGLES, COLOUR_MESH_COLOURS = (
    "colour.vertices",
    "colour.triangles",
    "colour.corners",
)
# fit: the mesh's colours per triangle corner, UVs and textures (inr_worker.fields.colour_field)
COLOUR_FILE = "colours.npz"
CREASES = "creases"  # optional tensor of a mesh's field: its source's sharp edges, segments (E, 2, 3) in the unit frame
FIELD_FORMAT_VERSION = 4  # 4: sparse narrow band of int16 bricks and a coarse distance grid
READABLE_FIELD_VERSIONS = {"3": "I8", "4": "I16"}  # format version: its band values' type (older: re-fit those)
DOMAIN_HALF_EXTENT = 0.6  # a field covers [-0.6, 0.6]^3 of its mesh's unit frame
FIELD_RESOLUTIONS = (16, 1024)  # the fine grid's cells per unit length a field may have
FIELD_BRICKS = (2, 4, 8)  # brick sides a field may have
FIELD_COARSE_POINTS = (2, 256)  # points per side of a field's coarse distance grid
FIELD_KIND_KEY = "field_kind"  # metadata entry: absent for the stored band, LEARNED_KIND for band + learned residual
LEARNED_KIND = "learned_band"
RESIDUAL_CONFIG_KEY = "residual_config"  # metadata entry (JSON) of a learned field: its residual's shape
RESIDUAL_LEVEL_CELLS = (1, 2, 4, 8)  # a residual level's cell, in band cells
RESIDUAL_MAX_LEVELS = 4
RESIDUAL_CHANNELS = (1, 16)  # features per grid point of a residual level
RESIDUAL_HIDDEN = (1, 64)  # width of the residual's decoder

PRESETS: tuple[tuple[str, str, str], ...] = (
    ("FAST", "Fast", "Keeps detail up to resolution 192: a smaller field and a slightly quicker fit"),
    ("BALANCED", "Balanced", "Keeps detail up to resolution 256; seconds for most meshes on a laptop CPU"),
    ("QUALITY", "Quality", "Keeps detail up to resolution 512, for close-ups; a larger field and a longer fit"),
)
PRESET_NAMES = tuple(name for name, _, _ in PRESETS)
DEVICES = ("AUTO", "CPU", "CUDA", "MPS")
MIN_RESOLUTION = 16
SURFACES: tuple[tuple[str, str, str], ...] = (  # worker: TRIANGLES is marching cubes, QUADS its dual
    ("TRIANGLES", "Triangles", "Triangles, with vertices on the surface"),
    (
        "QUADS",
        "Quads",
        "Quads (a few triangles where the surface turns tightly), sharp edges kept: for sculpting and subdivision",
    ),
)
SURFACE_NAMES = tuple(name for name, _, _ in SURFACES)
ADAPTIVITY_RANGE = (0.0, 1.0)  # 0: every cell's faces; higher merges more where the surface is flat (triangles)
MAX_RESOLUTION = 2048

JOB_FILE = "job.json"
EVENTS_FILE = "events.jsonl"
MESH_FILE = "mesh.npz"
POINTS_FILE = "points.npz"  # fit_points: points (N, 3); optional normals (N, 3) and colors (N, 3) in 0..1
FIELD_FILE = "field.safetensors"
SURFACE_FILE = "surface.npz"
LOG_FILE = "worker.log"
VIEWS_FILE = "views.npz"  # fit_shape: mask_<i>, to_common_<i>, rect_<i> for each reference image
IMAGE_FILE = "image.npz"  # fit_image: pixels (H, W, C), display space
IMAGE_FIELD_FILE = "image_field.safetensors"
RENDERED_FILE = "rendered.npz"  # fit_image, resample_image: pixels (height, width, C) float32
SHAPE_MODES = ("SILHOUETTE", "HULL")
IMAGE_TASKS = ("fit_image", "resample_image")
MAX_IMAGE_SIDE = 16_384
MIN_POINTS = 100  # fewer points than this describe no surface


class ProtocolError(ValueError):
    """A job, event or field file that cannot be used; the message is for the user."""


@dataclasses.dataclass
class JobSpec:
    """One job for the worker: fit a field to ``mesh`` and/or extract a surface from ``field``.

    Paths are relative to the job directory. ``task`` is ``"fit"`` (sample ``mesh``, train,
    write ``field``, then extract), ``"fit_points"`` (train a field on ``points``, write ``field``, then
    extract) or ``"extract"`` (read ``field``, extract).
    """

    task: str
    resolution: int
    preset: str = "BALANCED"
    device: str = "AUTO"
    mesh: str = MESH_FILE
    points: str = POINTS_FILE
    field: str = FIELD_FILE
    surface: str = SURFACE_FILE
    surface_kind: str = "TRIANGLES"  # one of SURFACE_NAMES: the extracted surface's faces
    adaptivity: float = 0.0  # in ADAPTIVITY_RANGE: above 0, flat parts merged into larger triangles
    seed: int = 0
    steps: int = 0  # 0: the preset's own number of steps
    learned: bool = False  # fit: train a residual on top of the stored band (inr_worker.fields.learned_band)
    parent_pid: int = 0  # the worker exits when this process goes away; 0: no watch
    threads: int = 0  # torch threads in the worker; 0: torch's default (all cores)
    # task "operate": build a composite field (see inr_worker.fields.operations) from input field files, then extract:
    # {"kind", "blend", "distance", "shell", "factor", "inputs": [file names], "placements": [[16 floats]]}
    operation: dict = dataclasses.field(default_factory=dict)
    # fit_shape: a solid from reference images (``views``), then extract like fit
    mode: str = "SILHOUETTE"
    thickness: float = 1.0
    rounded: bool = False
    views: str = VIEWS_FILE
    # fit_image (``image`` -> ``image_field`` and ``rendered``), resample_image (``image_field`` -> ``rendered``)
    image: str = IMAGE_FILE
    image_field: str = IMAGE_FIELD_FILE
    rendered: str = RENDERED_FILE
    width: int = 0
    height: int = 0

    def validate(self) -> None:
        if self.task not in ("fit", "fit_points", "extract", "operate", "fit_shape", *IMAGE_TASKS):
            raise ProtocolError(f"unknown task {self.task!r}")
        if self.task == "fit_shape" and self.mode not in SHAPE_MODES:
            raise ProtocolError(f"unknown mode {self.mode!r}; expected one of {', '.join(SHAPE_MODES)}")
        if self.task in IMAGE_TASKS and not (1 <= self.width <= MAX_IMAGE_SIDE and 1 <= self.height <= MAX_IMAGE_SIDE):
            raise ProtocolError(f"image size {self.width}x{self.height} is outside 1..{MAX_IMAGE_SIDE}")
        if self.preset not in PRESET_NAMES:
            raise ProtocolError(f"unknown preset {self.preset!r}; expected one of {', '.join(PRESET_NAMES)}")
        if self.surface_kind not in SURFACE_NAMES:
            raise ProtocolError(f"unknown surface {self.surface_kind!r}; expected one of {', '.join(SURFACE_NAMES)}")
        if not ADAPTIVITY_RANGE[0] <= self.adaptivity <= ADAPTIVITY_RANGE[1]:
            raise ProtocolError(f"adaptivity {self.adaptivity} is outside {ADAPTIVITY_RANGE[0]}..{ADAPTIVITY_RANGE[1]}")
        if self.device not in DEVICES:
            raise ProtocolError(f"unknown device {self.device!r}; expected one of {', '.join(DEVICES)}")
        if self.task not in IMAGE_TASKS and not MIN_RESOLUTION <= self.resolution <= MAX_RESOLUTION:
            raise ProtocolError(f"resolution {self.resolution} is outside {MIN_RESOLUTION}..{MAX_RESOLUTION}")
        if self.steps < 0:
            raise ProtocolError("steps must be 0 (the preset's) or more")
        if self.threads < 0:
            raise ProtocolError("threads must be 0 (all cores) or more")
        if self.task == "operate" and not self.operation.get("inputs"):
            raise ProtocolError("an operate job needs an operation with inputs")

    def write(self, job_dir: Path) -> None:
        self.validate()
        (job_dir / JOB_FILE).write_text(json.dumps(dataclasses.asdict(self), indent=1))

    @classmethod
    def read(cls, job_dir: Path) -> JobSpec:
        try:
            raw = json.loads((job_dir / JOB_FILE).read_text())
            spec = cls(**raw)
        except (OSError, ValueError, TypeError) as error:
            raise ProtocolError(f"cannot read job {job_dir / JOB_FILE}: {error}") from error
        spec.validate()
        return spec


class EventWriter:
    """Appends progress events to a job's events file, one JSON line each, flushed at once."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the writer's life; close() ends it)

    def emit(self, event: str, **fields: Any) -> None:
        self._file.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class EventReader:
    """Reads the complete lines that a worker appended since the last call."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0

    def read_new(self) -> Iterator[dict[str, Any]]:
        try:
            with open(self._path, "rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].splitlines():
            if line.strip():
                yield json.loads(line)


# --- safetensors -------------------------------------------------------------------------

_DTYPE_SIZES = {"F16": 2, "F32": 4, "F64": 8, "I8": 1, "I16": 2, "I32": 4, "I64": 8, "U8": 1, "U16": 2}


def write_safetensors(
    path: Path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]], metadata: dict[str, str]
) -> None:
    """Write ``{name: (dtype, shape, little-endian bytes)}`` as a safetensors file, atomically."""
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        expected = _DTYPE_SIZES[dtype]
        for extent in shape:
            expected *= extent
        if len(data) != expected:
            raise ValueError(f"tensor {name}: {len(data)} bytes for {dtype}{list(shape)}")
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as file:
        file.write(struct.pack("<Q", len(encoded)))
        file.write(encoded)
        for _, _, data in tensors.values():
            file.write(data)
    os.replace(partial, path)


def read_safetensors(data: bytes) -> tuple[dict[str, tuple[str, tuple[int, ...], memoryview]], dict[str, str]]:
    """Parse safetensors bytes into ``{name: (dtype, shape, bytes)}`` and the metadata."""
    view = memoryview(data)
    try:
        (header_size,) = struct.unpack("<Q", view[:8])
        if header_size > len(data) - 8:
            raise ValueError("header runs past the end")
        header = json.loads(bytes(view[8 : 8 + header_size]))
        metadata = header.pop("__metadata__", {}) or {}
        body = view[8 + header_size :]
        tensors = {}
        for name, entry in header.items():
            start, end = entry["data_offsets"]
            shape = tuple(int(extent) for extent in entry["shape"])
            size = _DTYPE_SIZES[entry["dtype"]]
            for extent in shape:
                size *= extent
            if end - start != size or end > len(body):
                raise ValueError(f"tensor {name} has the wrong size")
            tensors[name] = (entry["dtype"], shape, body[start:end])
    except (struct.error, ValueError, KeyError, TypeError) as error:
        raise ProtocolError(f"not a readable field file ({error})") from error
    return tensors, metadata


def bricks_per_side(resolution: int, brick: int) -> int:
    """Bricks along each side of a field's domain."""
    return math.ceil(2 * DOMAIN_HALF_EXTENT * resolution / brick)


def field_file_problem(data: bytes) -> str | None:
    """Why a file's bytes are not a field file at all (not safetensors, or safetensors of another kind), or
    None. A field file that is damaged passes here and is refused by :func:`check_field`."""
    not_a_field = "not a field file (a field is the .safetensors file that Fit, inr_worker fit --field or batch write)"
    if len(data) < 10 or data[8:10] != b'{"':
        return not_a_field
    try:
        _, metadata = read_safetensors(data)
    except ProtocolError:
        return None  # a safetensors header cut short or damaged: check_field says so
    if metadata.get("format") != FIELD_FORMAT:
        return not_a_field
    return None


def check_field(data: bytes) -> dict[str, str]:
    """Return a stored field's metadata, or raise ProtocolError that says to re-fit.

    Besides the format and version, the shape in ``field_config`` is checked against the stored
    tensors (names, dtypes, shapes), so that what a field makes the worker allocate follows its bytes.
    """
    try:
        tensors, metadata = read_safetensors(data)
    except ProtocolError as error:
        raise ProtocolError(f"the stored field is damaged: {error}; re-fit this object") from error
    if metadata.get("format") != FIELD_FORMAT:
        raise ProtocolError("the stored data is not an inr_addon field; re-fit this object")
    version = metadata.get("format_version", "")
    if version not in READABLE_FIELD_VERSIONS:
        raise ProtocolError(
            f"the stored field has format version {version or None}, this add-on reads versions "
            f"{', '.join(READABLE_FIELD_VERSIONS)}; re-fit this object"
        )
    if COMPOSITE_KEY in metadata:  # an operation over embedded fields, each checked when it is read
        return metadata
    try:
        config = json.loads(metadata["field_config"])
        _check_shapes(tensors, config, READABLE_FIELD_VERSIONS[version], _residual_config(metadata))
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise ProtocolError(f"the stored field is damaged ({error}); re-fit this object") from error
    return metadata


def _residual_config(metadata: dict[str, str]) -> dict[str, Any] | None:
    """A learned field's residual shape from its metadata; None for the stored band alone."""
    kind = metadata.get(FIELD_KIND_KEY)
    if kind is None:
        return None
    if kind != LEARNED_KIND:
        raise ValueError(f"unknown field kind {kind!r}")
    return json.loads(metadata[RESIDUAL_CONFIG_KEY])


def _residual_shapes(
    tensors: dict[str, tuple[str, tuple[int, ...], memoryview]], residual: dict[str, Any], brick: int, bricks: int
) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The tensors a learned field's residual must hold, checked against its config."""
    if set(residual) != {"level_cells", "channels", "hidden"}:
        raise ValueError(f"unexpected residual_config keys {sorted(residual)}")
    cells, channels, hidden = residual["level_cells"], residual["channels"], residual["hidden"]
    if not isinstance(cells, list) or not isinstance(channels, list) or not 1 <= len(cells) <= RESIDUAL_MAX_LEVELS:
        raise ValueError(f"residual levels {cells!r} / {channels!r}")
    if len(channels) != len(cells) or any(cell not in RESIDUAL_LEVEL_CELLS for cell in cells):
        raise ValueError(f"residual level cells {cells!r} not among {RESIDUAL_LEVEL_CELLS}")
    if any(type(count) is not int or not RESIDUAL_CHANNELS[0] <= count <= RESIDUAL_CHANNELS[1] for count in channels):
        raise ValueError(f"residual channels {channels!r} outside {RESIDUAL_CHANNELS}")
    if type(hidden) is not int or not RESIDUAL_HIDDEN[0] <= hidden <= RESIDUAL_HIDDEN[1]:
        raise ValueError(f"residual hidden width {hidden!r} outside {RESIDUAL_HIDDEN}")
    inputs = sum(channels) + 1
    expected: dict[str, tuple[str, tuple[int, ...]]] = {"residual.scales": ("F32", (len(cells),))}
    for number, count in enumerate(channels):
        name = f"residual.level{number}"
        rows = tensors[name][1][0] if name in tensors else -1
        if not 0 <= rows <= bricks:
            raise ValueError(f"{rows} bricks in {name} for a grid of {bricks}")
        expected[name] = ("I8", (rows, brick**3, count))
    for layer, (rows, columns) in enumerate([(hidden, inputs), (hidden, hidden), (1, hidden)]):
        expected[f"residual.decoder.{2 * layer}.weight"] = ("F32", (rows, columns))
        expected[f"residual.decoder.{2 * layer}.bias"] = ("F32", (rows,))
    return expected


def _check_shapes(
    tensors: dict[str, tuple[str, tuple[int, ...], memoryview]],
    config: dict[str, Any],
    value_type: str,
    residual: dict[str, Any] | None = None,
) -> None:
    if set(config) != {"resolution", "brick", "band_cells", "coarse_points"}:
        raise ValueError(f"unexpected field_config keys {sorted(config)}")
    resolution, brick, band_cells = config["resolution"], config["brick"], config["band_cells"]
    coarse = config["coarse_points"]
    if type(resolution) is not int or not FIELD_RESOLUTIONS[0] <= resolution <= FIELD_RESOLUTIONS[1]:
        raise ValueError(f"resolution {resolution!r} outside {FIELD_RESOLUTIONS}")
    if type(brick) is not int or brick not in FIELD_BRICKS:
        raise ValueError(f"brick {brick!r} not one of {FIELD_BRICKS}")
    if not isinstance(band_cells, (int, float)) or not 1 <= band_cells <= 8:
        raise ValueError(f"band_cells {band_cells!r} outside 1..8")
    if type(coarse) is not int or not FIELD_COARSE_POINTS[0] <= coarse <= FIELD_COARSE_POINTS[1]:
        raise ValueError(f"coarse_points {coarse!r} outside {FIELD_COARSE_POINTS}")
    bricks = bricks_per_side(resolution, brick) ** 3
    count = tensors["brick_keys"][1][0] if "brick_keys" in tensors else -1
    expected = {
        "brick_keys": ("I32", (count,)),
        "brick_values": (value_type, (count, brick**3)),
        "inside_bits": ("U8", (-(-bricks // 8),)),
        "coarse_distances": ("U8", (coarse, coarse, coarse)),
        "frame.centre": ("F64", (3,)),
        "frame.scale": ("F64", (1,)),
        "bounds.low": ("F64", (3,)),
        "bounds.high": ("F64", (3,)),
    }
    if CREASES in tensors:  # optional: the source's sharp edges (surface_projection.crease_segments)
        expected[CREASES] = ("F32", (tensors[CREASES][1][0] if tensors[CREASES][1] else -1, 2, 3))
    if COLOUR_VALUES in tensors:  # optional: one sRGB colour per band point next to the surface (colour_field)
        expected[COLOUR_VALUES] = ("U8", (min(tensors[COLOUR_VALUES][1][0], count * brick**3), 3))
    if COLOUR_MESH_TRIANGLES in tensors:  # or the source's triangles with their corner colours (colour_field)
        corners = tensors[COLOUR_MESH_VERTICES][1][0] if COLOUR_MESH_VERTICES in tensors else -1
        index_type, (triangles, *_) = tensors[COLOUR_MESH_TRIANGLES][:2]
        colour_shape = tensors[COLOUR_MESH_COLOURS][1] if COLOUR_MESH_COLOURS in tensors else ()
        per_triangle = colour_shape[1] if len(colour_shape) == 3 and colour_shape[1] in (1, 3) else 3  # face or corners
        position_type = tensors[COLOUR_MESH_VERTICES][0] if COLOUR_MESH_VERTICES in tensors else ""
        expected[COLOUR_MESH_VERTICES] = (position_type if position_type in ("U16", "F32") else "U16", (corners, 3))
        expected[COLOUR_MESH_TRIANGLES] = (index_type if index_type in ("I32", "U16") else "I32", (triangles, 3))
        expected[COLOUR_MESH_COLOURS] = ("U8", (triangles, per_triangle, 3))
    if residual is not None:
        expected |= _residual_shapes(tensors, residual, brick, bricks)
    if set(tensors) != set(expected):
        raise ValueError(f"tensors {sorted(tensors)}, expected {sorted(expected)}")
    if not 0 <= count <= bricks:
        raise ValueError(f"{count} bricks for a grid of {bricks}")
    for name, (dtype, shape) in expected.items():
        if tensors[name][:2] != (dtype, shape):
            raise ValueError(
                f"tensor {name} is {tensors[name][0]}{list(tensors[name][1])}, expected {dtype}{list(shape)}"
            )


def replace_metadata(data: bytes, metadata: dict[str, str]) -> bytes:
    """The same safetensors bytes with other metadata (tensors untouched)."""
    view = memoryview(data)
    try:
        (header_size,) = struct.unpack("<Q", view[:8])
        header = json.loads(bytes(view[8 : 8 + header_size]))
    except (struct.error, ValueError) as error:
        raise ProtocolError(f"not a readable field file ({error})") from error
    header["__metadata__"] = metadata
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + bytes(view[8 + header_size :])
