"""The worker's silhouette solids (inr_worker.sources.silhouette): their signed distances before any training."""

from __future__ import annotations

import igl
import numpy as np
import pytest
from conftest import MESHES
from meshmetrics import load
from scipy import ndimage

from inr_worker.sources.sampling import InputError
from inr_worker.sources.silhouette import ShapeConfig, ShapeDistance, SilhouetteShape, View

RECT = np.array([-1.0, 1.0, -1.0, 1.0])


def disc_mask(pixels: int, radius: float, centre: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Pixels of RECT whose centres lie within ``radius`` of ``centre`` (row 0 at the bottom)."""
    coordinates = -1 + (np.arange(pixels) + 0.5) * 2 / pixels
    y, x = np.meshgrid(coordinates, coordinates, indexing="ij")
    return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 < radius**2


def grid(count: int, half: float) -> tuple[np.ndarray, np.ndarray]:
    centres = -half + (np.arange(count) + 0.5) * 2 * half / count
    return centres, np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), -1).reshape(-1, 3)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def rotation(x_degrees: float, z_degrees: float) -> np.ndarray:
    """Blender's XYZ Euler rotation (x, 0, z) as a 4x4 matrix."""
    ax, az = np.radians(x_degrees), np.radians(z_degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    matrix = np.eye(4)
    matrix[:3, :3] = rz @ rx
    return matrix


FRONT, RIGHT, TOP = rotation(90, 0), rotation(90, 90), rotation(0, 0)  # as Add > Image > Reference places them


def test_a_disc_inflates_into_a_ball_with_exact_distances_near_it():
    shape = SilhouetteShape([View(disc_mask(200, 0.8), np.eye(4), RECT)], ShapeConfig())
    _, points = grid(64, 1.0)
    inside = shape.signed_distance(points) <= 0
    ball = np.linalg.norm(points, axis=1) <= 0.8
    assert iou(inside, ball) > 0.97
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(5000, 3))
    near = directions / np.linalg.norm(directions, axis=1, keepdims=True) * rng.uniform(0.75, 0.85, (5000, 1))
    error = shape.signed_distance(near) - (np.linalg.norm(near, axis=1) - 0.8)
    assert np.abs(error).max() < 0.025  # about two pixels of the 200-pixel mask
    unit = ShapeDistance(shape)  # the unit frame that the narrow band samples in
    assert unit.frame.scale == pytest.approx(1.6, abs=0.05)
    near_surface = np.array([[0.46, 0.0, 0.0], [0.0, 0.54, 0.0], [0.0, 0.0, 0.48]])
    expected = np.linalg.norm(near_surface, axis=1) - 0.8 / unit.frame.scale
    assert np.allclose(unit.signed(near_surface), expected, atol=0.02)
    assert list(unit.inside(near_surface)) == list(expected < 0)


def test_thickness_scales_the_depth_only():
    mask = disc_mask(100, 0.8)
    thin = SilhouetteShape([View(mask, np.eye(4), RECT)], ShapeConfig(thickness=0.5))
    points = np.array([[0, 0, 0.38], [0, 0, 0.42], [0.78, 0, 0.0], [0.5, 0, 0.29], [0.5, 0, 0.33]])
    assert list(thin.signed_distance(points) < 0) == [True, False, True, True, False]  # 0.5 * sqrt(0.8^2 - 0.5^2)


def test_holes_stay_holes_and_islands_stay_apart():
    mask = disc_mask(160, 0.7) & ~disc_mask(160, 0.3) | disc_mask(160, 0.12, (0.82, 0.82))
    shape = SilhouetteShape([View(mask, np.eye(4), RECT)], ShapeConfig())
    _, points = grid(80, 1.0)
    inside = (shape.signed_distance(points) <= 0).reshape(80, 80, 80)
    assert not inside[38:42, 38:42, :].any()  # the hole goes right through
    assert ndimage.label(inside)[1] == 2
    projected = inside.any(2).T  # [y, x] like the mask
    assert iou(projected, disc_mask(80, 0.7) & ~disc_mask(80, 0.3) | disc_mask(80, 0.12, (0.82, 0.82))) > 0.93


@pytest.fixture(scope="module")
def spot_views():
    """Spot's solid on a 96^3 grid and its masks seen from the front, the right and the top."""
    vertices, triangles = load(str(MESHES / "spot.obj"))
    vertices = (vertices - (vertices.min(0) + vertices.max(0)) / 2) / (vertices.max(0) - vertices.min(0)).max()
    _, points = grid(96, 0.55)
    solid = (igl.fast_winding_number(vertices, triangles, points) > 0.5).reshape(96, 96, 96)
    masks = [solid.any(1).T, solid.any(0).T, solid.any(2).T]  # rows: z, z, y; columns: x, y, x
    rect = np.array([-0.55, 0.55, -0.55, 0.55])
    views = [View(mask, frame, rect) for mask, frame in zip(masks, (FRONT, RIGHT, TOP))]
    return solid, masks, views, points


def test_hull_is_the_intersection_of_the_extruded_masks(spot_views):
    solid, masks, views, points = spot_views
    exact = masks[0].T[:, None, :] & masks[1].T[None, :, :] & masks[2].T[:, :, None]
    hull = (SilhouetteShape(views, ShapeConfig(mode="HULL")).signed_distance(points) <= 0).reshape(solid.shape)
    assert iou(hull, exact) > 0.99
    for axis, mask in zip((1, 0, 2), masks):
        assert iou(hull.any(axis).T, mask) > 0.99
    two = (SilhouetteShape(views[:2], ShapeConfig(mode="HULL")).signed_distance(points) <= 0).reshape(solid.shape)
    assert iou(two, masks[0].T[:, None, :] & masks[1].T[None, :, :]) > 0.99


def test_a_ball_seen_from_three_sides_comes_back_round_when_rounded():
    views = [View(disc_mask(128, 0.8), frame, RECT) for frame in (FRONT, RIGHT, TOP)]
    _, points = grid(64, 1.0)
    ball = np.linalg.norm(points, axis=1) <= 0.8
    hull = SilhouetteShape(views, ShapeConfig(mode="HULL")).signed_distance(points) <= 0
    rounded = SilhouetteShape(views, ShapeConfig(mode="HULL", rounded=True)).signed_distance(points) <= 0
    assert iou(rounded, ball) > 0.96 and iou(hull, ball) < 0.93  # the hull is a cube-ish Steinmetz solid


@pytest.mark.parametrize(
    "views, config, message",
    [
        ([View(np.zeros((8, 8), bool), np.eye(4), RECT)], ShapeConfig(), "no silhouette found"),
        ([View(disc_mask(32, 0.5), np.eye(4), RECT)], ShapeConfig(mode="HULL"), "HULL takes 2 or 3"),
        ([View(disc_mask(32, 0.5), m, RECT) for m in (TOP, rotation(180, 0))], ShapeConfig(mode="HULL"), "same axis"),
        ([View(disc_mask(32, 0.5), np.eye(4), RECT)], ShapeConfig(thickness=0), "thickness"),
    ],
)
def test_bad_views_are_one_clear_error(views, config, message):
    with pytest.raises(InputError, match=message):
        SilhouetteShape(views, config)


def test_views_that_do_not_overlap_make_no_solid():
    shifted = FRONT.copy()
    shifted[:3, 3] = (5.0, 0, 0)  # the front image far to the right of the top one
    views = [View(disc_mask(32, 0.5), shifted, RECT), View(disc_mask(32, 0.5), TOP, RECT)]
    with pytest.raises(InputError, match="do not overlap"):
        SilhouetteShape(views, ShapeConfig(mode="HULL"))
