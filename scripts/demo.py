"""The demo: fit Suzanne (an open mesh whose eyes are separate parts), extract the field at two
resolutions; below, reference images made into solids: two silhouettes inflated (a star and a horse)
and a visual-hull block-out of spot from its front, right and top silhouettes. Saves a .blend and
renders the lot to a PNG.

    python scripts/demo.py --zip dist/inr_addon-<version>.zip --out out/demo
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import headless
import numpy as np
from headless import start_blender

LOW, HIGH = 40, 256
SPACING = 3.1
ROW_BELOW = -3.3  # z of the reference-image row
IMAGE_CELLS = 160
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def build_scene(bpy, preset: str) -> list:
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_monkey_add(location=(-SPACING, 0, 0))
    source = bpy.context.active_object
    source.name = "Suzanne"

    started = time.monotonic()
    bpy.ops.inr.fit_mesh(resolution=LOW, preset=preset)
    low = bpy.context.active_object
    print(f"fit {preset} + extract at {LOW}: {time.monotonic() - started:.1f} s, {len(low.data.polygons)} faces")
    low.location.x = 0.0
    low.data.shade_flat()

    high = low.copy()
    high.data = low.data.copy()
    high.name = "Suzanne_inr_high"
    source.users_collection[0].objects.link(high)
    high.location.x = SPACING
    bpy.context.view_layer.objects.active = high
    started = time.monotonic()
    bpy.ops.inr.extract_mesh(resolution=HIGH)
    print(f"re-extract at {HIGH}: {time.monotonic() - started:.1f} s, {len(high.data.polygons)} faces")
    return [source, low, high]


def reference_empty(bpy, name: str, image, location: tuple, rotation: tuple, size: float):
    empty = bpy.data.objects.new(name, None)
    empty.empty_display_type, empty.data, empty.empty_display_size = "IMAGE", image, size
    empty.location, empty.rotation_euler = location, [math.radians(angle) for angle in rotation]
    bpy.context.scene.collection.objects.link(empty)
    bpy.context.view_layer.update()
    return empty


def select_only(bpy, objects: list) -> None:
    for obj in bpy.context.selected_objects:
        obj.select_set(False)
    for obj in objects:
        obj.select_set(True)
    bpy.context.view_layer.objects.active = objects[0]


def spot_silhouettes(pixels: int = 192) -> dict:
    """Spot's silhouettes from the front, the right and the top (winding-number occupancy, projected)."""
    import igl

    vertices, triangles = igl.read_triangle_mesh(str(SHARED / "meshes" / "spot.obj"))
    vertices = (vertices - (vertices.min(0) + vertices.max(0)) / 2) / (vertices.max(0) - vertices.min(0)).max()
    axis = -0.55 + (np.arange(pixels) + 0.5) * 1.1 / pixels
    points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    solid = (igl.fast_winding_number(vertices, triangles, points) > 0.5).reshape(pixels, pixels, pixels)
    return {"front": solid.any(1).T, "right": solid.any(0).T, "top": solid.any(2).T}


def build_reference_row(bpy, preset: str, steps: int = 0) -> list:
    """A star and a horse inflated (SILHOUETTE) and spot's visual hull (HULL, rounded) below the meshes."""
    results = []
    for name, x, thickness in (("noto_emoji_u2b50_star.png", -SPACING, 0.6), ("horse_skimage.png", 0.0, 0.5)):
        image = bpy.data.images.load(str(SHARED / "images" / "silhouettes" / name))
        empty = reference_empty(bpy, name.split("_")[0], image, (x, 0, ROW_BELOW), (90, 0, 0), 2.6)
        select_only(bpy, [empty])
        started = time.monotonic()
        bpy.ops.inr.fit_image(
            mode="SILHOUETTE", resolution=IMAGE_CELLS, thickness=thickness, preset=preset, steps=steps
        )
        print(f"silhouette of {name}: {time.monotonic() - started:.1f} s")
        results.append(bpy.context.active_object)
    empties = []
    rotations = {"front": (90, 0, 0), "right": (90, 0, 90), "top": (0, 0, 0)}
    for view, mask in spot_silhouettes().items():
        rgba = np.ones((*mask.shape, 4), np.float32)
        rgba[mask, :3] = 0.1
        image = bpy.data.images.new(f"spot_{view}", mask.shape[1], mask.shape[0])
        image.pixels.foreach_set(rgba.ravel())
        empties.append(reference_empty(bpy, f"spot_{view}", image, (SPACING, 0, ROW_BELOW), rotations[view], 2.4))
    select_only(bpy, empties)
    started = time.monotonic()
    bpy.ops.inr.fit_image(mode="HULL", resolution=IMAGE_CELLS, preset=preset, steps=steps)
    print(f"hull of spot's three views: {time.monotonic() - started:.1f} s")
    from mathutils import Matrix, Vector  # importable once bpy is

    hull = bpy.context.active_object
    centre = Vector((SPACING, 0.0, ROW_BELOW))  # the origin in the middle, then turned to show it is a solid
    hull.data.transform(Matrix.Translation(-centre))
    hull.location, hull.rotation_euler.z = centre, math.radians(-35)
    return [*results, hull]


def add_labels_camera_light(bpy, objects: list) -> None:
    labels = ["source (open, 3 parts)", f"field at {LOW}", f"same field at {HIGH}"]
    labels += ["star.png, inflated", "horse.png, inflated", "spot: hull of 3 silhouettes"]
    for obj, text in zip(objects, labels):
        bottom = -1.35 if obj.location.z > ROW_BELOW / 2 else ROW_BELOW - 1.5
        bpy.ops.object.text_add(location=(obj.matrix_world.translation.x, 0, bottom), rotation=(math.pi / 2, 0, 0))
        label = bpy.context.active_object
        label.data.body = text
        label.data.align_x = "CENTER"
        label.data.size = 0.26
        label.color = (0.15, 0.15, 0.15, 1.0)
    for obj in objects:
        obj.color = (0.8, 0.62, 0.45, 1.0)
    bpy.ops.object.camera_add(location=(0, -12.5, ROW_BELOW / 2 - 0.2), rotation=(math.pi / 2, 0, 0))
    camera = bpy.context.active_object
    camera.data.lens = 40
    scene = bpy.context.scene
    scene.camera = camera
    headless.workbench_settings(scene, 1500, 1050)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--preset", default="BALANCED")
    parser.add_argument("--steps", type=int, default=0, help="training steps of the image fits (0: the preset's)")
    args = parser.parse_args()
    bpy = start_blender(args.zip.resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    objects = build_scene(bpy, args.preset) + build_reference_row(bpy, args.preset, args.steps)
    add_labels_camera_light(bpy, objects)
    blend = (args.out / "demo.blend").resolve()
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.context.scene.render.filepath = str((args.out / "comparison.png").resolve())
    bpy.ops.render.render(write_still=True)
    print(f"saved {blend} and {bpy.context.scene.render.filepath}")


if __name__ == "__main__":
    main()
