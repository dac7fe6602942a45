"""The learned field on meshes: a residual trained on the exact distance at continuous points, on top of
the stored band; it lowers the error at the surface, saves and loads, is checked before allocation and
runs through the operator (real libigl, real torch, real bpy)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from headless import mesh_arrays
from meshmetrics import edge_counts
from test_blender import worker_processes

from inr_worker import jobs, protocol
from inr_worker.fields import operations
from inr_worker.fields.band_field import BandField, FieldConfig
from inr_worker.fields.field_file import StoredField, load_field, save_field
from inr_worker.fields.learned_band import (
    FILE_OVERHEAD,
    LearnedBandField,
    ResidualConfig,
    ResidualTraining,
    level_keys,
    residual_within,
    scale_to_surface,
    train_residual,
)
from inr_worker.sources import sampling

CONFIG = FieldConfig(resolution=64)
TRAINING = ResidualTraining(ResidualConfig(), samples=240_000, steps=300, batch=8_192)


def tilted_blade(thickness: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """A 1 x 0.5 slab ``thickness`` thick (about two cells at 64), tilted off the grid's axes: the thin part
    where the band's interpolation is furthest from the true distance."""
    corners = np.array([(x, y, z) for x in (0, 1.0) for y in (0, 0.5) for z in (0, thickness)])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    triangles = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    turn_y, turn_x = 0.3, 0.2
    about_y = np.array([[np.cos(turn_y), 0, np.sin(turn_y)], [0, 1, 0], [-np.sin(turn_y), 0, np.cos(turn_y)]])
    about_x = np.array([[1, 0, 0], [0, np.cos(turn_x), -np.sin(turn_x)], [0, np.sin(turn_x), np.cos(turn_x)]])
    return corners @ about_y.T @ about_x.T, triangles


@pytest.fixture(scope="module")
def blade_fields():
    """A thin blade's band at 64 cells and the same band with a residual trained on it."""
    vertices, triangles = tilted_blade()
    band = sampling.sample_band(vertices, triangles, CONFIG)
    model = BandField(CONFIG, *(torch.from_numpy(array) for array in band.arrays()))
    stored_band = BandField.from_stored(CONFIG, model.stored_arrays())
    points, distances = sampling.near_samples(band.distance, TRAINING.samples, TRAINING.sigma_cells * CONFIG.cell)
    learned = train_residual(
        LearnedBandField.around(model, TRAINING.residual), points, distances, TRAINING, torch.device("cpu")
    )
    return band, stored_band, learned


def surface_error(model: BandField, points: np.ndarray) -> float:
    """Mean |field| at points on the true surface, in cells."""
    return float(model.evaluate(torch.from_numpy(points.astype(np.float32))).abs().mean() / CONFIG.cell)


def test_residual_lowers_the_error_at_the_surface(blade_fields):
    band, stored_band, learned = blade_fields
    rng = np.random.default_rng(7)  # points other than the training samples
    points = sampling.surface_points(band.distance.vertices, band.distance.triangles, 30_000, rng)
    assert surface_error(learned, points) < 0.99 * surface_error(stored_band, points)
    # beyond the band's clamp the residual is zero: the field reads as the band there
    far = rng.uniform(-0.6, 0.6, (20_000, 3)).astype(np.float32)
    far = far[np.abs(band.distance.signed(far)) > 3 * CONFIG.band]
    far_points = torch.from_numpy(far)
    assert torch.equal(learned.evaluate(far_points), stored_band.evaluate(far_points))


def test_residual_scale_is_chosen_on_held_out_surface_points(blade_fields):
    """A residual that reads the surface worse than the band is scaled down to nothing (the band alone);
    the trained one keeps a share of itself and reads the surface better than the band."""
    band, stored_band, learned = blade_fields
    rng = np.random.default_rng(11)
    held_out = sampling.surface_points(band.distance.vertices, band.distance.triangles, 20_000, rng)
    trained = copy.deepcopy(learned)
    assert scale_to_surface(trained, held_out) > 0
    assert surface_error(trained, held_out) < surface_error(stored_band, held_out)
    spoiled = copy.deepcopy(learned)
    with torch.no_grad():
        spoiled.decoder[-1].bias.fill_(0.5)  # half a cell everywhere near the surface
    assert scale_to_surface(spoiled, held_out) == 0.0
    points = torch.from_numpy(held_out.astype(np.float32))
    assert torch.equal(spoiled.evaluate(points), stored_band.evaluate(points))


def test_learned_field_saves_and_loads(blade_fields, tmp_path):
    band, _, learned = blade_fields
    unit = band.distance.vertices
    field = StoredField(learned, band.frame, unit.min(0), unit.max(0), {"preset": "TEST"})
    path = tmp_path / "learned.safetensors"
    save_field(path, field)
    loaded = load_field(path)
    assert isinstance(loaded.model, LearnedBandField) and loaded.info == {"preset": "TEST"}
    points, _ = sampling.near_samples(band.distance, 20_000, 0.5 * CONFIG.cell, seed=3)
    difference = (loaded.model.evaluate(torch.from_numpy(points)) - learned.evaluate(torch.from_numpy(points))).abs()
    assert difference.max() < 0.05 * CONFIG.cell  # the features' int8 step
    learned_bytes, band_bytes = path.stat().st_size, sum(a.nbytes for a in BandField.stored_arrays(learned).values())
    assert band_bytes < learned_bytes < 4 * band_bytes


@pytest.mark.parametrize("share", [0.2, 0.6, 1.2])
def test_residual_channels_are_cut_to_the_byte_cap(blade_fields, tmp_path, share):
    """The cap is a rule on the band's bricks: the saved file stays under it, and a tighter cap gives fewer
    channels (down to the coarsest level alone)."""
    band, stored_band, _ = blade_fields
    band_bytes = sum(array.nbytes for array in stored_band.stored_arrays().values())
    full = ResidualConfig()
    full_residual = sum(
        len(level_keys(band.keys, CONFIG.bricks_per_side, cells)) * CONFIG.brick**3 * channels
        for cells, channels in zip(full.level_cells, full.channels, strict=True)
    )
    cap = band_bytes + FILE_OVERHEAD + int(share * full_residual)
    residual = residual_within(full, band.keys, CONFIG, band_bytes, cap)
    model = LearnedBandField.around(BandField(CONFIG, *(torch.from_numpy(a) for a in band.arrays())), residual)
    unit = band.distance.vertices
    path = tmp_path / "capped.safetensors"
    save_field(path, StoredField(model, band.frame, unit.min(0), unit.max(0), {}))
    assert path.stat().st_size <= cap
    assert load_field(path).model.residual == residual
    if share >= 1.1:  # room for everything: nothing is cut
        assert residual == full
    else:
        assert sum(residual.channels) < sum(full.channels)


def test_learned_field_takes_part_in_modelling(blade_fields, tmp_path):
    band, stored_band, learned = blade_fields
    unit = band.distance.vertices
    files = []
    for name, model in (("learned", learned), ("band", stored_band)):
        path = tmp_path / f"{name}.safetensors"
        save_field(path, StoredField(model, band.frame, unit.min(0), unit.max(0), {}))
        files.append(path.read_bytes())
    inputs = [operations.PlacedInput(data, operations.load_field_bytes(data), np.eye(4)) for data in files]
    assert isinstance(inputs[0].field.model, LearnedBandField)
    for operation, used in (
        (operations.Operation("OFFSET", distance=0.01), inputs[:1]),
        (operations.Operation("MORPH"), inputs),
    ):
        composite = operations.build(operation, used)
        path = tmp_path / "composite.safetensors"
        operations.save_composite(path, composite)
        _, triangles = jobs.extract(operations.load_any_field(path), 48, "CPU")
        assert len(triangles) and edge_counts(triangles) == (0, 0)


def _rewritten(path, tmp_path, tensors=None, metadata=None):
    """The field file at ``path`` with some tensors or metadata replaced."""
    stored, stored_metadata = protocol.read_safetensors(path.read_bytes())
    arrays = {name: (dtype, shape, bytes(raw)) for name, (dtype, shape, raw) in stored.items()}
    arrays |= tensors or {}
    changed = tmp_path / "changed.safetensors"
    protocol.write_safetensors(changed, arrays, {**stored_metadata, **(metadata or {})})
    return changed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metadata": {protocol.FIELD_KIND_KEY: "dense_mlp"}}, "unknown field kind"),
        (
            {
                "metadata": {
                    protocol.RESIDUAL_CONFIG_KEY: json.dumps({"level_cells": [3], "channels": [2], "hidden": 8})
                }
            },
            "level cells",
        ),
        ({"tensors": {"residual.level0": ("I8", (1, 64, 2), bytes(128))}}, "does not match its band"),
        ({"tensors": {"residual.decoder.0.weight": ("F32", (2, 2), bytes(16))}}, "residual.decoder.0.weight"),
    ],
)
def test_damaged_learned_field_is_refused_before_allocation(blade_fields, tmp_path, change, message):
    band, _, learned = blade_fields
    unit = band.distance.vertices
    path = tmp_path / "learned.safetensors"
    save_field(path, StoredField(learned, band.frame, unit.min(0), unit.max(0), {}))
    with pytest.raises(protocol.ProtocolError, match=message):
        load_field(_rewritten(path, tmp_path, **change))


def test_learned_fit_through_the_operator_extracts_saves_and_reopens(scene, tmp_path):
    bpy = pytest.importorskip("bpy")
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=3)
    source = bpy.context.active_object
    assert bpy.ops.inr.fit_mesh(resolution=32, preset="FAST", steps=20, learned=True) == {"FINISHED"}
    result = bpy.context.active_object
    assert result.name == source.name + "_inr"
    assert bpy.ops.inr.extract_mesh(resolution=48) == {"FINISHED"}
    fine = len(result.data.vertices)
    path, name = tmp_path / "learned.blend", result.name
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    reopened = bpy.data.objects[name]
    bpy.context.view_layer.objects.active = reopened
    assert len(reopened.data.vertices) == fine
    assert bpy.ops.inr.extract_mesh(resolution=40) == {"FINISHED"}
    vertices, _ = mesh_arrays(reopened)
    radius = np.linalg.norm(vertices, axis=1)
    assert np.abs(radius - 1).max() < 0.05 and not worker_processes()
