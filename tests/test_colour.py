"""Colour carried through: the source's colours in the field file, at every extraction and through the
modelling operations; in real Blender with the real worker (colour attributes, materials, textures, point
clouds) and in the worker alone (the file, its checks, the composite's colour rules)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import MESHES
from headless import mesh_arrays
from test_blender import jobs_left, scene_state, worker_processes
from test_points_blender import addon_module, select_only, sphere_points, write_ply

from inr_worker import jobs, protocol
from inr_worker.fields import colour_field, operations
from inr_worker.fields.field_file import load_field, save_field

RED, BLUE = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])


def psnr(colours: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB of display (sRGB) values 0..1."""
    error = np.mean((colour_field.linear_to_srgb(colours) - colour_field.linear_to_srgb(truth)) ** 2)
    return float(10 * np.log10(1 / max(error, 1e-12)))


def half_and_half(points: np.ndarray) -> np.ndarray:
    """Red above z = 0, blue below."""
    return np.where(points[:, 2:3] > 0, RED, BLUE).astype(np.float32)


# --- the worker alone ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coloured_sphere(tmp_path_factory):
    """A UV sphere's field with its vertices coloured half red, half blue, saved; and its mesh."""
    vertices, triangles = _uv_sphere(48, 24)
    colours = colour_field.MeshColours(corner_colors=half_and_half(vertices)[triangles])
    field = jobs.fit(vertices, triangles, "FAST")
    plain = tmp_path_factory.mktemp("colour") / "plain.safetensors"
    save_field(plain, field)
    field.colours = colour_field.mesh_colour_set(field.model, field.frame.to_unit(vertices), triangles, colours)
    path = plain.with_name("coloured.safetensors")
    save_field(path, field)
    return path, plain, vertices, triangles


def _uv_sphere(segments: int, rings: int) -> tuple[np.ndarray, np.ndarray]:
    """A closed unit UV sphere."""
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack(
        [
            np.outer(np.sin(theta), np.cos(phi)),
            np.outer(np.sin(theta), np.sin(phi)),
            np.outer(np.cos(theta), np.ones_like(phi)),
        ],
        -1,
    ).reshape(-1, 3)
    vertices = np.concatenate([[[0, 0, 1]], ring, [[0, 0, -1]]])
    last = len(vertices) - 1
    faces = []
    for j in range(segments):
        k = (j + 1) % segments
        faces.append([0, 1 + j, 1 + k])
        faces.append([last, 1 + (rings - 2) * segments + k, 1 + (rings - 2) * segments + j])
        for i in range(rings - 2):
            a, b = 1 + i * segments + j, 1 + i * segments + k
            faces += [[a, a + segments, b], [b, a + segments, b + segments]]
    return vertices.astype(np.float64), np.asarray(faces, np.int64)


def source_colours(vertices: np.ndarray, triangles: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The half-and-half vertex colours of the mesh, interpolated over its triangles, at the surface points
    nearest to ``points``."""
    import igl

    _, faces, closest = igl.point_mesh_squared_distance(points, vertices, triangles)
    corners = vertices[triangles[faces]]
    barycentric = igl.barycentric_coordinates(closest, *(np.ascontiguousarray(corners[:, i]) for i in range(3)))
    return np.einsum("nk,nkc->nc", barycentric, half_and_half(vertices)[triangles[faces]])


def test_a_coloured_field_keeps_its_colours_at_any_resolution(coloured_sphere):
    path, plain, sphere_vertices, sphere_triangles = coloured_sphere
    field = load_field(path)
    assert field.colours is not None and load_field(plain).colours is None
    assert path.stat().st_size <= 1.6 * plain.stat().st_size
    for resolution in (32, 96):
        vertices, _ = jobs.extract(field, resolution)
        colours = colour_field.surface_colours(field, vertices)
        away = np.abs(vertices[:, 2]) > 0.1  # the seam itself blends
        assert psnr(colours[away], half_and_half(vertices)[away]) > 30
        assert psnr(colours, source_colours(sphere_vertices, sphere_triangles, vertices)) > 30


def test_a_field_file_whose_colours_do_not_match_its_band_is_refused(coloured_sphere, tmp_path):
    path, *_ = coloured_sphere
    field = load_field(path)
    assert isinstance(field.colours, colour_field.ColourMesh)  # a small mesh keeps its own coloured triangles
    broken = dataclasses.replace(field.colours, triangles=field.colours.triangles + len(field.colours.vertices))
    damaged = tmp_path / "damaged.safetensors"
    save_field(damaged, dataclasses.replace(field, colours=broken))
    with pytest.raises(protocol.ProtocolError, match="colours are damaged"):
        load_field(damaged)
    count = len(colour_field.coloured_surface_points(field.model, colour_field.CODES))
    short = colour_field.ColourSet(np.zeros((count - 1, 3), np.uint8))
    save_field(damaged, dataclasses.replace(field, colours=short))
    with pytest.raises(protocol.ProtocolError, match="colours are damaged"):
        load_field(damaged)
    tensors, metadata = protocol.read_safetensors(path.read_bytes())
    count = tensors["brick_keys"][1][0]
    oversized = {name: (dtype, shape, bytes(raw)) for name, (dtype, shape, raw) in tensors.items()}
    oversized[protocol.COLOUR_VALUES] = ("U8", (count * 64 + 1, 3), bytes((count * 64 + 1) * 3))
    protocol.write_safetensors(tmp_path / "oversized.safetensors", oversized, metadata)
    with pytest.raises(protocol.ProtocolError, match="re-fit"):  # refused before anything is allocated
        protocol.check_field((tmp_path / "oversized.safetensors").read_bytes())


def test_a_texture_through_uvs_is_sampled_into_a_colour_set(coloured_sphere):
    _, plain, vertices, triangles = coloured_sphere
    field = load_field(plain)
    latitude = np.arccos(np.clip(vertices[:, 2], -1, 1)) / np.pi  # v: 0 at the north pole
    corner_uvs = np.stack([np.zeros_like(latitude), 1 - latitude], 1)[triangles].astype(np.float32)
    rows = (np.arange(64) // 8 % 2).astype(bool)  # bands 8 texels high, red and blue
    image = np.where(rows[:, None, None], [255, 0, 0], [0, 0, 255]).astype(np.uint8) * np.ones((1, 4, 1), np.uint8)
    colours = colour_field.MeshColours(
        corner_colors=np.zeros((len(triangles), 3, 3), np.float32),
        corner_uvs=corner_uvs,
        face_image=np.zeros(len(triangles), np.int64),
        images=[image],
    )
    field.colours = colour_field.mesh_colour_set(field.model, field.frame.to_unit(vertices), triangles, colours)
    assert isinstance(field.colours, colour_field.ColourSet)  # a texture is sampled
    surface, _ = jobs.extract(field, 96)
    import igl

    _, faces, closest = igl.point_mesh_squared_distance(surface, vertices, triangles)
    corners = vertices[triangles[faces]]
    barycentric = igl.barycentric_coordinates(closest, *(np.ascontiguousarray(corners[:, i]) for i in range(3)))
    truth = colours.at(faces, np.clip(barycentric, 0, 1))
    assert psnr(colour_field.surface_colours(field, surface), truth) > 20


def test_a_union_takes_the_nearer_inputs_colour_and_a_morph_blends(coloured_sphere):
    path, plain, _, _ = coloured_sphere
    data, grey = path.read_bytes(), plain.read_bytes()
    shifted = np.eye(4)
    shifted[0, 3] = 1.5  # the second sphere beside the first, overlapping it
    inputs = [
        operations.PlacedInput(data, operations.load_field_bytes(data), np.eye(4)),
        operations.PlacedInput(grey, operations.load_field_bytes(grey), shifted),
    ]
    union = operations.build(operations.Operation("UNION"), inputs)
    vertices, _ = jobs.extract(union, 48)
    colours = colour_field.surface_colours(union, vertices)
    left, right = vertices[:, 0] < 0.3, vertices[:, 0] > 1.2
    top = vertices[:, 2] > 0.2
    assert psnr(colours[left & top], np.tile(RED, ((left & top).sum(), 1))) > 25
    assert np.allclose(colours[right], colour_field.DEFAULT_COLOUR, atol=1e-6)  # the uncoloured input is grey
    offset = operations.build(operations.Operation("OFFSET", distance=0.05), inputs[:1])
    vertices, _ = jobs.extract(offset, 40)
    colours = colour_field.surface_colours(offset, vertices)
    away = np.abs(vertices[:, 2]) > 0.2
    assert psnr(colours[away], half_and_half(vertices)[away]) > 25  # the nearest surface's colour
    morph = operations.build(operations.Operation("MORPH", factor=0.5), inputs)
    for surface in ("TRIANGLES", "QUADS"):
        vertices, faces = jobs.extract(morph, 48, surface=surface)
        assert faces.shape[1] == (4 if surface == "QUADS" else 3)
        colours = colour_field.surface_colours(morph, vertices)
        assert colours is not None and np.abs(colours[vertices[:, 2] > 0.3, 0] - (0.5 + 0.4)).max() < 0.1


BOX_TURN = np.array([[0.36, 0.48, -0.8], [-0.8, 0.6, 0.0], [0.48, 0.64, 0.6]])  # a rotation, off the grid's axes


def _box() -> tuple[np.ndarray, np.ndarray]:
    """A closed box 1 x 1 x 0.6 turned by ``BOX_TURN``, its faces wound outwards, two triangles a side."""
    vertices = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.3, 0.3)], np.float64)
    quads = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]
    triangles = np.array([[a, b, c] for a, b, c, d in quads] + [[a, c, d] for a, b, c, d in quads], np.int64)
    return vertices @ BOX_TURN.T, triangles


def test_a_vertex_on_an_edge_between_two_colours_takes_their_mean(tmp_path):
    """Vertices go onto the source's sharp edges, and points beyond a convex edge are nearest to the edge
    itself: the faces on both sides are equally near, so the colour there is their mean (display values),
    at fit time and when the stored field is re-extracted without the source."""
    vertices, triangles = _box()
    top = (vertices[triangles].mean(1) @ BOX_TURN)[:, 2] > 0.29
    corner_colours = np.where(top[:, None, None], RED, BLUE)[:, None, :].repeat(3, 1).astype(np.float32)
    field = jobs.fit(vertices, triangles, "FAST")
    unit_vertices = field.frame.to_unit(vertices)
    field.colours = colour_field.mesh_colour_set(
        field.model, unit_vertices, triangles, colour_field.MeshColours(corner_colors=corner_colours)
    )
    save_field(tmp_path / "box.safetensors", field)
    mean = colour_field.srgb_to_linear(np.array([0.5, 0.0, 0.5]))
    surface, _ = jobs.extract(field, 40, source=(vertices, triangles))
    in_box = surface @ BOX_TURN  # in the box's own axes
    beyond_top, beyond_side = in_box[:, 2] >= 0.3 - 1e-7, np.abs(in_box[:, :2]).max(1) >= 0.5 - 1e-7
    on_edge = beyond_top & beyond_side & (np.abs(in_box[:, :2]).min(1) < 0.4)  # not by the box's corners
    assert on_edge.sum() >= 8, on_edge.sum()
    on_top = (in_box[:, 2] > 0.29) & (np.abs(in_box[:, :2]).max(1) < 0.45)
    assert on_top.sum() > 8
    stored = load_field(tmp_path / "box.safetensors")
    for colours in (colour_field.surface_colours(field, surface), colour_field.surface_colours(stored, surface)):
        assert np.abs(colours[on_edge] - mean).max() < 0.02
        assert np.abs(colours[on_top] - RED).max() < 1e-6  # off the edge: the face's own colour
    surface, _ = jobs.extract(stored, 56)  # without the source: vertices on the field's zero level
    in_box = surface @ BOX_TURN
    on_top = (in_box[:, 2] > 0.29) & (np.abs(in_box[:, :2]).max(1) < 0.45)
    assert on_top.sum() > 8 and np.abs(colour_field.surface_colours(stored, surface)[on_top] - RED).max() < 1e-6


def test_a_large_mesh_with_one_colour_a_face_keeps_its_triangles(tmp_path):
    """A mesh whose triangles would not fit the field's colour budget as float32 keeps them as uint16
    steps (not one colour a band point, which cannot hold faces smaller than a cell), within 1.6x the bytes
    of the field without colour."""
    import igl

    vertices, triangles = igl.read_triangle_mesh(str(MESHES / "bunny_stanford.obj"))[:2]
    rng = np.random.default_rng(3)
    colours = colour_field.MeshColours(corner_colors=np.repeat(rng.random((len(triangles), 1, 3)), 3, 1))
    field = jobs.fit(vertices, triangles, "BALANCED")
    save_field(tmp_path / "plain.safetensors", field)
    field.colours = colour_field.mesh_colour_set(field.model, field.frame.to_unit(vertices), triangles, colours)
    assert isinstance(field.colours, colour_field.ColourMesh) and field.colours.stepped
    save_field(tmp_path / "coloured.safetensors", field)
    assert (tmp_path / "coloured.safetensors").stat().st_size <= 1.6 * (tmp_path / "plain.safetensors").stat().st_size
    surface, _ = jobs.extract(field, 160, source=(vertices, triangles))
    faces, barycentric = colour_field.nearest_on_triangles(vertices, triangles, surface)
    truth = colours.at(faces, barycentric)
    stored = load_field(tmp_path / "coloured.safetensors")
    at_fit, reread = (colour_field.surface_colours(each, surface) for each in (field, stored))
    assert np.array_equal(at_fit, reread)
    assert psnr(at_fit, truth) > 24


# --- in Blender, with the worker ------------------------------------------------------------------


def coloured_uv_sphere(bpy, domain: str = "POINT", data_type: str = "BYTE_COLOR"):
    """A UV sphere whose colour attribute (on points or corners) is red above the equator, blue below."""
    bpy.ops.mesh.primitive_uv_sphere_add(segments=48, ring_count=24, radius=1.0)
    sphere = bpy.context.active_object
    mesh = sphere.data
    attribute = mesh.color_attributes.new("Paint", data_type, domain)
    positions = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", positions)
    positions = positions.reshape(-1, 3)
    if domain == "CORNER":
        corners = np.empty(len(mesh.loops), np.int32)
        mesh.loops.foreach_get("vertex_index", corners)
        positions = positions[corners]
    rgba = np.ones((len(positions), 4), np.float32)
    rgba[:, :3] = half_and_half(positions)
    attribute.data.foreach_set("color", rgba.ravel())
    mesh.color_attributes.active_color = attribute
    return sphere


def result_colours(obj) -> np.ndarray:
    attribute = obj.data.color_attributes["Color"]
    assert attribute.domain == "POINT" and obj.data.color_attributes.active_color_name == "Color"
    rgba = np.empty(len(attribute.data) * 4, np.float32)
    attribute.data.foreach_get("color", rgba)
    return rgba.reshape(-1, 4)[:, :3]


@pytest.mark.parametrize("domain,data_type", [("POINT", "BYTE_COLOR"), ("CORNER", "FLOAT_COLOR")])
def test_fit_carries_a_colour_attribute_and_reextraction_keeps_it_without_the_source(scene, domain, data_type):
    bpy = pytest.importorskip("bpy")
    sphere = coloured_uv_sphere(bpy, domain, data_type)
    assert bpy.ops.inr.fit_mesh(resolution=32, preset="FAST") == {"FINISHED"}
    result = bpy.context.active_object
    vertices, _ = mesh_arrays(result)
    away = np.abs(vertices[:, 2]) > 0.15  # the equator blends over a ring of triangles
    assert psnr(result_colours(result)[away], half_and_half(vertices)[away]) > 30
    material = result.data.materials[0]
    nodes = [node for node in material.node_tree.nodes if node.type == "VERTEX_COLOR"]
    assert nodes and nodes[0].layer_name == "Color" and nodes[0].outputs["Color"].is_linked

    bpy.data.objects.remove(sphere)
    mine = bpy.data.materials.new("mine")
    result.data.materials[0] = mine  # the user's own material stays
    assert bpy.ops.inr.extract_mesh(resolution=64) == {"FINISHED"}
    vertices, _ = mesh_arrays(result)
    away = np.abs(vertices[:, 2]) > 0.15
    assert len(vertices) > 1000 and psnr(result_colours(result)[away], half_and_half(vertices)[away]) > 30
    assert list(result.data.materials) == [mine]
    assert not worker_processes() and not jobs_left(bpy)


def test_a_mesh_without_colour_fits_as_before(scene):
    bpy = pytest.importorskip("bpy")
    bpy.ops.mesh.primitive_uv_sphere_add()
    assert bpy.ops.inr.fit_mesh(resolution=24, preset="FAST") == {"FINISHED"}
    result = bpy.context.active_object
    assert not result.data.color_attributes and not result.data.materials


def test_a_textured_material_is_read_and_a_missing_texture_is_skipped_with_a_warning(scene, tmp_path):
    bpy = pytest.importorskip("bpy")
    colour_data = addon_module(bpy, "colour_data")
    bpy.ops.mesh.primitive_uv_sphere_add(segments=32, ring_count=16)
    sphere = bpy.context.active_object
    image = bpy.data.images.new("stripes", 64, 64)
    pixels = np.ones((64, 64, 4), np.float32)
    pixels[:32, :, :3] = (1.0, 0.0, 0.0)  # bottom half of the texture (v < 0.5) red
    pixels[32:, :, :3] = (0.0, 0.0, 1.0)
    image.pixels.foreach_set(pixels.ravel())
    material = bpy.data.materials.new("textured")
    tree = material.node_tree
    texture = tree.nodes.new("ShaderNodeTexImage")
    texture.image = image
    shader = tree.nodes["Principled BSDF"]
    tree.links.new(texture.outputs["Color"], shader.inputs["Base Color"])
    sphere.data.materials.append(material)

    depsgraph = bpy.context.evaluated_depsgraph_get()
    warnings: list[str] = []
    arrays = colour_data.joined_colours([sphere], depsgraph, warnings)
    assert not warnings and set(arrays) == {"corner_colors", "corner_uvs", "face_image", "image_0"}
    assert arrays["image_0"].dtype == np.uint8 and (arrays["face_image"] == 0).all()

    image.filepath = str(tmp_path / "gone.png")  # an image whose file is missing
    image.source = "FILE"
    image.reload()
    warnings = []
    arrays = colour_data.joined_colours([sphere], bpy.context.evaluated_depsgraph_get(), warnings)
    assert len(warnings) == 1 and "stripes" in warnings[0] and "skipped" in warnings[0]
    assert "image_0" not in arrays  # the flat base colour stands in
    before = len(bpy.data.objects)
    assert bpy.ops.inr.fit_mesh(resolution=24, preset="FAST") == {"FINISHED"}
    assert len(bpy.data.objects) == before + 1
    colours = result_colours(bpy.context.active_object)
    assert np.allclose(colours, colours.mean(0), atol=0.02)  # one flat colour, no texture


def test_a_coloured_point_cloud_gives_a_coloured_solid(scene, tmp_path):
    bpy = pytest.importorskip("bpy")
    points = sphere_points(3000)
    write_ply(tmp_path / "scan.ply", points, points, colour_field.linear_to_srgb(half_and_half(points)))
    assert bpy.ops.wm.ply_import(filepath=str(tmp_path / "scan.ply")) == {"FINISHED"}
    assert bpy.ops.inr.fit_mesh(resolution=32, preset="FAST") == {"FINISHED"}
    result = bpy.context.active_object
    vertices, _ = mesh_arrays(result)
    away = np.abs(vertices[:, 2]) > 0.15
    assert psnr(result_colours(result)[away], half_and_half(vertices)[away]) > 28
    assert result.data.materials[0].name == "Neural Field Color"


def test_combine_carries_each_inputs_colour(scene):
    bpy = pytest.importorskip("bpy")
    red = coloured_uv_sphere(bpy)
    assert bpy.ops.inr.fit_mesh(resolution=32, preset="FAST") == {"FINISHED"}
    first = bpy.context.active_object
    bpy.ops.mesh.primitive_uv_sphere_add(location=(1.5, 0, 0))
    grey = bpy.context.active_object
    assert bpy.ops.inr.fit_mesh(resolution=32, preset="FAST") == {"FINISHED"}
    second = bpy.context.active_object
    for obj in (red, grey):
        obj.hide_set(True)
    select_only(bpy, first, second)
    state = scene_state(bpy)
    assert bpy.ops.inr.combine(operation="UNION", resolution=40) == {"FINISHED"}
    assert scene_state(bpy) != state
    result = bpy.context.active_object
    vertices, _ = mesh_arrays(result)
    vertices = vertices @ np.array(result.matrix_world)[:3, :3].T + np.array(result.matrix_world)[:3, 3]
    colours = result_colours(result)
    left = (vertices[:, 0] < 0.3) & (np.abs(vertices[:, 2]) > 0.2)
    assert psnr(colours[left], half_and_half(vertices)[left]) > 25
    right = vertices[:, 0] > 1.2
    assert np.allclose(colours[right], 0.8, atol=0.01)


@pytest.mark.parametrize("suffix, surface_format", [(".ply", "ply"), (".glb", "obj")])
def test_batch_carries_a_meshs_vertex_colours_into_its_outputs(coloured_sphere, suffix, surface_format):
    import trimesh

    from inr_worker import batch

    _, _, vertices, triangles = coloured_sphere
    srgb = np.round(colour_field.linear_to_srgb(half_and_half(vertices)) * 255).astype(np.uint8)
    mesh = trimesh.Trimesh(vertices, triangles, vertex_colors=srgb, process=False)  # red and blue: linear too
    config = batch.BatchConfig(preset="FAST", resolutions=(32,), surface_format=surface_format)
    done = batch.process_mesh(suffix, bytes(mesh.export(file_type=suffix[1:])), None, (32,), config, threads=1)
    assert done["row"]["status"] == "done", done["row"]
    stream = trimesh.util.wrap_as_stream(done["files"][32])
    surface = trimesh.load(stream, file_type=surface_format, process=False)
    colours = colour_field.from_bytes(np.asarray(surface.visual.vertex_colors)[:, :3])
    away = np.abs(surface.vertices[:, 2]) > 0.15
    assert away.sum() > 200 and psnr(colours[away], half_and_half(np.asarray(surface.vertices))[away]) > 30
    assert operations.load_field_bytes(done["files"]["field"]).colours is not None  # kept for later extractions
