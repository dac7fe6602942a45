"""Colour in and out of Blender: a mesh's colour per triangle corner (its active colour attribute, or its
materials' base colour, flat or an image texture through a UV map) for the fit, and the fitted result's
``Color`` attribute with a material that shows it."""

from __future__ import annotations

import dataclasses
import typing

import bpy
import numpy as np

from . import mesh_data

COLOR_ATTRIBUTE = "Color"  # the result's vertex colours (point domain, linear float)
MATERIAL_NAME = "Neural Field Color"  # the material that shows the Color attribute
DEFAULT_COLOUR = (
    0.8,
    0.8,
    0.8,
)  # linear; a face without colour beside faces with colour (Blender's default base colour)

ColourAttribute = bpy.types.FloatColorAttribute | bpy.types.ByteColorAttribute


@dataclasses.dataclass
class SourceColours:
    """One object's colour per triangle: ``corner_colors`` (T, 3, 3) linear; ``face_image`` (T,) index into
    ``images`` (-1: the corner colours) with ``corner_uvs`` (T, 3, 2) where a texture is used."""

    corner_colors: np.ndarray
    face_image: np.ndarray
    corner_uvs: np.ndarray
    images: list[str]  # names of the images in ``decoded`` (see ``object_colours``)
    coloured: bool  # whether anything here is the source's own colour (not the default grey)


def _triangles_of(mesh: bpy.types.Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per loop triangle (in ``calc_loop_triangles`` order): its corners (T, 3), vertices (T, 3), face and
    material index."""
    mesh.calc_loop_triangles()
    count = len(mesh.loop_triangles)
    loops = np.empty(count * 3, np.int32)
    mesh.loop_triangles.foreach_get("loops", loops)
    vertices = np.empty(count * 3, np.int32)
    mesh.loop_triangles.foreach_get("vertices", vertices)
    materials = np.empty(count, np.int32)
    mesh.loop_triangles.foreach_get("material_index", materials)
    faces = np.empty(count, np.int32)
    mesh.loop_triangles.foreach_get("polygon_index", faces)
    return loops.reshape(-1, 3), vertices.reshape(-1, 3), faces, materials


def _attribute_colours(attribute: bpy.types.Attribute) -> np.ndarray:
    """A colour attribute's values as (N, 3) linear floats (byte colours read as linear too)."""
    data = typing.cast(ColourAttribute, attribute).data
    values = np.empty(len(data) * 4, np.float32)
    data.foreach_get("color", values)
    return values.reshape(-1, 4)[:, :3]


def _base_colour_source(material: bpy.types.Material | None) -> tuple[np.ndarray, bpy.types.ShaderNodeTexImage | None]:
    """A material's flat base colour (linear RGB) and the Image Texture node that feeds it, if one does."""
    if material is None:
        return np.asarray(DEFAULT_COLOUR, np.float32), None
    flat = np.asarray(material.diffuse_color[:3], np.float32)
    tree = material.node_tree
    if tree is None:
        return flat, None
    outputs = [node for node in tree.nodes if node.type == "OUTPUT_MATERIAL"]
    output = next(
        (node for node in outputs if getattr(node, "is_active_output", False)), outputs[0] if outputs else None
    )
    shader = None
    if output is not None and output.inputs["Surface"].is_linked:
        shader = output.inputs["Surface"].links[0].from_node
    if shader is None or shader.type != "BSDF_PRINCIPLED":
        shader = next((node for node in tree.nodes if node.type == "BSDF_PRINCIPLED"), None)
    if shader is None:
        return flat, None
    base = shader.inputs["Base Color"]
    flat = np.asarray(typing.cast(bpy.types.NodeSocketColor, base).default_value[:3], np.float32)
    if base.is_linked and base.links[0].from_node.type == "TEX_IMAGE":
        return flat, typing.cast(bpy.types.ShaderNodeTexImage, base.links[0].from_node)
    return flat, None


def _uv_map_of(node: bpy.types.ShaderNodeTexImage, mesh: bpy.types.Mesh) -> str | None:
    """The name of the UV map an Image Texture node reads on this mesh (its UV Map node's, else the mesh's
    active render UV map), or None where the mesh has no such map."""
    vector = node.inputs["Vector"]
    if vector.is_linked and vector.links[0].from_node.type == "UVMAP":
        name = typing.cast(bpy.types.ShaderNodeUVMap, vector.links[0].from_node).uv_map
        if name:
            return name if name in mesh.uv_layers else None
    active = next((layer for layer in mesh.uv_layers if layer.active_render), None)
    return active.name if active is not None else None


def image_pixels(image: bpy.types.Image) -> np.ndarray | None:
    """An image's RGB pixels, row 0 at the bottom: uint8 sRGB for byte images in sRGB, else float32 linear;
    None where the image cannot be read."""
    try:
        width, height = image.size
        channels = image.channels
        if not (width and height and channels):
            return None
        pixels = np.empty(width * height * channels, np.float32)
        image.pixels.foreach_get(pixels)  # type: ignore[attr-defined]  # the stubs type pixels as float
    except (RuntimeError, ValueError, ReferenceError):
        return None
    rgb = pixels.reshape(height, width, channels)[:, :, [0, 1, 2] if channels >= 3 else [0, 0, 0]]
    if not np.isfinite(rgb).all():
        return None
    if not image.is_float and image.colorspace_settings.name == "sRGB":
        return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def object_colours(
    obj: bpy.types.Object,
    depsgraph: bpy.types.Depsgraph,
    warnings: list[str],
    decoded: dict[str, np.ndarray | None],
) -> SourceColours | None:
    """The object's colour per triangle of its evaluated mesh (the triangles ``mesh_data.evaluated_triangles``
    reads, in that order), or None where it has no colour. Textures' pixels go into ``decoded`` by image
    name; what cannot be read is skipped with a line in ``warnings``."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        loops, vertex_of_corner, _, materials = _triangles_of(mesh)
        count = len(loops)
        corner_colors = np.empty((count, 3, 3), np.float32)
        corner_colors[:] = DEFAULT_COLOUR
        face_image = np.full(count, -1, np.int32)
        corner_uvs = np.zeros((count, 3, 2), np.float32)
        images: list[str] = []
        active = mesh.color_attributes.active_color
        if active is not None:
            colours = _attribute_colours(active)
            if not np.isfinite(colours).all():
                warnings.append(f"{obj.name}: colour attribute '{active.name}' has non-finite values; it was skipped")
            else:
                corner_colors[:] = colours[vertex_of_corner if active.domain == "POINT" else loops]
                return SourceColours(corner_colors, face_image, corner_uvs, images, True)
        slots = [slot.material for slot in obj.material_slots]
        if not any(slot is not None for slot in slots):
            return None
        coloured = False
        for index in np.unique(materials):
            material = slots[min(index, len(slots) - 1)] if slots else None
            mine = materials == index
            flat, node = _base_colour_source(material)
            if material is not None:
                corner_colors[mine] = flat
                coloured = True
            if node is None:
                continue
            what = f"{obj.name}: material '{material.name if material else ''}'"
            image = node.image
            if image is not None and image.name not in decoded:
                decoded[image.name] = image_pixels(image)
            if image is None or decoded[image.name] is None:
                name = f"image '{image.name}'" if image is not None else "no image"
                warnings.append(f"{what}: its texture ({name}) cannot be read; the texture was skipped")
                continue
            uv_map = _uv_map_of(node, mesh)
            if uv_map is None:
                warnings.append(f"{what}: the mesh has no UV map for its texture; the texture was skipped")
                continue
            uvs = np.empty(len(mesh.loops) * 2, np.float32)
            mesh.uv_layers[uv_map].uv.foreach_get("vector", uvs)
            if image.name not in images:
                images.append(image.name)
            face_image[mine] = images.index(image.name)
            corner_uvs[mine] = uvs.reshape(-1, 2)[loops[mine]]
        return SourceColours(corner_colors, face_image, corner_uvs, images, coloured) if coloured else None
    finally:
        evaluated.to_mesh_clear()


def joined_colours(
    objects: list[bpy.types.Object], depsgraph: bpy.types.Depsgraph, warnings: list[str]
) -> dict[str, np.ndarray] | None:
    """The job's colour file for the objects' joined triangles (the order of ``fit_mesh.joined_triangles``):
    ``corner_colors``, and ``corner_uvs``, ``face_image`` and ``image_<i>`` where textures are used; None
    where no object has colour."""
    active = objects[0]
    to_active = np.array(active.matrix_world.inverted())
    parts = []
    decoded: dict[str, np.ndarray | None] = {}
    for obj in objects:
        colours = object_colours(obj, depsgraph, warnings, decoded)
        mirrored = obj is not active and np.linalg.det((to_active @ np.array(obj.matrix_world))[:3, :3]) < 0
        if colours is not None and mirrored:  # its triangles are turned, so are their corners
            colours.corner_colors = colours.corner_colors[:, ::-1]
            colours.corner_uvs = colours.corner_uvs[:, ::-1]
        parts.append((obj, colours))
    if not any(colours is not None for _, colours in parts):
        return None
    corner_colors, face_images, corner_uvs = [], [], []
    images: list[str] = []
    for obj, colours in parts:
        if colours is None:
            triangles = _triangle_count(obj, depsgraph)
            corner_colors.append(np.full((triangles, 3, 3), DEFAULT_COLOUR, np.float32))
            face_images.append(np.full(triangles, -1, np.int32))
            corner_uvs.append(np.zeros((triangles, 3, 2), np.float32))
            continue
        mapping = []
        for image in colours.images:
            if image not in images:
                images.append(image)
            mapping.append(images.index(image))
        lookup = np.asarray([*mapping, -1], np.int32)
        corner_colors.append(np.ascontiguousarray(colours.corner_colors))
        face_images.append(lookup[colours.face_image])  # -1 stays -1
        corner_uvs.append(np.ascontiguousarray(colours.corner_uvs))
    arrays = {"corner_colors": np.concatenate(corner_colors)}
    if images:
        arrays["corner_uvs"] = np.concatenate(corner_uvs)
        arrays["face_image"] = np.concatenate(face_images)
        arrays.update({f"image_{index}": decoded[name] for index, name in enumerate(images)})
    return arrays


def _triangle_count(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> int:
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        mesh.calc_loop_triangles()
        return len(mesh.loop_triangles)
    finally:
        evaluated.to_mesh_clear()


# --- the result -------------------------------------------------------------------------------


def colour_material() -> bpy.types.Material:
    """The material that shows the ``Color`` attribute (a Color Attribute node into a Principled BSDF's Base
    Color), made once per file."""
    material: bpy.types.Material | None = bpy.data.materials.get(MATERIAL_NAME)
    if material is not None and material.node_tree is not None:
        return material
    material = bpy.data.materials.new(MATERIAL_NAME)
    tree = material.node_tree
    assert tree is not None  # a new material has its node tree
    shader = next((node for node in tree.nodes if node.type == "BSDF_PRINCIPLED"), None)
    if shader is None:
        shader = tree.nodes.new("ShaderNodeBsdfPrincipled")
        output = tree.nodes.get("Material Output") or tree.nodes.new("ShaderNodeOutputMaterial")
        tree.links.new(shader.outputs["BSDF"], output.inputs["Surface"])
    attribute = typing.cast(bpy.types.ShaderNodeVertexColor, tree.nodes.new("ShaderNodeVertexColor"))
    attribute.layer_name = COLOR_ATTRIBUTE
    attribute.location = (shader.location[0] - 300, shader.location[1])
    tree.links.new(attribute.outputs["Color"], shader.inputs["Base Color"])
    return material


def write_colours(obj: bpy.types.Object, colours: np.ndarray) -> None:
    """Give the result's vertices (V, 3) linear colours as its ``Color`` attribute, made the active and the
    rendered one, and, where the object has no material, the material that shows it."""
    mesh = typing.cast(bpy.types.Mesh, obj.data)
    existing: bpy.types.Attribute | None = mesh.color_attributes.get(COLOR_ATTRIBUTE)
    if existing is not None:
        mesh.color_attributes.remove(existing)
    mesh_data.add_point_colors(mesh, COLOR_ATTRIBUTE, colours)
    if not any(slot is not None for slot in mesh.materials):
        mesh.materials.clear()
        mesh.materials.append(colour_material())
