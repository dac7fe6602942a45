"""Adaptivity: fewer, larger triangles where the surface is flat, like Voxel Remesh's *Adaptivity*.

The extracted surface is simplified by quadric edge collapse (the ``fast-simplification`` package): each
collapse costs the squared distance of the merged vertex to the planes of the triangles around it, so the
flattest parts merge first and curved parts and sharp edges keep their triangles. A collapse that would
flip a triangle is refused, and so is one that would move the surface by more than about a twelfth of a
cell. Adaptivity ``a`` (0..1) keeps about ``4 ** -a`` of the surface's vertices (half at 0.5, a quarter at 1),
more where little of the surface is flat. The result is triangles, as Voxel Remesh's adaptivity gives.

The result is checked to be closed, edge-manifold and free of pinched vertices; where a collapse broke
that, the surface is simplified less (half the reduction), and at last left as it was.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..sources.sampling import is_closed
from .quad_surface import corner_successors

AGGRESSION = 1.0  # fast-simplification's `agg`: low keeps the shape (measured: 7, its default, costs 1.25x Chamfer)
# With AGGRESSION 1, fast-simplification collapses no edge whose quadric error exceeds about 1e-7 (its threshold
# after its last round); with the cell scaled to this size, that is a squared distance of (1/12 cell)^2.
SCALED_CELL = 1 / 256
RETRIES = 2  # halvings of the reduction after a result that is not closed and manifold


def simplifier() -> ModuleType:
    """The fast-simplification module; RuntimeError, saying what to do, where the worker Python lacks it (one
    set up before adaptivity existed: it still fits and extracts without)."""
    try:
        import fast_simplification
    except ImportError as error:
        raise RuntimeError(
            "Adaptivity needs the fast-simplification package in the worker Python: press Set Up Worker in the "
            "add-on's preferences again (or pip install fast-simplification==0.2.0 into it)"
        ) from error
    return fast_simplification


def kept_share(adaptivity: float) -> float:
    """The share of the surface's vertices that adaptivity ``adaptivity`` keeps."""
    return float(4.0**-adaptivity)


def simplify(
    vertices: np.ndarray, triangles: np.ndarray, adaptivity: float, cell: float
) -> tuple[np.ndarray, np.ndarray]:
    """The closed triangle surface (``vertices`` (V, 3), outward-wound ``triangles`` (T, 3), extracted on a grid
    of ``cell``) with about ``kept_share(adaptivity)`` of its vertices, merged where it is flattest; still
    closed, edge-manifold, outward-wound and without pinched vertices. Returns vertices (V', 3) float64 and
    triangles (T', 3) int64."""
    fast_simplification = simplifier()
    scale = SCALED_CELL / cell
    reduction = 1.0 - kept_share(adaptivity)
    for _ in range(RETRIES + 1):
        if reduction * len(triangles) < 1:
            break
        target = max(4, round(len(triangles) * (1.0 - reduction)))
        simple_vertices, simple_triangles = fast_simplification.simplify(
            np.asarray(vertices, np.float64) * scale,
            np.asarray(triangles, np.int32),
            target_count=target,
            agg=AGGRESSION,
        )
        simple_triangles = np.asarray(simple_triangles, np.int64)
        if is_solid_surface(simple_triangles, len(simple_vertices)):
            return np.asarray(simple_vertices, np.float64) / scale, simple_triangles
        reduction /= 2
    return np.asarray(vertices, np.float64), np.asarray(triangles, np.int64)


def is_solid_surface(triangles: np.ndarray, vertex_count: int) -> bool:
    """Whether the triangles are closed and consistently wound (each edge joins two triangles running along it
    in opposite directions), use every vertex, and meet at each vertex in one fan (no pinched vertices)."""
    if not len(triangles) or not is_closed(triangles) or np.unique(triangles).size != vertex_count:
        return False
    # Each fan around a vertex is one cycle of corners under "the next corner around the vertex".
    successor = corner_successors(triangles, vertex_count)
    corners = len(successor)
    links = coo_matrix((np.ones(corners), (np.arange(corners), successor)), shape=(corners, corners))
    _, fan = connected_components(links, directed=True, connection="weak")
    fans_per_vertex = np.bincount(np.unique(triangles.reshape(-1) * corners + fan) // corners, minlength=vertex_count)
    return bool((fans_per_vertex == 1).all())
