"""Point clouds as a source: reading point files, normals estimated and oriented where the points carry
none, and the inside/outside that oriented points imply (their generalized winding number).

Orientation works in two steps. Points that see open space on one side of their tangent plane and not
on the other (rays through a coarse occupancy grid) are seeds; every other point takes its side from
the seeds along a minimum spanning tree of its nearest neighbours, whose edges prefer neighbours that
lie in each other's tangent planes, so that the tree does not jump across a thin part (an ear, a leg)
from one side to the other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import igl
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from ..fields.colour_field import srgb_to_linear
from ..point_checks import PointsError, check_points
from .sampling import InputError, UnitFrame

NORMAL_NEIGHBOURS = 16  # points in each local plane fit
NOISY_NEIGHBOURS = 64  # points in each plane fit where the points scatter about their planes
NOISY = 0.12  # scatter about the local planes, against the planes' reach, above which points count as noisy
WINDING_POINTS = 20_000  # points that stand for the cloud in its winding number
TREE_NEIGHBOURS = 10  # edges per point in the orientation graph
RELIABLE_EDGE = 0.5  # the largest graph edge weight across which two seeds' regions compare their normals
CHUNK = 100_000  # points per batch of neighbour queries
VISIBILITY_DIRECTIONS = 32  # rays from each tested point, over the whole sphere
VISIBILITY_CELLS = 64  # the occupancy grid's cells along the longest side, at most
MAX_SEEDS = 2_500  # points tested for visibility
SEED_MARGIN = 0.35  # how much more open one side must be than the other
SEED_INSIDE_OPEN = 0.05  # the most of a seed's inner side that may be open: inside a solid, rays meet its surface
POINT_FILE_SUFFIXES = (".xyz", ".pts", ".txt", ".npz")


@dataclasses.dataclass
class PointSet:
    """Points (N, 3) in their own coordinates, with their normals and colours (0..1) where known."""

    points: np.ndarray
    normals: np.ndarray | None = None
    colors: np.ndarray | None = None


def checked(point_set: PointSet) -> PointSet:
    """The set with float64 arrays, or InputError with one line for the user."""
    try:
        check_points(point_set.points, point_set.normals)
    except PointsError as error:
        raise InputError(str(error)) from error
    normals = point_set.normals
    if normals is not None:
        normals = np.asarray(normals, np.float64)
        length = np.linalg.norm(normals, axis=1)
        if not np.isfinite(normals).all() or (length < 1e-12).mean() > 0.5:
            normals = None  # unusable normals are estimated instead
        else:
            normals = normals / np.maximum(length, 1e-12)[:, None]
    colors = None if point_set.colors is None else np.clip(np.asarray(point_set.colors, np.float32)[:, :3], 0, 1)
    return PointSet(np.asarray(point_set.points, np.float64), normals, colors)


# --- reading ---------------------------------------------------------------------------------


def _ply_header(path: Path) -> tuple[str, list[tuple[str, int, list[tuple[str, str]]]], int]:
    """A PLY file's format, its elements (name, count, [(property, type)]) and where its data starts."""
    with open(path, "rb") as file:
        if file.readline().strip() != b"ply":
            raise InputError(f"{path}: not a PLY file")
        form, elements = "", []  # type: tuple[str, list[tuple[str, int, list[tuple[str, str]]]]]
        while True:
            line = file.readline()
            if not line:
                raise InputError(f"{path}: the PLY header has no end_header")
            words = line.decode("ascii", "replace").split()
            if not words:
                continue
            if words[0] == "format":
                form = words[1]
            elif words[0] == "element":
                elements.append((words[1], int(words[2]), []))
            elif words[0] == "property" and elements:
                kind = "list" if words[1] == "list" else words[1]
                elements[-1][2].append((words[-1], kind))
            elif words[0] == "end_header":
                return form, elements, file.tell()


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def ply_point_count(path: Path) -> int | None:
    """The vertex count of a PLY file that has no faces (a point cloud), else None; reads the header only."""
    _, elements, _ = _ply_header(path)
    counts = {name: count for name, count, _ in elements}
    return counts.get("vertex") if not counts.get("face") else None


def _read_ply(path: Path) -> PointSet:
    form, elements, start = _ply_header(path)
    if not elements or elements[0][0] != "vertex":
        raise InputError(f"{path}: the PLY file has no vertices first")
    _, count, properties = elements[0]
    if any(kind == "list" for _, kind in properties) or any(kind not in _PLY_TYPES for _, kind in properties):
        raise InputError(f"{path}: unsupported vertex properties in the PLY file")
    names = [name for name, _ in properties]
    if form == "ascii":
        table = np.loadtxt(path, dtype=np.float64, skiprows=_header_lines(path, start), ndmin=2, max_rows=count)
        columns = {name: table[:, i] for i, name in enumerate(names)}
    else:
        order = {"binary_little_endian": "<", "binary_big_endian": ">"}.get(form)
        if order is None:
            raise InputError(f"{path}: unknown PLY format {form!r}")
        dtype = np.dtype([(name, order + _PLY_TYPES[kind]) for name, kind in properties])
        with open(path, "rb") as file:
            file.seek(start)
            data = np.fromfile(file, dtype=dtype, count=count)
        if len(data) != count:
            raise InputError(f"{path}: the PLY file ends before its {count} vertices")
        columns = {name: data[name] for name in names}
    if not {"x", "y", "z"} <= set(columns):
        raise InputError(f"{path}: the PLY vertices have no x, y, z")
    points = np.stack([columns[a] for a in "xyz"], 1).astype(np.float64)
    normals = np.stack([columns[a] for a in ("nx", "ny", "nz")], 1) if {"nx", "ny", "nz"} <= set(columns) else None
    colors = None
    if {"red", "green", "blue"} <= set(columns):
        kind = dict(properties)["red"]
        scale = 255.0 if kind in ("uchar", "uint8") else 65535.0 if kind in ("ushort", "uint16") else 1.0
        srgb = np.stack([columns[a] for a in ("red", "green", "blue")], 1).astype(np.float32) / scale
        colors = srgb_to_linear(srgb)
    return PointSet(points, normals, colors)


def _header_lines(path: Path, start: int) -> int:
    """The lines of a PLY header that ends at byte ``start``."""
    with open(path, "rb") as file:
        return file.read(start).count(b"\n")


def read_points(path: Path) -> PointSet:
    """Points from ``.xyz``/``.pts``/``.txt`` (x y z [nx ny nz] a line), ``.npz`` (``points``, optional
    ``normals`` and ``colors``), or a PLY or OBJ file without faces."""
    if not path.is_file():
        raise OSError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".ply":
        return _read_ply(path)
    if suffix == ".npz":
        with np.load(path) as arrays:
            if "points" not in arrays:
                raise InputError(f"{path}: the .npz file has no 'points' array")
            return point_set_of(arrays)
    if suffix == ".obj":
        vertices = [
            line.split()[1:4] for line in path.read_text(errors="replace").splitlines() if line.startswith("v ")
        ]
        return PointSet(np.array(vertices, dtype=np.float64).reshape(-1, 3))
    try:
        table = np.loadtxt(path, dtype=np.float64, ndmin=2, comments=("#", "//"))
    except ValueError as error:
        raise InputError(f"{path}: not a table of point coordinates ({error})") from error
    if table.shape[1] < 3:
        raise InputError(f"{path}: each line needs at least x y z")
    return PointSet(table[:, :3], table[:, 3:6] if table.shape[1] >= 6 else None)


def point_set_of(arrays: Mapping[str, np.ndarray]) -> PointSet:
    """The points of arrays named ``points`` and, optionally, ``normals`` and ``colors`` (an .npz file)."""
    return PointSet(arrays["points"], arrays.get("normals"), arrays.get("colors"))


def is_point_file(path: Path) -> bool:
    """Whether ``path`` holds points rather than a mesh: by suffix, or a PLY/OBJ without faces."""
    suffix = path.suffix.lower()
    if suffix in POINT_FILE_SUFFIXES:
        return True
    if suffix == ".ply" and path.is_file():
        return ply_point_count(path) is not None
    if suffix == ".obj" and path.is_file():
        with open(path, "rb") as file:
            starts = {line[:2] for line in file}
        return b"v " in starts and b"f " not in starts
    return False


# --- normals ---------------------------------------------------------------------------------


def neighbours(points: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Each point's ``count`` nearest other points: distances and indices, (N, count)."""
    tree = cKDTree(points)
    distances, indices = tree.query(points, count + 1, workers=-1)
    return distances[:, 1:], indices[:, 1:]


def estimate_normals(points: np.ndarray, near: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals of the planes fitted to each point and its neighbours ``near`` (N, k), unoriented, and
    the root-mean-square distance of the neighbours from each plane."""
    normals, scatter = np.empty_like(points), np.empty(len(points))
    for start in range(0, len(points), CHUNK):
        rows = slice(start, start + CHUNK)
        local = points[near[rows]]
        local = local - local.mean(1, keepdims=True)
        spreads, axes = np.linalg.eigh(np.einsum("nki,nkj->nij", local, local) / near.shape[1])
        normals[rows], scatter[rows] = axes[:, :, 0], np.sqrt(np.clip(spreads[:, 0], 0, None))
    return normals, scatter


def _occupancy(points: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """A grid of ``voxel`` cells over the points' box (padded by two cells): occupied cells and its origin."""
    origin = points.min(0) - 2 * voxel
    shape = np.ceil((points.max(0) + 2 * voxel - origin) / voxel).astype(int) + 1
    grid = np.zeros(shape, dtype=bool)
    grid[tuple(((points - origin) / voxel).astype(int).T)] = True
    return grid, origin


def _fibonacci_directions(count: int) -> np.ndarray:
    index = np.arange(count) + 0.5
    z = 1 - 2 * index / count
    angle = np.pi * (1 + 5**0.5) * index
    radius = np.sqrt(1 - z * z)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle), z], 1)


def visibility_sides(points: np.ndarray, normals: np.ndarray, spacing: float, seed: int = 0) -> np.ndarray:
    """For each point, +1 where the side its normal points to is clearly more open than the other and the
    other is closed, -1 the other way round, 0 where undecided (or not tested): rays from the point through a
    coarse occupancy grid. Next to a hole or where the points end, rays from the inner side leave through
    the opening, so that side counts as open and the point is no seed."""
    voxel = max(2.0 * spacing, float(np.ptp(points, 0).max()) / VISIBILITY_CELLS)
    grid, origin = _occupancy(points, voxel)
    rng = np.random.default_rng(seed)
    tested = rng.choice(len(points), min(MAX_SEEDS, len(points)), replace=False)
    directions = _fibonacci_directions(VISIBILITY_DIRECTIONS)
    steps = np.arange(2.0, float(np.linalg.norm(grid.shape)), 0.8) * voxel
    limit = np.array(grid.shape) - 1
    open_rays = np.zeros((len(tested), len(directions)), dtype=bool)
    for start in range(0, len(tested), 500):
        rows = tested[start : start + 500]
        # (rows, directions, steps, 3): positions along every ray
        cells = ((points[rows, None, None] + directions[None, :, None] * steps[None, None, :, None]) - origin) / voxel
        cells = cells.astype(int)
        outside = ((cells < 0) | (cells > limit)).any(-1)
        hit = grid[tuple(np.clip(cells, 0, limit).transpose(3, 0, 1, 2))] & ~outside
        # a ray is open when it leaves the grid before it meets an occupied cell
        first_out = np.where(outside.any(-1), outside.argmax(-1), len(steps))
        first_hit = np.where(hit.any(-1), hit.argmax(-1), len(steps))
        open_rays[start : start + len(rows)] = first_out < first_hit
    facing = directions @ normals[tested].T  # (directions, rows)
    front, back = (facing.T > 0.5), (facing.T < -0.5)
    front_open = (open_rays & front).sum(1) / np.maximum(front.sum(1), 1)
    back_open = (open_rays & back).sum(1) / np.maximum(back.sum(1), 1)
    sides = np.zeros(len(points), dtype=np.int8)
    difference = front_open - back_open
    one_side_closed = np.minimum(front_open, back_open) <= SEED_INSIDE_OPEN
    outward = np.where(difference > SEED_MARGIN, 1, np.where(difference < -SEED_MARGIN, -1, 0))
    sides[tested] = np.where(one_side_closed, outward, 0)
    return sides


def orient_normals(points: np.ndarray, normals: np.ndarray, near: np.ndarray, spacing: float) -> np.ndarray:
    """Normals flipped to point out of the solid: seeds from :func:`visibility_sides`, the rest along a
    minimum spanning tree of the neighbour graph (``near`` (N, k)) from the nearest seed."""
    count, k = len(points), min(TREE_NEIGHBOURS, near.shape[1])
    sides = visibility_sides(points, normals, spacing)
    rows = np.repeat(np.arange(count), k)
    cols = near[:, :k].reshape(-1)
    offsets = points[cols] - points[rows]
    lengths = np.maximum(np.linalg.norm(offsets, axis=1), 1e-12)
    across = np.abs(np.einsum("ij,ij->i", offsets, normals[rows])) / lengths
    across = np.maximum(across, np.abs(np.einsum("ij,ij->i", offsets, normals[cols])) / lengths)
    weights = 1.0 - np.abs(np.einsum("ij,ij->i", normals[rows], normals[cols])) + across + 1e-6
    # a virtual root (index count) joins each seed cheaply and every point dearly, so that each part
    # of the graph without seeds still hangs from it (facing away from the centre)
    seeds = np.flatnonzero(sides != 0)
    outward = np.einsum("ij,ij->i", points - points.mean(0), normals) >= 0
    root_weights = np.full(count, 10.0)
    root_weights[seeds] = 1e-9
    graph = sparse.coo_matrix(
        (np.concatenate([weights, root_weights]), (np.concatenate([rows, np.full(count, count)]),
                                                   np.concatenate([cols, np.arange(count)]))),
        shape=(count + 1, count + 1),
    ).tocsr()  # fmt: skip
    graph = graph.maximum(graph.T)  # undirected: one weight per pair
    tree = csgraph.minimum_spanning_tree(graph)
    _, parents = csgraph.breadth_first_order(tree, count, directed=False, return_predecessors=True)
    parents[count] = count
    # whether each point's normal flips against its parent's; a seed's against its own side
    flips = np.zeros(count + 1, dtype=bool)
    child = np.flatnonzero(parents[:count] >= 0)
    from_point = child[parents[child] < count]
    flips[from_point] = np.einsum("ij,ij->i", normals[from_point], normals[parents[from_point]]) < 0
    from_root = child[parents[child] == count]
    wanted = np.where(sides[from_root] != 0, sides[from_root] > 0, outward[from_root])
    flips[from_root] = ~wanted
    parents = np.where(parents < 0, count, parents)
    # pointer jumping: the parity of flips on the path to the root, and the point just below the root (the
    # seed, or the point facing away from the centre, whose side the point takes)
    jump, top = parents.copy(), np.where(parents == count, np.arange(count + 1), parents)
    for _ in range(int(np.ceil(np.log2(count + 1))) + 1):
        flips = flips ^ flips[jump]
        jump, top = jump[jump], top[top]
    oriented = np.where(flips[:count, None], -normals, normals)
    region = np.unique(top[:count], return_inverse=True)[1].reshape(-1)
    return oriented * _region_sides(oriented, region, rows, cols, weights)[region, None]


def _region_sides(
    normals: np.ndarray, region: np.ndarray, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """+1 or -1 for each region (``region``: each point's, numbered from 0; the points that took their side
    from one seed): a region whose normals disagree with its neighbours' along more of their shared border
    than they agree is flipped, one at a time, the largest gain first, so that a wrong seed's region takes
    its neighbours' side."""
    reliable = (region[rows] != region[cols]) & (weights < RELIABLE_EDGE)
    rows, cols = rows[reliable], cols[reliable]
    agreement = np.sign(np.einsum("ij,ij->i", normals[rows], normals[cols])) * (1 - weights[reliable])
    size = int(region.max()) + 1
    borders = sparse.coo_matrix((agreement, (region[rows], region[cols])), shape=(size, size)).tocsr()
    borders = (borders + borders.T).tocsc()
    sides = np.ones(size)
    pull = borders @ sides
    for _ in range(size):
        gain = -sides * pull
        worst = int(np.argmax(gain))
        if gain[worst] <= 0:
            break
        sides[worst] = -sides[worst]
        pull += 2 * sides[worst] * borders[:, worst].toarray().ravel()
    return sides


def smoothed(points: np.ndarray, normals: np.ndarray, near: np.ndarray) -> np.ndarray:
    """Noisy points moved along their normals onto the mean plane of their neighbours ``near`` (N, k), once
    (a second round shrinks curved parts more than it removes noise: spot, noisy, Chamfer 7.1e-4 -> 1.08e-3)."""
    moved = points.copy()
    for start in range(0, len(points), CHUNK):
        rows = slice(start, start + CHUNK)
        heights = np.einsum("nki,ni->nk", points[near[rows]] - points[rows, None], normals[rows])
        moved[rows] += normals[rows] * heights.mean(1, keepdims=True)
    return moved


def point_areas(near_distances: np.ndarray) -> np.ndarray:
    """The surface area each point stands for: the disc that holds its 8 nearest neighbours, over 8."""
    reach = near_distances[:, min(8, near_distances.shape[1]) - 1]
    return np.pi * reach**2 / 8


class WindingNumber:
    """The generalized winding number of oriented points (libigl's fast, Barnes-Hut one): about 1 inside
    the solid, 0 outside, and a smooth 0.5 across holes where no point was seen. At most
    ``WINDING_POINTS`` points stand for the cloud, each for its share of the area."""

    def __init__(self, points: np.ndarray, normals: np.ndarray, areas: np.ndarray) -> None:
        if len(points) > WINDING_POINTS:
            chosen = np.random.default_rng(0).choice(len(points), WINDING_POINTS, replace=False)
            points, normals, areas = points[chosen], normals[chosen], areas[chosen] * (len(areas) / WINDING_POINTS)
        self.points, self.normals, self.areas = (np.ascontiguousarray(a, np.float64) for a in (points, normals, areas))
        self._cells, self._children, _, _ = igl.octree(self.points)
        self._expansion = igl.fast_winding_number_precompute(
            self.points, self.normals, self.areas, self._cells, self._children, 2
        )

    def __call__(self, queries: np.ndarray) -> np.ndarray:
        result = np.empty(len(queries))
        for start in range(0, len(queries), 200_000):
            chunk = np.ascontiguousarray(queries[start : start + 200_000], np.float64)
            result[start : start + len(chunk)] = igl.fast_winding_number(
                self.points, self.normals, self.areas, self._cells, self._children, *self._expansion, chunk, 2.0
            )
        return result


@dataclasses.dataclass
class PreparedPoints:
    """Points in their unit frame with outward unit normals, spacing and what they enclose."""

    frame: UnitFrame
    points: np.ndarray
    normals: np.ndarray
    spacing: float  # median distance to the nearest neighbour
    noise: float  # median scatter of the points about their local planes
    winding: WindingNumber
    colors: np.ndarray | None


def prepare_points(point_set: PointSet) -> PreparedPoints:
    """Check the points, move them to their unit frame, and estimate and orient normals where missing."""
    point_set = checked(point_set)
    frame = UnitFrame.of(point_set.points)
    points = frame.to_unit(point_set.points)
    near_distances, near = neighbours(points, NORMAL_NEIGHBOURS)
    spacing = float(np.median(near_distances[:, 0]))
    estimated, scatter = estimate_normals(points, near)
    noise = float(np.median(scatter))
    noisy = noise > NOISY * float(np.median(near_distances[:, -1]))
    if noisy:
        many = neighbours(points, min(NOISY_NEIGHBOURS, len(points) - 1))[1]
        estimated, scatter = estimate_normals(points, many)
        noise = float(np.median(scatter))
    normals = orient_normals(points, estimated, near, spacing) if point_set.normals is None else point_set.normals
    if noisy:
        points = smoothed(points, normals, many)
    winding = WindingNumber(points, normals, point_areas(near_distances))
    return PreparedPoints(frame, points, normals, spacing, noise, winding, point_set.colors)
