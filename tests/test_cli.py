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
        (["frobnicate"], ["frobnicate"]),
        ([], ["command"]),
    ],
    ids=["resolution", "no out", "no field", "preset", "not a number", "command", "nothing"],
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
