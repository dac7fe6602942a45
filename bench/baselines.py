"""What the benchmark measures the field against: the exact-SDF floor, Blender's Voxel Remesh (the
operator an artist presses, which projects the new vertices onto the source, and the Remesh modifier in
Voxel mode, which does not), Geometry Nodes' Mesh to SDF Grid -> Grid to Mesh, and point-cloud-utils'
make_mesh_watertight; a peak-memory probe; and a CAD-like test part. Each method returns (vertices,
triangles) in the mesh's own coordinates, or a Blender object."""

from __future__ import annotations

import threading
import time
from typing import Self

import igl
import numpy as np
import psutil
from headless import select_only
from meshmetrics import compare_arrays, unit_frame
from sdf_floor import floor as dense_floor
from skimage.measure import marching_cubes

from inr_worker.sources.sampling import MeshDistance

METRICS = ("chamfer_l1", "f_score", "normal_consistency", "iou", "boundary_edges", "nonmanifold_edges")
DENSE_FLOOR_MAX = 256  # above this the floor samples the exact distance on a narrow band only


def scores(reference: tuple, candidate: tuple) -> dict:
    metrics = compare_arrays(*reference, *candidate, samples=100_000)
    nonmanifold_vertices = int((~np.asarray(igl.is_vertex_manifold(candidate[1])).astype(bool)).sum())
    return {key: metrics[key] for key in METRICS} | {
        "triangles": len(candidate[1]),
        "nonmanifold_vertices": nonmanifold_vertices,
    }


def face_stats(obj) -> dict:
    """A Blender mesh object's face count and the share of its faces that are quads."""
    sides = np.empty(len(obj.data.polygons), np.int32)
    obj.data.polygons.foreach_get("loop_total", sides)
    return {"faces": len(sides), "quad_share": float((sides == 4).mean()) if len(sides) else 0.0}


class PeakMemory:
    """Polls the resident memory of this process and of its children while a block runs.

    ``own_MB``: this process's peak above what it held at the start; ``children_MB``: the children's peak.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.own_MB = self.children_MB = 0.0

    def _poll(self) -> None:
        start = self._process.memory_info().rss
        while not self._stop.is_set():
            own = self._process.memory_info().rss - start
            children = 0
            for child in self._process.children(recursive=True):
                try:
                    children += child.memory_info().rss
                except psutil.Error:
                    pass
            self.own_MB = max(self.own_MB, own / 1e6)
            self.children_MB = max(self.children_MB, children / 1e6)
            self._stop.wait(self._interval)

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.monotonic() - self.started
        self._stop.set()
        self._thread.join()


def exact_floor(path: str, vertices: np.ndarray, triangles: np.ndarray, resolution: int) -> tuple[dict, tuple]:
    """The exact signed distance sampled on the grid of ``sdf_floor.py`` and meshed by marching cubes.

    Up to DENSE_FLOOR_MAX this is ``sdf_floor.floor`` itself (scores only); above, the same grid is
    sampled exactly only in blocks near the surface (or where the winding number's side changes),
    and elsewhere holds +-1 by the block's side, which gives the same surface in far less time.
    """
    if resolution <= DENSE_FLOOR_MAX:
        metrics = dense_floor(path, resolution)
        return {key: metrics[key] for key in METRICS} | {"triangles": metrics["candidate_faces"]}, None
    centre, size = unit_frame(vertices)
    unit = (vertices - centre) / size
    cell = 1.0 / resolution
    n = np.ceil((unit.max(0) - unit.min(0)) / cell).astype(int) + 5
    origin = -n * cell / 2
    distance = MeshDistance(unit, triangles.astype(np.int64))
    block = 8
    blocks = -(-(n + 1) // block)
    index = np.argwhere(np.ones(blocks, dtype=bool))
    centres = origin + (index * block + (block - 1) / 2) * cell
    inside = distance.inside(centres).reshape(blocks)
    changed = np.zeros_like(inside)
    for axis in range(3):
        differs = np.diff(inside.astype(np.int8), axis=axis) != 0
        low = [slice(None)] * 3
        high = [slice(None)] * 3
        low[axis], high[axis] = slice(0, -1), slice(1, None)
        changed[tuple(low)] |= differs
        changed[tuple(high)] |= differs
    near = distance.unsigned(centres) < np.sqrt(3) / 2 * (block - 1) * cell + 2 * cell
    near |= changed.reshape(-1)
    values = np.where(inside, -1.0, 1.0).astype(np.float32)
    values = values.repeat(block, 0).repeat(block, 1).repeat(block, 2)[: n[0] + 1, : n[1] + 1, : n[2] + 1]
    values = np.ascontiguousarray(values)
    local = np.argwhere(np.ones((block,) * 3, dtype=bool))
    for start in range(0, int(near.sum()), 4096):
        points = (index[near][start : start + 4096, None] * block + local).reshape(-1, 3)
        points = points[(points <= n).all(1)]
        values[tuple(points.T)] = distance.signed(origin + points * cell)
    found, faces, _, _ = marching_cubes(values, 0.0, spacing=(cell,) * 3)
    mesh = ((found + origin) * size + centre, faces[:, ::-1].astype(np.int64))
    return scores((vertices, triangles), mesh), mesh


def watertight(vertices: np.ndarray, triangles: np.ndarray, resolution: int) -> tuple:
    """point-cloud-utils' make_mesh_watertight (Manifold), with about as many octree leaves as a
    ``resolution`` grid has cells on the surface (2 * resolution^2)."""
    import point_cloud_utils as pcu

    found, faces = pcu.make_mesh_watertight(vertices, triangles.astype(np.int32), resolution=2 * resolution**2, seed=0)
    return np.asarray(found, np.float64), np.asarray(faces, np.int64)


def voxel_remesh_operator(bpy, source, resolution: int, adaptivity: float = 0.0):
    """Blender's Voxel Remesh operator (``object.voxel_remesh``, what sculpt mode's Ctrl+R and the Remesh
    panel's button run) on a copy of ``source``, with its defaults (Preserve Volume on, adaptivity 0, or
    ``adaptivity``) and voxel size = longest side / resolution."""
    remeshed = _copy(bpy, source, f"{source.name}_voxel_operator_{resolution}")
    remeshed.data.remesh_voxel_size = max(source.dimensions) / resolution
    remeshed.data.remesh_voxel_adaptivity = adaptivity
    select_only(bpy, remeshed)
    if bpy.ops.object.voxel_remesh() != {"FINISHED"}:
        raise RuntimeError(f"Voxel Remesh failed on {source.name}")
    return remeshed


def voxel_remesh(bpy, source, resolution: int):
    """Blender's Remesh modifier in Voxel mode (voxel size = longest side / resolution), applied to a copy
    of ``source``: no projection onto the source."""
    remeshed = _copy(bpy, source, f"{source.name}_voxel_{resolution}")
    modifier = remeshed.modifiers.new("remesh", "REMESH")
    modifier.mode = "VOXEL"
    modifier.voxel_size = max(source.dimensions) / resolution
    _apply(bpy, remeshed, modifier.name)
    return remeshed


def sdf_grid_nodes(bpy, source, resolution: int):
    """Geometry Nodes: Mesh to SDF Grid (voxel size = longest side / resolution) -> Grid to Mesh at 0."""
    remeshed = _copy(bpy, source, f"{source.name}_sdfgrid_{resolution}")
    tree = bpy.data.node_groups.new(f"sdf_grid_{resolution}", "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    group_in, group_out = tree.nodes.new("NodeGroupInput"), tree.nodes.new("NodeGroupOutput")
    to_grid, to_mesh = tree.nodes.new("GeometryNodeMeshToSDFGrid"), tree.nodes.new("GeometryNodeGridToMesh")
    to_grid.inputs["Voxel Size"].default_value = max(source.dimensions) / resolution
    to_mesh.inputs["Threshold"].default_value = 0.0
    tree.links.new(group_in.outputs[0], to_grid.inputs["Mesh"])
    tree.links.new(to_grid.outputs["SDF Grid"], to_mesh.inputs["Grid"])
    tree.links.new(to_mesh.outputs["Mesh"], group_out.inputs[0])
    modifier = remeshed.modifiers.new("sdf_grid", "NODES")
    modifier.node_group = tree
    _apply(bpy, remeshed, modifier.name)
    return remeshed


def _copy(bpy, source, name: str):
    copy = source.copy()
    copy.data = source.data.copy()
    copy.name = name
    bpy.context.scene.collection.objects.link(copy)
    return copy


def _apply(bpy, obj, modifier: str) -> None:
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.modifier_apply(modifier=modifier)


def cad_part(bpy) -> tuple[np.ndarray, np.ndarray]:
    """A CAD-like part made with exact booleans: a 2 x 1.2 x 0.4 plate with a round boss on top, a hole
    through boss and plate, and a rectangular slot cut into one end. Returns triangles, closed."""
    made = []

    def add(operator, **settings):
        operator(**settings)
        made.append(bpy.context.active_object)
        return made[-1]

    plate = add(bpy.ops.mesh.primitive_cube_add, size=1, scale=(2.0, 1.2, 0.4))
    boss = add(bpy.ops.mesh.primitive_cylinder_add, vertices=64, radius=0.35, depth=0.5, location=(0.3, 0, 0.35))
    hole = add(bpy.ops.mesh.primitive_cylinder_add, vertices=48, radius=0.15, depth=2.0, location=(0.3, 0, 0))
    slot = add(bpy.ops.mesh.primitive_cube_add, size=1, scale=(0.6, 0.3, 1.0), location=(-0.8, 0, 0))
    for other, operation in ((boss, "UNION"), (hole, "DIFFERENCE"), (slot, "DIFFERENCE")):
        modifier = plate.modifiers.new(f"{operation}_{other.name}", "BOOLEAN")
        modifier.operation, modifier.object, modifier.solver = operation, other, "EXACT"
    bpy.context.view_layer.objects.active = plate
    for modifier in list(plate.modifiers):
        bpy.ops.object.modifier_apply(modifier=modifier.name)
    bpy.ops.object.transform_apply(location=False, rotation=False, scale=True)
    mesh = plate.data
    mesh.calc_loop_triangles()
    vertices = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", vertices)
    triangles = np.empty(len(mesh.loop_triangles) * 3, np.int64)
    mesh.loop_triangles.foreach_get("vertices", triangles)
    for obj in made:
        bpy.data.objects.remove(obj)
    return vertices.reshape(-1, 3), triangles.reshape(-1, 3)
