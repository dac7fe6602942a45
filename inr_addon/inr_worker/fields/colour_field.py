"""Colour carried by a field: the source's colour at the band's fine grid points next to the surface.

A field's colour set holds one colour for every fine grid point of the narrow band whose stored
distance code is within ``codes`` of zero (about 0.75 cells from the surface). Their positions are not
stored: they follow from the band's own values, so the colours cost 3 bytes (sRGB uint8) a point. Each
point stands for the surface point nearest to it (the grid point moved along the field's gradient by
its distance), and took the source's colour there when it was fitted: a mesh's interpolated corner
colours or its texture through its UV map, a point cloud's nearest points. A surface extracted at any
resolution reads the colour of a vertex as the inverse-distance blend of its nearest colour points.

Composite fields (Combine, Offset, Morph) read each input's colour at the point: a union takes the
colour of the nearer input and blends it inside the blend radius, an offset keeps the nearest
surface's colour and a morph interpolates the two inputs' colours with the factor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import igl
import numpy as np
import torch
from scipy.spatial import cKDTree

from .. import protocol
from ..protocol import DOMAIN_HALF_EXTENT
from .band_field import VALUE_CODES, BandField, quantise

CODES = 53  # grid points whose distance, as an int8 code over the band (-127..127), is within this of zero carry a colour (0.75 of the 1.8-cell band)
NEIGHBOURS = 4  # colour points blended at each vertex
POINT_NEIGHBOURS = 4  # a point cloud's points blended at each colour point
DEFAULT_COLOUR = (0.8, 0.8, 0.8)  # linear; what an input without colour shows beside one with colour
CHUNK = 262_144
OWN_TRIANGLES_SHARE = 0.3  # coloured triangles are kept where they take at most this share of the field's bytes
# (of a field with int16 band values: about what 0.55 of a field with int8 ones allowed)
SHARED_TOLERANCE = 1e-6  # unit frame: a nearest point this close to a face lies on it too (edges and corners it shares)
POSITION_STEP = 2 * DOMAIN_HALF_EXTENT / 65535  # large meshes' stored corners: uint16 steps across the field's domain
STEPPED_SHARED_TOLERANCE = POSITION_STEP / 2  # SHARED_TOLERANCE for corners moved onto those steps


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """Display (sRGB) values 0..1 as linear ones."""
    srgb = np.clip(srgb, 0.0, 1.0)
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear values 0..1 as display (sRGB) ones."""
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055).astype(np.float32)


def to_bytes(linear: np.ndarray) -> np.ndarray:
    """Linear colours as uint8 sRGB codes."""
    return np.round(linear_to_srgb(linear) * 255).astype(np.uint8)


_LINEAR_OF_BYTE = srgb_to_linear(np.arange(256, dtype=np.float64) / 255)


def from_bytes(codes: np.ndarray) -> np.ndarray:
    """uint8 sRGB codes as linear colours (float32)."""
    return _LINEAR_OF_BYTE[codes]


def coloured_grid_indices(model: BandField, codes: int) -> np.ndarray:
    """The integer fine-grid indices (N, 3) of the band's points whose stored code is within ``codes`` of
    zero, in the band's storage order (brick by brick, then within each brick)."""
    config = model.config
    stored = np.abs(quantise(model.brick_values.detach().cpu(), config.band).numpy().astype(np.int64))
    # int8 codes (-127..127) from the stored int16 ones, in integers, so that a saved field selects the same points
    rows, local = np.nonzero(stored * 127 <= codes * VALUE_CODES + VALUE_CODES // 2)
    side, brick = config.bricks_per_side, config.brick
    keys = model.brick_keys.cpu().numpy()[rows]
    corner = np.stack([keys // (side * side), keys // side % side, keys % side], 1) * brick
    return corner + np.stack([local // (brick * brick), local // brick % brick, local % brick], 1)


@torch.no_grad()
def surface_points(model: BandField, indices: np.ndarray) -> np.ndarray:
    """The unit-frame surface point (N, 3) that each fine grid point stands for: the point moved by its
    stored distance along the stored values' gradient (central differences on the grid)."""
    cell = model.config.cell
    points = torch.from_numpy(indices).to(model.brick_keys.device)
    value, _ = model._point_values(points)
    gradient = torch.stack(
        [model._point_values(points + step)[0] - model._point_values(points - step)[0] for step in torch.eye(3).long()],
        1,
    )
    normal = gradient / gradient.norm(dim=1, keepdim=True).clamp(min=1e-12)
    positions = (points.double() * cell - DOMAIN_HALF_EXTENT) - value[:, None].double() * normal.double()
    return positions.float().cpu().numpy()


def coloured_surface_points(model: BandField, codes: int) -> np.ndarray:
    """The surface points (N, 3) that a field's colours stand for, in their stored order."""
    return surface_points(model, coloured_grid_indices(model, codes))


@dataclasses.dataclass
class ColourSet:
    """The field's colours: ``values`` (N, 3) uint8 sRGB for its coloured grid points (``codes``)."""

    values: np.ndarray
    codes: int = CODES
    _tree: cKDTree | None = None

    def attach(self, model: BandField) -> None:
        """Place the colours on the field's surface; raises ValueError where their count does not match it."""
        positions = coloured_surface_points(model, self.codes)
        if len(positions) != len(self.values):
            raise ValueError(f"{len(self.values)} colours for {len(positions)} coloured points")
        self.place(positions)

    def stored_arrays(self) -> dict[str, np.ndarray]:
        return {protocol.COLOUR_VALUES: np.asarray(self.values, np.uint8)}

    def metadata(self) -> dict[str, str]:
        return {"colour_codes": str(self.codes)}

    def place(self, positions: np.ndarray) -> None:
        """Where the colours lie (unit frame), one row each."""
        self._tree = cKDTree(positions) if len(positions) else None

    def colours_at(self, points: np.ndarray) -> np.ndarray:
        """Linear colours (K, 3) at unit-frame ``points``: inverse-distance blend of the nearest colour points."""
        if self._tree is None:
            return np.tile(np.asarray(DEFAULT_COLOUR, np.float32), (len(points), 1))
        count = min(NEIGHBOURS, len(self.values))
        distances, nearest = self._tree.query(np.asarray(points, np.float64), k=count, workers=-1)
        distances, nearest = distances.reshape(len(points), count), nearest.reshape(len(points), count)
        weights = 1.0 / np.maximum(distances, 1e-6) ** 2
        weights /= weights.sum(1, keepdims=True)
        return np.einsum("nk,nkc->nc", weights, from_bytes(self.values)[nearest]).astype(np.float32)


def on_position_steps(unit_points: np.ndarray) -> np.ndarray:
    """Unit-frame points moved onto the uint16 position steps (float32)."""
    codes = np.clip(np.round((unit_points + DOMAIN_HALF_EXTENT) / POSITION_STEP), 0, 65535)
    return (codes * POSITION_STEP - DOMAIN_HALF_EXTENT).astype(np.float32)


@dataclasses.dataclass
class ColourMesh:
    """The source's own triangles (unit frame) with their corner colours (T, 3, 3) uint8 sRGB: exact
    colours, hard edges between faces included, for meshes without textures whose triangles fit within
    ``OWN_TRIANGLES_SHARE`` of the field's bytes (stored with float32 corners, or ``stepped``: uint16
    steps across the domain where float32 would not fit; uint16 indices where they fit, and one colour a
    face where the corners agree)."""

    vertices: np.ndarray
    triangles: np.ndarray
    corner_colours: np.ndarray
    stepped: bool = False  # the corners lie on the uint16 position steps, and are stored as such

    def check(self) -> None:
        """Raise ValueError where the arrays do not describe coloured triangles."""
        if not np.isfinite(self.vertices).all():
            raise ValueError("colour mesh vertices are not finite")
        if len(self.triangles) and (self.triangles.min() < 0 or self.triangles.max() >= len(self.vertices)):
            raise ValueError("colour mesh triangles point at missing vertices")

    def stored_arrays(self) -> dict[str, np.ndarray]:
        """Vertices as float32 or uint16 steps; indices as uint16 where they fit; one colour a face where its
        corners agree."""
        colours = np.asarray(self.corner_colours, np.uint8)
        if (colours == colours[:, :1]).all():
            colours = colours[:, :1]
        index_type = np.uint16 if len(self.vertices) <= 1 << 16 else np.int32
        vertices = np.asarray(self.vertices, np.float32)
        if self.stepped:
            steps = np.round((np.asarray(self.vertices, np.float64) + DOMAIN_HALF_EXTENT) / POSITION_STEP)
            vertices = np.clip(steps, 0, 65535).astype(np.uint16)
        return {
            protocol.COLOUR_MESH_VERTICES: vertices,
            protocol.COLOUR_MESH_TRIANGLES: np.asarray(self.triangles, index_type),
            protocol.COLOUR_MESH_COLOURS: colours,
        }

    def stored_bytes(self) -> int:
        return sum(array.nbytes for array in self.stored_arrays().values())

    def metadata(self) -> dict[str, str]:
        return {}

    def colours_at(self, points: np.ndarray) -> np.ndarray:
        """Linear colours (K, 3) at unit-frame ``points``: the colour at the nearest point of the triangles
        (the mean of the faces' colours where that point is on an edge or corner they share)."""
        corner_colours = from_bytes(self.corner_colours)

        def colour_of(faces: np.ndarray, barycentric: np.ndarray) -> np.ndarray:
            return np.einsum("nk,nkc->nc", barycentric, corner_colours[faces])

        vertices = np.asarray(self.vertices, np.float64)
        triangles = np.asarray(self.triangles, np.int64)
        tolerance = STEPPED_SHARED_TOLERANCE if self.stepped else SHARED_TOLERANCE
        return colours_at_nearest(vertices, triangles, points, colour_of, tolerance)


Colours = ColourSet | ColourMesh


def nearest_on_triangles(
    vertices: np.ndarray, triangles: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the nearest triangle and the barycentric coordinates of the nearest point on it."""
    _, faces, closest = igl.point_mesh_squared_distance(points, vertices, triangles)
    corners = vertices[triangles[faces]]
    barycentric = igl.barycentric_coordinates(
        closest, *(np.ascontiguousarray(corners[:, i], np.float64) for i in range(3))
    )
    barycentric = np.clip(np.nan_to_num(barycentric, nan=1 / 3), 0, 1)
    return faces, barycentric / np.maximum(barycentric.sum(1, keepdims=True), 1e-12)


def colours_at_nearest(
    vertices: np.ndarray,
    triangles: np.ndarray,
    points: np.ndarray,
    colour_of: Callable[[np.ndarray, np.ndarray], np.ndarray],
    tolerance: float = SHARED_TOLERANCE,
) -> np.ndarray:
    """Linear colours (K, 3) of a mesh at its surface points nearest to ``points``; ``colour_of(faces,
    barycentric)`` gives a face's linear colour at a point of it.

    A nearest point on an edge or a corner lies on every face that shares it, and each of those faces is
    as near as the nearest one: which face's colour is right is a tie (convex parts of a mesh send every
    point beyond an edge onto that edge). There the colour is the mean of those faces' colours, in display
    (sRGB) values: the colour nearest, on average, to whichever face a tie-break picks."""
    points = np.asarray(points, np.float64)
    faces, barycentric = nearest_on_triangles(vertices, triangles, points)
    colours = np.asarray(colour_of(faces, barycentric), np.float32)
    on_point = np.einsum("nk,nkd->nd", barycentric, vertices[triangles[faces]])
    edge_distance, _ = _inside_distances(on_point, vertices[triangles[faces]])
    shared = np.flatnonzero(edge_distance.min(1) <= tolerance)
    if not len(shared):
        return colours
    # every face that holds the point holds the nearest face's corner with the largest weight
    corner = triangles[faces[shared], barycentric[shared].argmax(1)]
    order = np.argsort(triangles.ravel(), kind="stable")
    starts = np.searchsorted(triangles.ravel()[order], np.arange(len(vertices) + 1))
    counts = starts[corner + 1] - starts[corner]
    rows = np.repeat(np.arange(len(shared)), counts)
    offsets = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    candidates = order[np.repeat(starts[corner], counts) + offsets] // 3
    distance, weights = _inside_distances(on_point[shared][rows], vertices[triangles[candidates]])
    holds = (distance.min(1) >= -tolerance) & np.isfinite(weights).all(1)
    holds &= np.abs(_plane_distances(on_point[shared][rows], vertices[triangles[candidates]])) <= tolerance
    rows, candidates, weights = rows[holds], candidates[holds], np.clip(weights[holds], 0, None)
    weights /= np.maximum(weights.sum(1, keepdims=True), 1e-12)
    display = linear_to_srgb(np.asarray(colour_of(candidates, weights), np.float32))
    sums = np.zeros((len(shared), 3), np.float64)
    np.add.at(sums, rows, display)
    tied = np.bincount(rows, minlength=len(shared))
    several = tied > 1  # the nearest face is always among them; one alone keeps its exact colour
    colours[shared[several]] = srgb_to_linear(sums[several] / tied[several, None])
    return colours


def _inside_distances(points: np.ndarray, corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For points (N, 3) near the planes of triangles (N, 3, 3): the signed distances (N, 3) within each
    plane to the lines of the edges opposite each corner (positive inside), and the barycentric weights
    (N, 3) of the points' projections (non-finite for degenerate triangles)."""
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    doubled_area = np.linalg.norm(normal, axis=1)
    unit_normal = normal / np.maximum(doubled_area, 1e-300)[:, None]
    weights = np.empty((len(points), 3))
    distances = np.empty((len(points), 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        for corner in range(3):
            start, end = corners[:, (corner + 1) % 3], corners[:, (corner + 2) % 3]
            signed_area = np.einsum("nd,nd->n", np.cross(start - points, end - points), unit_normal)
            weights[:, corner] = signed_area / doubled_area
            distances[:, corner] = signed_area / np.linalg.norm(end - start, axis=1)
    return np.nan_to_num(distances, nan=-np.inf), weights


def _plane_distances(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Distances (N,) of points from the planes of triangles (N, 3, 3) (zero for degenerate triangles)."""
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(normal, axis=1)
    return np.einsum("nd,nd->n", points - corners[:, 0], normal) / np.maximum(length, 1e-300)


def read_colours(arrays: dict[str, np.ndarray], metadata: dict[str, str], model: BandField) -> Colours | None:
    """A field file's colours (already checked for shape by ``protocol.check_field``), or None; raises
    ValueError where they do not fit the field."""
    if protocol.COLOUR_VALUES in arrays:
        codes = int(metadata.get("colour_codes", CODES))
        if not 0 < codes <= 127:
            raise ValueError(f"colour codes {codes}")
        colour_set = ColourSet(arrays[protocol.COLOUR_VALUES].copy(), codes)
        colour_set.attach(model)
        return colour_set
    if protocol.COLOUR_MESH_TRIANGLES in arrays:
        colours = arrays[protocol.COLOUR_MESH_COLOURS]
        vertices = arrays[protocol.COLOUR_MESH_VERTICES]
        stepped = vertices.dtype == np.uint16
        mesh = ColourMesh(
            (vertices * POSITION_STEP - DOMAIN_HALF_EXTENT).astype(np.float32) if stepped else vertices.copy(),
            arrays[protocol.COLOUR_MESH_TRIANGLES].astype(np.int64),
            np.repeat(colours, 3 // colours.shape[1], axis=1),
            stepped,
        )
        mesh.check()
        return mesh
    return None


# --- the source's colours --------------------------------------------------------------------


@dataclasses.dataclass
class MeshColours:
    """A mesh's colour: per triangle corner (T, 3, 3) linear, and optionally textures through UVs:
    ``corner_uvs`` (T, 3, 2), ``face_image`` (T,) index into ``images`` or -1 for the corner colours;
    images are (H, W, 3) uint8 sRGB or float linear, row 0 at the bottom (as Blender stores them)."""

    corner_colors: np.ndarray
    corner_uvs: np.ndarray | None = None
    face_image: np.ndarray | None = None
    images: list[np.ndarray] = dataclasses.field(default_factory=list)

    @classmethod
    def of(cls, arrays: Any) -> MeshColours | None:
        """From a job's colour arrays (``corner_colors``, ``corner_uvs``, ``face_image``, ``image_<i>``)."""
        if "corner_colors" not in arrays:
            return None
        images: list[np.ndarray] = []
        while f"image_{len(images)}" in arrays:
            images.append(arrays[f"image_{len(images)}"])
        textured = "corner_uvs" in arrays and "face_image" in arrays
        return cls(
            corner_colors=np.asarray(arrays["corner_colors"], np.float32),
            corner_uvs=np.asarray(arrays["corner_uvs"], np.float32) if textured else None,
            face_image=np.asarray(arrays["face_image"], np.int64) if textured else None,
            images=images,
        )

    def check(self, triangle_count: int) -> None:
        """Raise ValueError where the arrays do not fit the mesh's triangles."""
        if self.corner_colors.shape != (triangle_count, 3, 3):
            raise ValueError(f"corner colours of shape {self.corner_colors.shape} for {triangle_count} triangles")
        if self.face_image is not None and self.corner_uvs is not None:
            if self.corner_uvs.shape != (triangle_count, 3, 2) or self.face_image.shape != (triangle_count,):
                raise ValueError("texture coordinates do not match the triangles")
            if len(self.face_image) and self.face_image.max() >= len(self.images):
                raise ValueError("a triangle refers to a texture that was not sent")

    def at(self, faces: np.ndarray, barycentric: np.ndarray) -> np.ndarray:
        """Linear colours at points given by their triangle and barycentric coordinates."""
        colours = np.einsum("nk,nkc->nc", barycentric, self.corner_colors[faces])
        if self.face_image is None or self.corner_uvs is None:
            return colours.astype(np.float32)
        which = self.face_image[faces]
        for index, image in enumerate(self.images):
            mine = np.flatnonzero(which == index)
            if len(mine):
                uv = np.einsum("nk,nkc->nc", barycentric[mine], self.corner_uvs[faces[mine]])
                colours[mine] = sample_image(image, uv)
        return colours.astype(np.float32)


def sample_image(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear, repeating lookup of an image (H, W, 3; uint8 sRGB or float linear) at UVs (N, 2): linear RGB."""
    height, width = image.shape[:2]
    x = np.mod(uv[:, 0], 1.0) * width - 0.5
    y = np.mod(uv[:, 1], 1.0) * height - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    linear = image if image.dtype != np.uint8 else None

    def texel(row: np.ndarray, column: np.ndarray) -> np.ndarray:
        row, column = np.mod(row, height), np.mod(column, width)
        if linear is not None:
            return np.asarray(linear[row, column, :3], np.float32)
        return from_bytes(image[row, column, :3])

    top = texel(y0, x0) * (1 - fx) + texel(y0, x0 + 1) * fx
    bottom = texel(y0 + 1, x0) * (1 - fx) + texel(y0 + 1, x0 + 1) * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def mesh_colour_set(
    model: BandField, unit_vertices: np.ndarray, triangles: np.ndarray, colours: MeshColours
) -> Colours:
    """A mesh field's colours: the source's own coloured triangles where they carry no texture and take at
    most ``OWN_TRIANGLES_SHARE`` of the field's bytes without colour, else the colour set, where each
    coloured grid point takes the mesh's colour at its nearest surface point."""
    textured = colours.face_image is not None and bool((colours.face_image >= 0).any())
    if not textured:
        used, compact = np.unique(triangles, return_inverse=True)
        corner_colours = to_bytes(colours.corner_colors.reshape(-1, 3)).reshape(-1, 3, 3)
        field_bytes = sum(array.nbytes for array in model.stored_arrays().values())
        corners = unit_vertices[used]
        for own in (
            ColourMesh(corners.astype(np.float32), compact.reshape(-1, 3), corner_colours),
            ColourMesh(on_position_steps(corners), compact.reshape(-1, 3), corner_colours, stepped=True),
        ):
            if own.stored_bytes() <= OWN_TRIANGLES_SHARE * field_bytes:
                return own
    indices = coloured_grid_indices(model, CODES)
    positions = surface_points(model, indices)
    values = np.zeros((len(positions), 3), np.uint8)
    if len(positions):
        vertices = np.ascontiguousarray(unit_vertices, np.float64)
        values = to_bytes(colours_at_nearest(vertices, triangles, positions, colours.at))
    colour_set = ColourSet(values, CODES)
    colour_set.place(positions)
    return colour_set


def points_colour_set(model: BandField, unit_points: np.ndarray, colors: np.ndarray) -> ColourSet:
    """The colour set of a point cloud's field: each coloured grid point's surface point takes the
    inverse-distance blend of its nearest points' colours."""
    positions = coloured_surface_points(model, CODES)
    count = min(POINT_NEIGHBOURS, len(unit_points))
    distances, nearest = cKDTree(unit_points).query(positions.astype(np.float64), k=count, workers=-1)
    distances, nearest = distances.reshape(len(positions), count), nearest.reshape(len(positions), count)
    weights = 1.0 / np.maximum(distances, 1e-6) ** 2
    weights /= weights.sum(1, keepdims=True)
    values = to_bytes(np.einsum("nk,nkc->nc", weights, np.asarray(colors, np.float32)[nearest]))
    colour_set = ColourSet(values, CODES)
    colour_set.place(positions)
    return colour_set


# --- colours of fitted and composite fields ----------------------------------------------------


def has_colours(field: Any) -> bool:
    """Whether a fitted field, or any input of a composite, carries colours."""
    inputs = getattr(field, "inputs", None)
    if inputs is not None:
        return any(has_colours(placed.field) for placed in inputs)
    return getattr(field, "colours", None) is not None


def colours_at(field: Any, points: np.ndarray) -> np.ndarray:
    """Linear colours (K, 3) of a fitted or composite field at unit-frame ``points``."""
    inputs = getattr(field, "inputs", None)
    if inputs is None:
        own: Colours | None = field.colours
        if own is None:
            return np.tile(np.asarray(DEFAULT_COLOUR, np.float32), (len(points), 1))
        return own.colours_at(points)
    model = field.model
    operation = field.operation
    placed_points = torch.from_numpy(np.asarray(points, np.float32))
    colours, distances = [], []
    for placed, part in zip(inputs, model.parts, strict=True):
        device = part.matrix.device
        inside = placed_points.to(device)
        local = (inside @ part.matrix.T + part.offset).cpu().numpy()
        colours.append(colours_at(placed.field, local))
        distances.append(part.evaluate(inside).cpu().numpy())
    kind = operation.kind
    if kind == "OFFSET":
        return colours[0]
    if kind == "MORPH":
        return ((1 - model.factor) * colours[0] + model.factor * colours[1]).astype(np.float32)
    # on a boolean's surface, the input whose own surface it is reads closest to zero (a cut face is the tool's)
    nearness = np.abs(np.stack(distances, 1))
    return _blend(np.stack(colours, 1), nearness, model.blend)


def _blend(colours: np.ndarray, nearness: np.ndarray, radius: float) -> np.ndarray:
    """Per point, the colour of the input with the least ``nearness``; within ``radius`` of a tie, a smooth
    blend of the inputs' colours."""
    if radius <= 0:
        return colours[np.arange(len(colours)), nearness.argmin(1)]
    weights = np.exp(-(nearness - nearness.min(1, keepdims=True)) / (0.5 * radius))
    weights /= weights.sum(1, keepdims=True)
    return np.einsum("nk,nkc->nc", weights, colours).astype(np.float32)


def surface_colours(field: Any, vertices: np.ndarray) -> np.ndarray | None:
    """Linear colours (V, 3) for an extracted surface's vertices (object space), or None without colour."""
    if not has_colours(field):
        return None
    return colours_at(field, field.frame.to_unit(np.asarray(vertices, np.float64)))
