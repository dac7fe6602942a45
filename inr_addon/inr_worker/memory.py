"""How much memory a job will need and how much is free, without psutil (numpy and the standard library,
so that Blender can refuse a job before it starts too)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

BASE_BYTES = 600 * 2**20  # torch, the model, one chunk's arrays
# Peak bytes per square cell of the surface's area (marching cubes gives about three triangles per square
# cell; armadillo at 2048: 630 bytes), and per triangle of the result (armadillo: 210), with a margin.
BYTES_PER_AREA_CELL = 800
BYTES_PER_TRIANGLE = 270

_CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
)


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available() -> int | None:
    for limit_file, usage_file in _CGROUP_FILES:
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            return max(0, int(limit) - usage)
    return None


def _sysconf_available() -> int | None:
    for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):  # macOS has only the total
        try:
            return os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            continue
    return None


def available_memory() -> int | None:
    """Bytes that this process can still allocate (the smaller of the machine's and its cgroup's
    free memory), or None where that cannot be read."""
    found = [value for value in (_meminfo_available() or _sysconf_available(), _cgroup_available()) if value]
    return min(found) if found else None


def format_bytes(count: int) -> str:
    """``1.5 GB`` and the like."""
    for unit, size in (("GB", 2**30), ("MB", 2**20)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count / 1024:.0f} kB"


class MemoryLimitError(RuntimeError):
    """The job would need more memory than the machine has free."""


# A learned residual's training (learned_band): each sample's reads of the levels (indices, weights, values)
# and each square cell's features with their gradients and Adam's moments, at the band's resolution.
BYTES_PER_TRAINING_SAMPLE = 400
BYTES_PER_TRAINING_AREA_CELL = 700


def estimate_memory_for_mesh(
    vertices: np.ndarray, triangles: np.ndarray, resolution: int, training_samples: int = 0, band_resolution: int = 0
) -> int:
    """Peak bytes of meshing a fit of this mesh at ``resolution``, from its area (in its unit frame); with
    ``training_samples``, of training a learned residual on that many samples too, on a band of
    ``band_resolution`` cells."""
    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = np.asarray(triangles, dtype=np.int64)
    extent = float(np.ptp(vertices, axis=0).max()) if len(vertices) else 0.0
    if not np.isfinite(extent) or extent == 0 or not len(triangles) or triangles.max() >= len(vertices):
        return BASE_BYTES  # the fit refuses such a mesh with its own message
    a, b, c = (vertices[triangles[:, i]] / extent for i in range(3))
    area = float(np.linalg.norm(np.cross(b - a, c - a), axis=1).sum() / 2)
    training = training_samples * BYTES_PER_TRAINING_SAMPLE + int(
        area * band_resolution**2 * BYTES_PER_TRAINING_AREA_CELL
    )
    return BASE_BYTES + int(area * resolution**2 * BYTES_PER_AREA_CELL) + (training if training_samples else 0)


BYTES_PER_POINT = 2_200  # a fitted point's share: its copies, neighbours (k-nearest lists) and training samples
POINTS_SURFACE_AREA = 4.0  # the surface area assumed for a points fit's meshing, unit frame (a cube has 6)


def estimate_memory_for_points(count: int, resolution: int) -> int:
    """Peak bytes of fitting ``count`` points and meshing the result at ``resolution``; needs only the count,
    so that a cloud too big for memory is refused before it is read."""
    return BASE_BYTES + int(count) * BYTES_PER_POINT + int(POINTS_SURFACE_AREA * resolution**2 * BYTES_PER_AREA_CELL)


def estimate_memory_for_triangles(count: float) -> int:
    """Peak bytes of an extraction whose result has about ``count`` triangles."""
    return BASE_BYTES + int(count * BYTES_PER_TRIANGLE)


def shortfall(needed: int, resolution: int, limit: int | None = None) -> str | None:
    """The message for the user when ``needed`` bytes exceed ``limit`` (default: the memory free now)."""
    limit = available_memory() if limit is None else limit
    if limit is None or needed <= limit:
        return None
    return (
        f"extracting at resolution {resolution} needs about {format_bytes(needed)} of memory, but only "
        f"{format_bytes(limit)} is free; choose a lower resolution"
    )


def check_memory(needed: int, resolution: int, limit: int | None = None) -> None:
    """Raise MemoryLimitError when ``needed`` bytes exceed ``limit`` (default: the memory free now)."""
    message = shortfall(needed, resolution, limit)
    if message:
        raise MemoryLimitError(message)
