"""Render the modelling benchmark's booleans beside Blender's Boolean modifier (Exact) on the same inputs.

    python bench/modelling_pictures.py --results out/bench-modelling --out docs/modelling.png

Reads the ``*.npz`` surfaces that bench/modelling.py writes (ours and Blender's for each boolean).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path[:0] = [
    str(Path(__file__).resolve().parents[2] / "shared" / "tools"),
    str(Path(__file__).resolve().parents[1] / "scripts"),
]
import headless
from meshmetrics import edge_counts

PANELS = [
    ("open camelhead x2_union", "blender", "Blender Boolean (Exact):\nunion of two open heads"),
    ("open camelhead x2_union", "ours", "fields: union of\nthe same two heads"),
    ("closed spot+bunny_difference", "blender", "Blender Boolean (Exact):\nspot minus bunny"),
    ("closed spot+bunny_difference", "ours", "fields:\nspot minus bunny"),
]
SPACING = 1.5


def add_mesh(bpy, name: str, vertices: np.ndarray, triangles: np.ndarray, x: float):
    low, high = vertices.min(0), vertices.max(0)
    vertices = (vertices - (low + high) / 2) / (high - low).max()
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(vertices.tolist(), [], triangles.tolist())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.location.x = x
    obj.rotation_euler = (0.0, 0.0, math.radians(-30))
    obj.color = (0.8, 0.62, 0.45, 1.0)
    return obj


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("out/bench-modelling"))
    parser.add_argument("--out", type=Path, default=Path("docs/modelling.png"))
    args = parser.parse_args()
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    for index, (case, who, text) in enumerate(PANELS):
        x = (index - (len(PANELS) - 1) / 2) * SPACING
        with np.load(args.results / f"{case}.npz") as surfaces:
            vertices, triangles = surfaces[f"{who}_v"], surfaces[f"{who}_f"]
        if len(triangles):
            add_mesh(bpy, f"{case}_{who}", vertices, triangles, x)
        bpy.ops.object.text_add(location=(x, 0, -0.68), rotation=(math.pi / 2, 0, 0))
        label = bpy.context.active_object
        label.data.body = f"{text}\n{edge_counts(triangles)[0]} open edges" if len(triangles) else f"{text}\n(empty)"
        label.data.align_x = "CENTER"
        label.data.size = 0.1
        label.color = (0.15, 0.15, 0.15, 1.0)
    bpy.ops.object.camera_add(location=(0, -6.2, 0.0), rotation=(math.pi / 2, 0, 0))
    scene = bpy.context.scene
    scene.camera = bpy.context.active_object
    scene.camera.data.type = "ORTHO"
    scene.camera.data.ortho_scale = SPACING * len(PANELS) + 0.2
    headless.workbench_settings(scene, 1600, 640)
    scene.render.filepath = str(args.out.resolve())
    bpy.ops.render.render(write_still=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
