"""Colour benchmark: how well a fitted solid keeps its source's colours, beside Voxel Remesh (Preserve
Attributes) for colour attributes and Voxel Remesh plus a Data Transfer modifier (UVs) for textures.

For each shared mesh and colouring (smooth and striped point colours, one colour per face on corners, and
a procedural image texture through the mesh's UV map), the source is coloured in Blender, fitted through
``bpy.ops.inr.fit_mesh`` and remeshed by Voxel Remesh at the same cell size. PSNR (sRGB, 0..1) is measured
at each result's vertices (corners for corner colours and textures) against the source's colour at the
nearest surface point. Extra field bytes and fit time are against the same mesh fitted without colour in
the same run. PSNR at the results' triangle centres (the mean of a triangle's corner colours, what a
renderer shows there) is given beside, since a peer that stores colours per corner is exact at the vertices
by construction. Writes ``results.md``, ``results.json`` and ``texture.png`` (source | Voxel Remesh with
Data Transfer | ours) to the output folder.

    .venv/bin/python bench/colour.py --zip dist/inr_addon-0.1.0.zip --out bench/results/colour
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "inr_addon")]

from headless import mesh_arrays, select_only, start_blender, workbench_settings

from inr_worker.fields import colour_field

MESHES = ROOT.parent / "shared" / "data" / "meshes"
TEXTURE_SIDE = 1024


def psnr(colours: np.ndarray, truth: np.ndarray) -> float:
    srgb = colour_field.linear_to_srgb
    error = float(np.mean((srgb(colours) - srgb(truth)) ** 2))
    return 10 * math.log10(1 / max(error, 1e-12))


def procedural_texture(side: int) -> np.ndarray:
    """A high-frequency picture (linear RGB, row 0 at the bottom): stripes, rings and a checker."""
    y, x = np.mgrid[0:side, 0:side] / side
    red = 0.5 + 0.5 * np.sin(2 * np.pi * 24 * x)
    green = 0.5 + 0.5 * np.cos(2 * np.pi * 18 * np.hypot(x - 0.5, y - 0.5))
    blue = 0.15 + 0.7 * ((np.floor(x * 12) + np.floor(y * 12)) % 2)
    return colour_field.srgb_to_linear(np.stack([red, green, blue], -1))


def colourings(vertices: np.ndarray, triangles: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Corner colours (T, 3, 3), linear, of the vertex and face patterns."""
    unit = (vertices - vertices.min(0)) / np.ptp(vertices, 0).max()
    smooth = np.stack(
        [
            0.5 + 0.5 * np.sin(7 * unit[:, 0] + 1),
            0.5 + 0.5 * np.sin(9 * unit[:, 1]),
            0.5 + 0.5 * np.cos(6 * unit[:, 2]),
        ],
        1,
    )
    bands = (np.floor(unit[:, 2] * 12) % 2)[:, None]
    striped = np.where(bands == 0, [0.9, 0.75, 0.1], [0.05, 0.2, 0.8])
    per_face = np.repeat(rng.random((len(triangles), 1, 3)), 3, axis=1)
    return {
        "smooth (points)": colour_field.srgb_to_linear(smooth)[triangles],
        "striped (points)": colour_field.srgb_to_linear(striped)[triangles],
        "per face (corners)": colour_field.srgb_to_linear(per_face),
    }


def mesh_corner_vertices(mesh) -> np.ndarray:
    corners = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", corners)
    return corners


def corner_triangles(mesh) -> np.ndarray:
    mesh.calc_loop_triangles()
    loops = np.empty(len(mesh.loop_triangles) * 3, np.int32)
    mesh.loop_triangles.foreach_get("loops", loops)
    return loops.reshape(-1, 3)


def set_colours(bpy, obj, corner_colours: np.ndarray, domain: str) -> None:
    """Give the source an active colour attribute from per-triangle corner colours."""
    mesh = obj.data
    for attribute in list(mesh.color_attributes):
        mesh.color_attributes.remove(attribute)
    attribute = mesh.color_attributes.new("Paint", "FLOAT_COLOR", domain)
    loops = corner_triangles(mesh)
    if domain == "POINT":
        values = np.zeros((len(mesh.vertices), 3), np.float32)
        values[mesh_corner_vertices(mesh)[loops].ravel()] = corner_colours.reshape(-1, 3)
    else:
        values = np.zeros((len(mesh.loops), 3), np.float32)
        values[loops.ravel()] = corner_colours.reshape(-1, 3)
    rgba = np.ones((len(values), 4), np.float32)
    rgba[:, :3] = values
    attribute.data.foreach_set("color", rgba.ravel())
    mesh.color_attributes.active_color = attribute


def textured_material(bpy, pixels: np.ndarray):
    side = pixels.shape[0]
    image = bpy.data.images.new("bench_texture", side, side)
    rgba = np.ones((side, side, 4), np.float32)
    rgba[:, :, :3] = colour_field.linear_to_srgb(pixels)  # a byte image holds display values
    image.pixels.foreach_set(rgba.ravel())
    image.pack()
    material = bpy.data.materials.new("bench_textured")
    tree = material.node_tree
    texture = tree.nodes.new("ShaderNodeTexImage")
    texture.image = image
    tree.links.new(texture.outputs["Color"], tree.nodes["Principled BSDF"].inputs["Base Color"])
    return material


def uv_corners(mesh) -> np.ndarray:
    uvs = np.empty(len(mesh.loops) * 2, np.float32)
    mesh.uv_layers.active.uv.foreach_get("vector", uvs)
    return uvs.reshape(-1, 2)


def attribute_at(obj) -> tuple[np.ndarray, np.ndarray]:
    """Positions and linear colours of a result's active colour attribute (per vertex or per corner)."""
    mesh = obj.data
    attribute = mesh.color_attributes.active_color
    rgba = np.empty(len(attribute.data) * 4, np.float32)
    attribute.data.foreach_get("color", rgba)
    vertices, _ = mesh_arrays(obj)
    positions = vertices if attribute.domain == "POINT" else vertices[mesh_corner_vertices(mesh)]
    return positions, rgba.reshape(-1, 4)[:, :3]


def centre_psnr(obj, corner_colours_of, truth) -> float:
    """PSNR at the result's triangle centres: the mean of each triangle's three corner colours (what a
    renderer shows there) against the source's colour at the nearest surface point."""
    vertices, triangles = mesh_arrays(obj)
    loops = corner_triangles(obj.data)
    colours = corner_colours_of(obj)[loops].mean(1)
    return psnr(colours, truth(vertices[triangles].mean(1)))


def attribute_corners(obj) -> np.ndarray:
    """The active colour attribute's linear colours per face corner."""
    _, colours = attribute_at(obj)
    domain = obj.data.color_attributes.active_color.domain
    return colours if domain == "CORNER" else colours[mesh_corner_vertices(obj.data)]


def voxel_remesh(bpy, source, resolution: int):
    """A copy of the source remeshed by Voxel Remesh at the cell size of ``resolution``, keeping attributes."""
    copy = source.copy()
    copy.data = source.data.copy()
    bpy.context.collection.objects.link(copy)
    copy.data.remesh_voxel_size = max(copy.dimensions) / resolution
    copy.data.use_remesh_preserve_attributes = True
    with bpy.context.temp_override(active_object=copy, object=copy, selected_objects=[copy]):
        started = time.monotonic()
        if bpy.ops.object.voxel_remesh() != {"FINISHED"} or len(copy.data.polygons) == len(source.data.polygons):
            raise RuntimeError(f"Voxel Remesh did not run on {source.name}")
    return copy, time.monotonic() - started


def transfer_uvs(bpy, target, source) -> None:
    """Copy the source's UVs onto the target with a Data Transfer modifier (nearest face, interpolated)."""
    modifier = target.modifiers.new("uvs", "DATA_TRANSFER")
    modifier.object = source
    modifier.use_loop_data = True
    modifier.data_types_loops = {"UV"}
    modifier.loop_mapping = "POLYINTERP_NEAREST"
    with bpy.context.temp_override(active_object=target, object=target, selected_objects=[target]):
        bpy.ops.object.datalayout_transfer(modifier=modifier.name)
        bpy.ops.object.modifier_apply(modifier=modifier.name)


def fit(bpy, source, resolution: int, preset: str):
    select_only(bpy, source)
    started = time.monotonic()
    assert bpy.ops.inr.fit_mesh(resolution=resolution, preset=preset, selection="ACTIVE") == {"FINISHED"}
    return bpy.context.active_object, time.monotonic() - started


def render_row(bpy, objects: list, color_types: list[str], path: Path) -> None:
    """Render each object alone (same camera and framing) and put the pictures side by side."""
    from mathutils import Vector
    from PIL import Image

    scene = bpy.context.scene
    workbench_settings(scene, 520, 520)
    size = max(max(obj.dimensions) for obj in objects)
    bpy.ops.object.camera_add(location=(1.6 * size, -2.0 * size, 0.9 * size))
    camera = bpy.context.active_object
    camera.rotation_euler = (math.radians(70), 0.0, math.radians(38))
    scene.camera = camera
    scene.display.shading.show_cavity = False
    pictures = []
    for index, (obj, color_type) in enumerate(zip(objects, color_types, strict=True)):
        for other in objects:
            other.hide_render = other is not obj
        location = obj.location.copy()
        centre = sum((obj.matrix_world @ Vector(corner) for corner in obj.bound_box), Vector()) / 8
        obj.location = location - centre
        scene.display.shading.color_type = color_type
        scene.render.filepath = str(path.with_name(f"_part{index}.png"))
        bpy.ops.render.render(write_still=True)
        obj.location = location
        pictures.append(Image.open(scene.render.filepath).convert("RGB"))
        Path(scene.render.filepath).unlink()
    row = Image.new("RGB", (sum(p.width for p in pictures), pictures[0].height), "white")
    for index, picture in enumerate(pictures):
        row.paste(picture, (index * picture.width, 0))
    row.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "colour")
    parser.add_argument("--meshes", nargs="+", default=["spot", "armadillo_lowres"])
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--preset", default="BALANCED")
    args = parser.parse_args()
    bpy = start_blender(args.zip.resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    rows = []
    for name in args.meshes:
        bpy.ops.wm.read_homefile(use_empty=True)
        bpy.ops.wm.obj_import(filepath=str(MESHES / f"{name}.obj"))
        source = bpy.context.active_object
        vertices, triangles = mesh_arrays(source)
        plain, plain_s = fit(bpy, source, args.resolution, args.preset)
        plain_bytes = len(plain["_inr_field"])
        bpy.data.objects.remove(plain)
        cases = dict(colourings(vertices, triangles, rng))
        has_uvs = len(source.data.uv_layers) > 0
        for case, corner_colours in [*cases.items(), *([("texture (UVs)", None)] if has_uvs else [])]:
            textured = corner_colours is None
            if textured:
                for attribute in list(source.data.color_attributes):
                    source.data.color_attributes.remove(attribute)
                pixels = procedural_texture(TEXTURE_SIDE)
                source.data.materials.clear()
                source.data.materials.append(textured_material(bpy, pixels))
                loops = corner_triangles(source.data)
                truth_colours = colour_field.MeshColours(
                    corner_colors=np.zeros((len(triangles), 3, 3), np.float32),
                    corner_uvs=uv_corners(source.data)[loops],
                    face_image=np.zeros(len(triangles), np.int64),
                    images=[pixels],
                )
            else:
                set_colours(bpy, source, corner_colours, "CORNER" if "corners" in case else "POINT")
                truth_colours = colour_field.MeshColours(corner_colors=corner_colours.astype(np.float32))

            def truth(points: np.ndarray, colours=truth_colours, vertices=vertices, triangles=triangles) -> np.ndarray:
                faces, barycentric = colour_field.nearest_on_triangles(vertices, triangles, points)
                return colours.at(faces, barycentric)

            result, fit_s = fit(bpy, source, args.resolution, args.preset)
            positions, colours = attribute_at(result)
            ours = psnr(colours, truth(positions))
            ours_centres = centre_psnr(result, attribute_corners, truth)
            at_512 = None
            if textured:  # the same field, finer, without the source
                hidden = source.hide_get()
                source.hide_set(True)
                bpy.ops.inr.extract_mesh(resolution=2 * args.resolution)
                positions, colours = attribute_at(result)
                at_512 = psnr(colours, truth(positions))
                source.hide_set(hidden)
            remeshed, remesh_s = voxel_remesh(bpy, source, args.resolution)
            if textured:
                transfer_uvs(bpy, remeshed, source)
                mesh = remeshed.data
                corner_positions = mesh_arrays(remeshed)[0][mesh_corner_vertices(mesh)]
                peer = psnr(colour_field.sample_image(pixels, uv_corners(mesh)), truth(corner_positions))
                centre_uvs = uv_corners(mesh)[corner_triangles(mesh)].mean(1)
                centres = mesh_arrays(remeshed)
                peer_centres = psnr(
                    colour_field.sample_image(pixels, centre_uvs), truth(centres[0][centres[1]].mean(1))
                )
            else:
                positions, colours = attribute_at(remeshed)
                peer = psnr(colours, truth(positions))
                peer_centres = centre_psnr(remeshed, attribute_corners, truth)
            row = {
                "mesh": name,
                "colouring": case,
                "ours_psnr": round(ours, 2),
                "ours_psnr_2x": None if at_512 is None else round(at_512, 2),
                "peer": "Voxel Remesh + Data Transfer (UVs)" if textured else "Voxel Remesh (Preserve Attributes)",
                "peer_psnr": round(peer, 2),
                "ours_centres_psnr": round(ours_centres, 2),
                "peer_centres_psnr": round(peer_centres, 2),
                "bytes_ratio": round(len(result["_inr_field"]) / plain_bytes, 3),
                "fit_time_ratio": round(fit_s / plain_s, 3),
                "fit_s": round(fit_s, 2),
                "plain_fit_s": round(plain_s, 2),
                "remesh_s": round(remesh_s, 2),
                "stored_as": "triangles"
                if "colour.triangles" in _tensor_names(result["_inr_field"])
                else "band points",
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
            if textured and name == "spot":
                source.data.materials[0].name = "bench_textured"
                remeshed.data.materials.clear()
                remeshed.data.materials.append(source.data.materials[0])
                render_row(bpy, [source, remeshed, result], ["TEXTURE", "TEXTURE", "VERTEX"], args.out / "texture.png")
            bpy.data.objects.remove(result)
            bpy.data.objects.remove(remeshed)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    (args.out / "results.md").write_text(table(rows, args))


def _tensor_names(data: bytes) -> set[str]:
    from inr_worker import protocol

    tensors, _ = protocol.read_safetensors(data)
    return set(tensors)


def table(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [
        (
            "Colour PSNR (dB, sRGB) at the result's vertices against the source's colour at the nearest surface "
            f"point; {args.preset} at {args.resolution}, peers at the same cell size; 2-core CPU."
        ),
        "",
        (
            "| mesh | colouring | ours | ours, re-extracted at 2x | ours at triangle centres | peer | peer's "
            "| peer's at triangle centres | field bytes vs no colour | fit time vs no colour | colour stored as |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        at_2x = "" if row["ours_psnr_2x"] is None else f"{row['ours_psnr_2x']:.2f}"
        lines.append(
            f"| {row['mesh']} | {row['colouring']} | **{row['ours_psnr']:.2f}** | {at_2x} | "
            f"{row['ours_centres_psnr']:.2f} | {row['peer']} | {row['peer_psnr']:.2f} | {row['peer_centres_psnr']:.2f} "
            f"| {row['bytes_ratio']:.2f}x | {row['fit_time_ratio']:.2f}x "
            f"({row['fit_s']:.1f} s vs {row['plain_fit_s']:.1f} s) | {row['stored_as']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
