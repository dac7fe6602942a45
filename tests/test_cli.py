"""The command line keeps its promise: every bad input is one line on stderr and exit status 1, refused
before any work; surfaces are written in a size a user can live with."""

from __future__ import annotations

import struct

import igl
import pytest
from conftest import MESHES
from test_worker import run_cli

CUBE = MESHES / "cube_no_bottom.obj"


def one_line_error(result, *expected: str) -> str:
    """The single stderr line of a refused command, checked to hold each of ``expected``."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("inr_worker: error: "), lines
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["extract", "f.safetensors", "--out", "x.obj", "--resolution", "5000"], ["5000 is outside 16..2048"]),
        (["extract", "f.safetensors"], ["--out", "inr_worker extract --help"]),
        (["fit", str(CUBE)], ["--field"]),
        (["fit", str(CUBE), "--field", "f.safetensors", "--preset", "HUGE"], ["HUGE"]),
        (["extract", "f.safetensors", "--out", "x.obj", "--resolution", "many"], ["many"]),
        (["extract", "f.safetensors", "--out", "x.obj", "--adaptivity", "2"], ["2.0 is outside 0.0..1.0"]),
        (["frobnicate"], ["frobnicate"]),
        ([], ["command"]),
    ],
    ids=["resolution", "no out", "no field", "preset", "not a number", "adaptivity", "command", "nothing"],
)
def test_bad_arguments_are_one_line_without_usage(arguments, expected):
    line = one_line_error(run_cli(*arguments), *expected)
    assert "usage:" not in line


def test_a_missing_field_file_names_the_file(tmp_path):
    missing = tmp_path / "nothing.safetensors"
    line = one_line_error(run_cli("extract", str(missing), "--out", str(tmp_path / "x.obj")))
    assert line == f"inr_worker: error: {missing}: no such file"


def test_a_missing_mesh_file_names_the_file(tmp_path):
    missing = tmp_path / "nothing.obj"
    line = one_line_error(run_cli("fit", str(missing), "--field", str(tmp_path / "f.safetensors")))
    assert line == f"inr_worker: error: {missing}: no such file"


def test_an_unsupported_output_is_refused_before_any_work(tmp_path):
    field = tmp_path / "f.safetensors"
    result = run_cli("fit", str(CUBE), "--field", str(field), "--out", str(tmp_path / "s3.xyz"), "--resolution", "16")
    one_line_error(result, "s3.xyz: write .obj, .ply, .off or .stl")
    assert not field.exists()  # nothing was fitted
    into_nowhere = tmp_path / "no folder" / "x.obj"
    one_line_error(run_cli("fit", str(CUBE), "--field", str(field), "--out", str(into_nowhere)), "no such folder")
    assert not field.exists()


@pytest.mark.parametrize(
    "content",
    [CUBE.read_bytes(), b"not a field at all", struct.pack("<Q", 24) + b'{"__metadata__":{}}'.ljust(24)],
    ids=["a mesh picked by mistake", "text", "another safetensors file"],
)
def test_a_file_that_is_not_a_field_says_so(tmp_path, content):
    path = tmp_path / "thing.safetensors"
    path.write_bytes(content)
    line = one_line_error(run_cli("extract", str(path), "--out", str(tmp_path / "x.obj")), "not a field file")
    assert "damaged" not in line and "re-fit" not in line


def test_ply_is_binary_and_reads_back(tmp_path):
    field = tmp_path / "f.safetensors"
    fitted = run_cli("fit", str(CUBE), "--field", str(field), "--preset", "FAST")
    assert fitted.returncode == 0, fitted.stderr
    surfaces = {}
    for suffix in (".ply", ".obj"):
        surfaces[suffix] = tmp_path / f"s{suffix}"
        extracted = run_cli("extract", str(field), "--out", str(surfaces[suffix]), "--resolution", "48")
        assert extracted.returncode == 0, extracted.stderr
    assert b"format binary_little_endian 1.0" in surfaces[".ply"].read_bytes()[:200]
    from_ply, from_obj = (igl.read_triangle_mesh(str(path))[:2] for path in surfaces.values())
    assert len(from_ply[1]) == len(from_obj[1]) > 1000
    assert abs(from_ply[0] - from_obj[0]).max() < 1e-5  # the same surface
    assert surfaces[".ply"].stat().st_size < surfaces[".obj"].stat().st_size


def test_a_coloured_ply_fits_to_surfaces_with_its_colours(tmp_path):
    """Vertex colours of a PLY mesh go into the field and come out as 8-bit sRGB vertex colours of PLY
    (``red green blue`` uchar) and OBJ (``v x y z r g b``) surfaces, by fit and by extract."""
    import numpy as np
    import trimesh
    from test_colour import _uv_sphere, half_and_half

    from inr_worker.fields import colour_field

    vertices, triangles = _uv_sphere(48, 24)
    srgb = np.round(colour_field.linear_to_srgb(half_and_half(vertices)) * 255).astype(np.uint8)
    source = tmp_path / "sphere.ply"
    source.write_bytes(trimesh.Trimesh(vertices, triangles, vertex_colors=srgb, process=False).export(file_type="ply"))
    field, fitted_surface = tmp_path / "f.safetensors", tmp_path / "fitted.ply"
    fitted = run_cli("fit", str(source), "--field", str(field), "--out", str(fitted_surface), "--preset", "FAST",
                     "--resolution", "40")  # fmt: skip
    assert fitted.returncode == 0, fitted.stderr
    assert b"property uchar red" in fitted_surface.read_bytes()[:400]
    extracted_surface = tmp_path / "extracted.obj"
    extracted = run_cli("extract", str(field), "--out", str(extracted_surface), "--resolution", "56")
    assert extracted.returncode == 0, extracted.stderr
    for path in (fitted_surface, extracted_surface):
        surface = trimesh.load(path, process=False)
        positions = np.asarray(surface.vertices)
        colours = colour_field.from_bytes(np.asarray(surface.visual.vertex_colors)[:, :3])
        away = np.abs(positions[:, 2]) > 0.15  # the equator blends over a ring of triangles
        assert away.sum() > 500
        assert np.abs(colours[away] - half_and_half(positions)[away]).max() < 0.01, path.name
