"""Render the modelling benchmark's booleans beside Blender's Boolean modifier (Exact) on the same inputs,
or its morph at several factors.

    python bench/modelling_pictures.py --results out/bench-modelling --out docs/modelling.png
    python bench/modelling_pictures.py --figure morph --out docs/morph.png

Reads the ``*.npz`` surfaces that bench/modelling.py writes (ours and Blender's for each boolean, ours
for each morph factor).
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
    str(Path(__file__).resolve().parents[1] / "inr_addon"),
]
import headless
from meshmetrics import edge_counts

from inr_worker.fields.operations import surface_pieces

PANELS = [
    ("open camelhead x2_union", "blender", "Blender Boolean (Exact):\nunion of two open heads"),
    ("open camelhead x2_union", "ours", "fields: union of\nthe same two heads"),
    ("closed spot+bunny_difference", "blender", "Blender Boolean (Exact):\nspot minus bunny"),
    ("closed spot+bunny_difference", "ours", "fields:\nspot minus bunny"),
]
MORPH_PANELS = [
    (f"morph_{factor:.2f}", "ours", f"morph, factor {factor:g}") for factor in (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
]
SPACING = 1.5


def add_mesh(bpy, name: str, vertices: np.ndarray, triangles: np.ndarray, x: float, tilt: float, size: float):
    """The mesh centred at ``x``, divided by ``size`` (its own longest side where 0)."""
    low, high = vertices.min(0), vertices.max(0)
    vertices = (vertices - (low + high) / 2) / (size or (high - low).max())
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(vertices.tolist(), [], triangles.tolist())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.location.x = x
    obj.rotation_euler = (tilt, 0.0, math.radians(-30))
    obj.color = (0.8, 0.62, 0.45, 1.0)
    return obj


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("out/bench-modelling"))
    parser.add_argument("--out", type=Path, default=Path("docs/modelling.png"))
    parser.add_argument("--figure", choices=("booleans", "morph"), default="booleans")
    args = parser.parse_args()
    import bpy

    panels = PANELS if args.figure == "booleans" else MORPH_PANELS
    # the morph's meshes are Y-up (as their files are) and keep their sizes; the booleans' are Z-up
    tilt, size = (math.pi / 2, 0.0) if args.figure == "morph" else (0.0, 0.0)
    if args.figure == "morph":
        with np.load(args.results / f"{panels[0][0]}.npz") as first:
            size = float(np.ptp(first["ours_v"], 0).max())
    bpy.ops.wm.read_homefile(use_empty=True)
    for index, (case, who, text) in enumerate(panels):
        x = (index - (len(panels) - 1) / 2) * SPACING
        with np.load(args.results / f"{case}.npz") as surfaces:
            vertices, triangles = surfaces[f"{who}_v"], surfaces[f"{who}_f"]
        if len(triangles):
            add_mesh(bpy, f"{case}_{who}", vertices, triangles, x, tilt, size)
        bpy.ops.object.text_add(location=(x, 0, -0.68), rotation=(math.pi / 2, 0, 0))
        label = bpy.context.active_object
        if not len(triangles):
            label.data.body = f"{text}\n(empty)"
        elif args.figure == "morph":
            solids = len(surface_pieces(vertices, triangles)[1])
            label.data.body = f"{text}\n{solids} closed solid" + ("s" if solids > 1 else "")
        else:
            label.data.body = f"{text}\n{edge_counts(triangles)[0]} open edges"
        label.data.align_x = "CENTER"
        label.data.size = 0.1
        label.color = (0.15, 0.15, 0.15, 1.0)
    bpy.ops.object.camera_add(location=(0, -6.2, 0.0), rotation=(math.pi / 2, 0, 0))
    scene = bpy.context.scene
    scene.camera = bpy.context.active_object
    scene.camera.data.type = "ORTHO"
    scene.camera.data.ortho_scale = SPACING * len(panels) + 0.2
    headless.workbench_settings(scene, 400 * len(panels), 640)
    scene.render.filepath = str(args.out.resolve())
    bpy.ops.render.render(write_still=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
