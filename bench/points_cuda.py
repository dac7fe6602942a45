"""Points fits on a GPU and on the same machine's CPU: four cases (clean 100k, noisy, holes, sparse 8k) on
spot and armadillo, then a cloud of two million points on the GPU (time and peak memory). Run where CUDA is:

    PYTHONPATH=inr_addon:../shared/tools python bench/points_cuda.py > bench/results/points/cuda-h200.jsonl

and the two-million-point fit alone on this machine's CPU:

    PYTHONPATH=inr_addon:../shared/tools python bench/points_cuda.py --big-on CPU > bench/results/points/big-cpu-2core.jsonl

Each line is one fit: its device, wall times (fit, extraction at 256) and scores against the mesh the points
were sampled from (meshmetrics, 100k samples). The cases are drawn as bench/points.py draws them, with this
script's own seeds.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import igl
import numpy as np
import torch
from meshmetrics import compare_arrays

from inr_worker import jobs
from inr_worker.sources.points import PointSet
from inr_worker.sources.sampling import UnitFrame

MESHES = Path(__file__).resolve().parents[2] / "shared" / "data" / "meshes"


def scan_case(mesh: str, case: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points of one case in the mesh's unit frame, and the mesh there."""
    vertices, triangles = igl.read_triangle_mesh(str(MESHES / mesh))[:2]
    vertices = UnitFrame.of(vertices).to_unit(vertices)
    rng = np.random.default_rng(seed)
    count = 8000 if case == "sparse" else 100_000
    corners = vertices[triangles]
    areas = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    chosen = rng.choice(len(triangles), count, p=areas / areas.sum())
    u, v = rng.random((2, count, 1))
    flip = (u + v) > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    a, b, c = corners[chosen, 0], corners[chosen, 1], corners[chosen, 2]
    points = a + u * (b - a) + v * (c - a)
    if case == "noisy":
        points = points + rng.normal(size=points.shape) * 0.004
    if case == "holes":
        keep = np.ones(count, dtype=bool)
        for centre in points[rng.choice(count, 3, replace=False)]:
            keep &= np.linalg.norm(points - centre, axis=1) > 0.08
        up = points[:, 1]
        points = points[keep & (up > up.min() + 0.04 * np.ptp(up))]
    return points, vertices, triangles


def fitted(points: np.ndarray, device: str, vertices: np.ndarray, triangles: np.ndarray) -> dict:
    """Fit and extract at 256 on ``device``: wall times, the fit's stages and the scores."""
    started = time.time()
    field = jobs.fit_points(PointSet(points), "BALANCED", device)
    fit_end = time.time()
    surface = jobs.extract(field, 256, device)
    extract_end = time.time()
    scores = compare_arrays(vertices, triangles, *surface, samples=100_000)
    return {
        "device": device,
        "fit_s": round(fit_end - started, 2),
        "extract_s": round(extract_end - fit_end, 2),
        **{stage: field.info[stage] for stage in ("normals_s", "training_s", "sampling_s")},
        **{
            key: scores[key]
            for key in ("chamfer_l1", "iou", "normal_consistency", "boundary_edges", "nonmanifold_edges")
        },
    }


def big_cloud(device: str) -> dict:
    """Two million points (armadillo, twenty clean draws) fitted on ``device``, with the peak memory."""
    _, vertices, triangles = scan_case("armadillo_lowres.obj", "clean")
    big = np.concatenate([scan_case("armadillo_lowres.obj", "clean", seed)[0] for seed in range(20)])
    if device == "CUDA":
        torch.cuda.reset_peak_memory_stats()
    row = fitted(big, device, vertices, triangles)
    row.update(points=len(big), process_peak_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2))
    if device == "CUDA":
        row.update(gpu_peak_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2))
    return row


def main() -> None:
    if sys.argv[1:2] == ["--big-on"]:
        print(json.dumps(big_cloud(sys.argv[2])), flush=True)
        return
    for mesh in ("spot.obj", "armadillo_lowres.obj"):
        for case in ("clean", "noisy", "holes", "sparse"):
            points, vertices, triangles = scan_case(mesh, case)
            for device in ("CUDA", "CPU"):
                print(
                    json.dumps({"mesh": mesh, "case": case, **fitted(points, device, vertices, triangles)}), flush=True
                )
    print(json.dumps(big_cloud("CUDA")), flush=True)
    print(json.dumps({"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}), file=sys.stderr)


if __name__ == "__main__":
    main()
