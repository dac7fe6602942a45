"""The worker on its own: sampling, training, extraction, field files and the CLI (real torch)."""

from __future__ import annotations

import os
import subprocess
import sys

import igl
import numpy as np
import pytest
import torch
from conftest import MESHES, ROOT
from meshmetrics import compare_arrays, edge_counts
from test_extract import active_cells, dense_surface, hausdorff, same_cells

from inr_worker import protocol
from inr_worker.fields import operations
from inr_worker.fields.band_field import FieldConfig
from inr_worker.fields.field_file import load_field, save_field
from inr_worker.jobs import extract, fit
from inr_worker.sources import sampling
from inr_worker.surface import extract as extraction

WORKER_ENV = {**os.environ, "PYTHONPATH": str(ROOT / "inr_addon")}


def read(name: str) -> tuple[np.ndarray, np.ndarray]:
    vertices, triangles = igl.read_triangle_mesh(str(MESHES / name))[:2]
    return vertices, triangles


@pytest.fixture(scope="module")
def bunny_field():
    vertices, triangles = read("bunny_closed_lowres.obj")
    return vertices, triangles, fit(vertices, triangles, preset="FAST", steps=10)


def test_unit_frame_round_trip():
    points = np.random.default_rng(0).normal(size=(50, 3)) * 1e7 + 3e7
    frame = sampling.UnitFrame.of(points)
    unit = frame.to_unit(points)
    assert np.isclose(np.ptp(unit, axis=0).max(), 1.0)
    assert np.allclose(frame.from_unit(unit), points)


def test_winding_number_signs_give_an_open_cube_an_inside():
    vertices, triangles = read("cube_no_bottom.obj")
    frame = sampling.UnitFrame.of(vertices)
    unit = frame.to_unit(vertices)
    distances = sampling.signed_distance(unit, triangles, np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.58]]))
    assert distances[0] < -0.4  # the centre is inside although the bottom is missing
    assert distances[1] > 0.05


@pytest.mark.parametrize(
    "vertices, triangles, message",
    [
        (np.zeros((3, 3)), np.zeros((0, 3), int), "no faces"),
        (np.array([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]]), np.array([[0, 1, 2]]), "NaN"),
        (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]]), np.array([[0, 1, 3]]), "missing vertices"),
        (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]), np.array([[0, 1, 2], [1, 3, 2]]), "no surface found"),
    ],
)
def test_unusable_meshes_are_refused_with_a_message(vertices, triangles, message):
    with pytest.raises(sampling.InputError, match=message):
        sampling.sample_band(vertices, triangles, FieldConfig(resolution=32))


def test_fit_gives_a_closed_manifold_outward_solid(bunny_field):
    vertices, triangles, field = bunny_field
    surface_vertices, surface_triangles = extract(field, 64)
    metrics = compare_arrays(vertices, triangles, surface_vertices, surface_triangles, samples=20_000)
    assert metrics["boundary_edges"] == 0 and metrics["nonmanifold_edges"] == 0
    assert metrics["signed_volume"] > 0
    assert metrics["iou"] > 0.9
    assert metrics["chamfer_l1"] < 0.01


def test_finer_resolution_gives_a_finer_surface(bunny_field):
    _, _, field = bunny_field
    coarse_vertices, _ = extract(field, 32)
    fine_vertices, fine_triangles = extract(field, 96)
    assert len(fine_vertices) > 4 * len(coarse_vertices)
    assert edge_counts(fine_triangles) == (0, 0)


def test_coarse_to_fine_finds_every_cell_that_dense_evaluation_crosses(bunny_field):
    _, _, field = bunny_field
    vertices, _ = extraction.extract_surface(field.model, field.low, field.high, 96, torch.device("cpu"))
    dense_vertices, _, crossed = dense_surface(field.model, 96, field.low, field.high)
    assert len(crossed) > 1000
    assert same_cells(active_cells(field.model, 96, field.low, field.high), crossed)
    assert hausdorff(vertices, dense_vertices) < 1 / 96


def test_field_file_round_trip(bunny_field, tmp_path):
    _, _, field = bunny_field
    save_field(tmp_path / "f.safetensors", field)
    loaded = load_field(tmp_path / "f.safetensors")
    points = torch.rand(1000, 3) - 0.5
    assert torch.allclose(loaded.model.evaluate(points), field.model.evaluate(points), atol=1e-3)
    assert np.allclose(loaded.frame.centre, field.frame.centre) and loaded.frame.scale == field.frame.scale
    data = bytearray((tmp_path / "f.safetensors").read_bytes())
    (tmp_path / "broken.safetensors").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(protocol.ProtocolError, match="re-fit"):
        load_field(tmp_path / "broken.safetensors")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inr_worker", *args],
        env=WORKER_ENV,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_cli_fits_and_extracts_an_open_mesh(tmp_path):
    field_path, out = tmp_path / "cube.safetensors", tmp_path / "cube.ply"
    fitted = run_cli(
        "fit",
        str(MESHES / "cube_no_bottom.obj"),
        "--field",
        str(field_path),
        "--preset",
        "FAST",
        "--steps",
        "5",
        "--out",
        str(tmp_path / "cube.obj"),
        "--resolution",
        "32",
    )
    assert fitted.returncode == 0, fitted.stderr
    assert "step 5/5" in fitted.stderr
    extracted = run_cli("extract", str(field_path), "--resolution", "48", "--out", str(out))
    assert extracted.returncode == 0, extracted.stderr
    triangles = igl.read_triangle_mesh(str(out))[1]
    assert edge_counts(triangles) == (0, 0) and len(triangles) > 1000
    # a composite file (what Combine, Offset and Morph store) extracts the same way
    data = field_path.read_bytes()
    grown = operations.build(
        operations.Operation("OFFSET", distance=0.05), [operations.PlacedInput(data, load_field(field_path), np.eye(4))]
    )
    operations.save_composite(tmp_path / "grown.safetensors", grown)
    extracted = run_cli("extract", str(tmp_path / "grown.safetensors"), "--resolution", "48", "--out", str(out))
    assert extracted.returncode == 0, extracted.stderr
    grown_vertices, grown_triangles = igl.read_triangle_mesh(str(out))[:2]
    assert edge_counts(grown_triangles) == (0, 0)
    assert (
        np.ptp(grown_vertices, 0).max() > np.ptp(igl.read_triangle_mesh(str(MESHES / "cube_no_bottom.obj"))[0], 0).max()
    )


def test_cli_bad_input_is_one_line_and_non_zero(tmp_path):
    missing = run_cli("fit", str(tmp_path / "nothing.obj"), "--field", str(tmp_path / "f.safetensors"))
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [f"inr_worker: error: {tmp_path / 'nothing.obj'}: no such file"]
    (tmp_path / "junk.safetensors").write_bytes(b"not a field")
    junk = run_cli("extract", str(tmp_path / "junk.safetensors"), "--out", str(tmp_path / "x.obj"))
    assert junk.returncode == 1 and "not a field file" in junk.stderr and len(junk.stderr.strip().splitlines()) == 1


def test_cli_check_reports_torch():
    checked = run_cli("check")
    assert checked.returncode == 0, checked.stderr
    assert f'"torch": "{torch.__version__}"' in checked.stdout


def test_a_mesh_is_closed_only_when_every_edge_joins_two_opposite_triangles():
    triangles = read("bunny_closed_lowres.obj")[1]
    assert sampling.is_closed(triangles)
    assert not sampling.is_closed(triangles[1:])  # a hole
    assert not sampling.is_closed(np.concatenate([triangles, triangles[:1]]))  # an edge shared by three
    flipped = triangles.copy()
    flipped[0] = flipped[0, ::-1]
    assert not sampling.is_closed(flipped)  # one triangle wound the other way
    assert not sampling.is_closed(read("cube_no_bottom.obj")[1])


def test_an_open_mesh_side_agrees_with_the_exact_winding_number():
    """Around the truck's many open parts the winding number is often near 0.5: the side there must agree
    with libigl's exact winding number (0.2% of points disagreed at the cheaper accuracy that closed meshes use)."""
    vertices, triangles = sampling.clean_mesh(*read("truck.obj"))
    unit = sampling.UnitFrame.of(vertices).to_unit(vertices)
    distance = sampling.MeshDistance(unit, triangles)
    points = np.random.default_rng(0).uniform(-0.5, 0.5, (100_000, 3))
    exact = np.abs(igl.winding_number(unit, triangles, points)) > 0.5
    assert not distance.closed and (distance.inside(points) != exact).mean() < 0.0005
