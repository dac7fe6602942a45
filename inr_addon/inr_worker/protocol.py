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
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FIELD_FORMAT = "inr_addon.field"
FIELD_FORMAT_VERSION = 1

PRESETS: tuple[tuple[str, str, str], ...] = (
    ("FAST", "Fast", "A quick rough fit, for blocking out"),
    ("BALANCED", "Balanced", "Good detail in well under a minute on a laptop CPU"),
    ("QUALITY", "Quality", "Finer detail, several times longer"),
)
PRESET_NAMES = tuple(name for name, _, _ in PRESETS)
DEVICES = ("AUTO", "CPU", "CUDA", "MPS")
MIN_RESOLUTION = 16
MAX_RESOLUTION = 2048

JOB_FILE = "job.json"
EVENTS_FILE = "events.jsonl"
MESH_FILE = "mesh.npz"
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


class ProtocolError(ValueError):
    """A job, event or field file that cannot be used; the message is for the user."""


@dataclasses.dataclass
class JobSpec:
    """One job for the worker: fit a field to ``mesh`` and/or extract a surface from ``field``.

    Paths are relative to the job directory. ``task`` is ``"fit"`` (sample ``mesh``, train,
    write ``field``, then extract) or ``"extract"`` (read ``field``, extract).
    """

    task: str
    resolution: int
    preset: str = "BALANCED"
    device: str = "AUTO"
    mesh: str = MESH_FILE
    field: str = FIELD_FILE
    surface: str = SURFACE_FILE
    seed: int = 0
    steps: int = 0  # 0: the preset's own number of steps
    parent_pid: int = 0  # the worker exits when this process goes away; 0: no watch
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
        if self.task not in ("fit", "extract", "fit_shape", *IMAGE_TASKS):
            raise ProtocolError(f"unknown task {self.task!r}")
        if self.task == "fit_shape" and self.mode not in SHAPE_MODES:
            raise ProtocolError(f"unknown mode {self.mode!r}; expected one of {', '.join(SHAPE_MODES)}")
        if self.task in IMAGE_TASKS and not (1 <= self.width <= MAX_IMAGE_SIDE and 1 <= self.height <= MAX_IMAGE_SIDE):
            raise ProtocolError(f"image size {self.width}x{self.height} is outside 1..{MAX_IMAGE_SIDE}")
        if self.preset not in PRESET_NAMES:
            raise ProtocolError(f"unknown preset {self.preset!r}; expected one of {', '.join(PRESET_NAMES)}")
        if self.device not in DEVICES:
            raise ProtocolError(f"unknown device {self.device!r}; expected one of {', '.join(DEVICES)}")
        if self.task not in IMAGE_TASKS and not MIN_RESOLUTION <= self.resolution <= MAX_RESOLUTION:
            raise ProtocolError(f"resolution {self.resolution} is outside {MIN_RESOLUTION}..{MAX_RESOLUTION}")
        if self.steps < 0:
            raise ProtocolError("steps must be 0 (the preset's) or more")

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
        self._file = open(path, "a", encoding="utf-8")

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

_DTYPE_SIZES = {"F16": 2, "F32": 4, "F64": 8, "I32": 4, "I64": 8, "U8": 1}


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


def check_field(data: bytes) -> dict[str, str]:
    """Return a stored field's metadata, or raise ProtocolError that says to re-fit."""
    try:
        _, metadata = read_safetensors(data)
    except ProtocolError as error:
        raise ProtocolError(f"the stored field is damaged: {error}; re-fit this object") from error
    if metadata.get("format") != FIELD_FORMAT:
        raise ProtocolError("the stored data is not an inr_addon field; re-fit this object")
    if metadata.get("format_version") != str(FIELD_FORMAT_VERSION):
        raise ProtocolError(
            f"the stored field has format version {metadata.get('format_version')}, this add-on reads "
            f"version {FIELD_FORMAT_VERSION}; re-fit this object"
        )
    return metadata
