"""Fit a mesh of about 1.9 million triangles through Blender's operator, and report the time and the
peak memory of Blender and of the worker.

    python bench/big_mesh.py --zip dist/inr_addon-<version>.zip [--preset BALANCED] [--resolution 256]

The mesh is armadillo_lowres.obj subdivided three times (each triangle into 64).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import igl

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "inr_addon")]

from headless import ADDON, start_blender

from inr_worker.protocol import read_safetensors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--preset", default="BALANCED")
    parser.add_argument("--resolution", type=int, default=256)
    args = parser.parse_args()
    bpy = start_blender(args.zip.resolve())
    vertices, triangles = igl.read_triangle_mesh(str(SHARED / "data" / "meshes" / "armadillo_lowres.obj"))[:2]
    vertices, triangles = igl.upsample(vertices, triangles, number_of_subdivs=3)
    bpy.ops.wm.read_homefile(use_empty=True)
    mesh = bpy.data.meshes.new("armadillo_x64")
    sys.modules[f"{ADDON}.mesh_data"].fill_mesh(mesh, vertices, triangles)
    source = bpy.data.objects.new("armadillo_x64", mesh)
    bpy.context.scene.collection.objects.link(source)
    bpy.context.view_layer.objects.active = source
    print(f"source: {len(vertices)} vertices, {len(triangles)} triangles", flush=True)
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    bpy.ops.inr.fit_mesh(resolution=args.resolution, preset=args.preset)
    wall = time.monotonic() - started
    result = bpy.context.active_object
    _, info = read_safetensors(result["_inr_field"])
    print(
        f"fit {args.preset} at {args.resolution}: wall {wall:.1f} s (sampling {info['sampling_s']} s, "
        f"training {info['training_s']} s); result {len(result.data.polygons)} faces"
    )
    print(
        f"peak memory: Blender {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB "
        f"(before the fit {before_kb / 1e6:.2f} GB), worker "
        f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6:.2f} GB"
    )


if __name__ == "__main__":
    main()
