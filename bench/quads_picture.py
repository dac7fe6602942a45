"""A close-up of the CAD-like part's boss with every face's edges drawn: ours with triangles and ours with
quads (Fit, BALANCED, 256), and Blender's Voxel Remesh operator (its defaults, voxel size = longest side /
256), so that the faces themselves can be seen.

    python bench/quads_picture.py --zip dist/inr_addon-0.1.0.zip --out bench/results/quads/quads_cad_part_closeup.png
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(ROOT.parent / "shared" / "tools"),
    str(ROOT / "scripts"),
    str(ROOT / "inr_addon"),
    str(ROOT / "bench"),
]

import baselines

RESOLUTION = 256
TARGET = (0.3, -0.3, 0.52)  # on the boss's front rim (the part's own coordinates: plate 2 x 1.2 x 0.4)
VIEW_WIDTH = 0.3  # of the part's 2 units: about 38 cells across
WIRE_CELLS = 0.12  # the drawn edges' thickness, in cells
PANEL = 640  # pixels a side of each view


def add_edges(bpy, obj, cell: float) -> None:
    """A dark copy of ``obj`` (sharing its mesh) whose Wireframe modifier draws each face's edges."""
    edges = obj.copy()
    bpy.context.scene.collection.objects.link(edges)
    modifier = edges.modifiers.new("edges", "WIREFRAME")
    modifier.thickness, modifier.use_replace, modifier.use_even_offset = WIRE_CELLS * cell, True, True
    edges.color = (0.1, 0.1, 0.1, 1.0)
    obj["edges"] = edges.name


def render_alone(bpy, obj, path: Path) -> np.ndarray:
    """``obj`` and its edges alone, from the close-up camera, as an (H, W, 4) image."""
    for other in bpy.context.scene.objects:
        if other.type == "MESH":
            other.hide_render = other not in (obj, bpy.data.objects[obj["edges"]])
    bpy.context.scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    pixels = np.array(image.pixels[:], dtype=np.float32).reshape(image.size[1], image.size[0], 4)[::-1]
    bpy.data.images.remove(image)
    return pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "quads" / "quads_cad_part_closeup.png")
    args = parser.parse_args()
    from headless import select_only, start_blender, workbench_settings

    bpy = start_blender(args.zip.resolve())
    bpy.ops.wm.read_homefile(use_empty=True)
    vertices, triangles = baselines.cad_part(bpy)
    mesh = bpy.data.meshes.new("cad_part")
    mesh.from_pydata(vertices.tolist(), [], triangles.tolist())
    source = bpy.data.objects.new("cad_part", mesh)
    bpy.context.scene.collection.objects.link(source)
    cell = max(source.dimensions) / RESOLUTION

    shown = []
    for surface in ("TRIANGLES", "QUADS"):
        select_only(bpy, source)
        if bpy.ops.inr.fit_mesh(resolution=RESOLUTION, preset="BALANCED", surface=surface) != {"FINISHED"}:
            raise RuntimeError(f"Fit failed with {surface}")
        shown.append((bpy.context.active_object, f"ours, {surface.lower()}"))
    shown.append((baselines.voxel_remesh_operator(bpy, source, RESOLUTION), "Voxel Remesh operator"))
    source.hide_render = True
    for obj, _ in shown:
        obj.color = (0.8, 0.62, 0.45, 1.0)
        add_edges(bpy, obj, cell)

    scene = bpy.context.scene
    workbench_settings(scene, PANEL, PANEL)
    scene.display.shading.show_cavity = False
    tilt = math.radians(55)
    direction = np.array([0.0, math.sin(tilt), -math.cos(tilt)])  # the camera looks along this
    bpy.ops.object.camera_add(location=tuple(np.array(TARGET) - 5 * direction), rotation=(tilt, 0, 0))
    camera = bpy.context.active_object
    camera.data.type, camera.data.ortho_scale = "ORTHO", VIEW_WIDTH
    scene.camera = camera

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 4.3), dpi=PANEL / 4)
    for axis, (obj, label) in zip(axes, shown):
        axis.imshow(np.clip(render_alone(bpy, obj, args.out.with_suffix(f".{obj.name}.png")), 0, 1))
        faces = len(obj.data.polygons)
        axis.set_title(f"{label}: {faces} faces", fontsize=11)
        axis.axis("off")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out)
    for obj, _ in shown:
        args.out.with_suffix(f".{obj.name}.png").unlink()
    print(args.out)


if __name__ == "__main__":
    main()
