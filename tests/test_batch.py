"""Batch fitting on a real local Ray (``python -m inr_worker batch``), and importing a batch field into Blender."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import igl
import numpy as np
import psutil
import pytest
from conftest import MESHES, ROOT
from meshmetrics import compare_arrays

from inr_worker.batch import score_surface
from inr_worker.fields.field_file import load_field

LIBRARY = {"cube_no_bottom.obj": "", "teapot.obj": "", "truck.obj": "vehicles"}
BAD = "bad/broken.obj"
ARGS = [
    "--preset",
    "FAST",
    "--steps",
    "60",
    "--resolution",
    "32",
    "--num-cpus",
    "2",
    "--score",
    "--score-samples",
    "5000",
]


def run_batch(library: Path, out: Path, ray_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "inr_addon"), "RAY_TMPDIR": str(ray_dir)}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run(
        [sys.executable, "-m", "inr_worker", "batch", str(library), "--out", str(out), *ARGS],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert any(ray_dir.glob("**/session_*")), "Ray did not use RAY_TMPDIR, so the check below would see nothing"
    leftovers = [p.pid for p in psutil.process_iter(["cmdline"]) if str(ray_dir) in " ".join(p.info["cmdline"] or [])]
    assert not leftovers, f"Ray processes left running: {leftovers}"
    return result


def manifest(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return {Path(row["input"]).name: row for row in rows}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A library of three shared meshes (one in a subfolder) and an unreadable file, fitted once."""
    root = tmp_path_factory.mktemp("batch")
    library = root / "library"
    for name, folder in LIBRARY.items():
        (library / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(MESHES / name, library / folder / name)
    (library / BAD).parent.mkdir()
    (library / BAD).write_text("this is not a mesh\n")
    ray_dir = Path(tempfile.mkdtemp(prefix="inr_ray_"))  # short: Ray's socket paths must fit 107 bytes
    result = run_batch(library, root / "out", ray_dir)
    yield library, root / "out", ray_dir, result
    shutil.rmtree(ray_dir, ignore_errors=True)


def test_batch_writes_fields_surfaces_and_a_manifest_and_fails_the_bad_file(batch):
    library, out, _, result = batch
    assert result.returncode == 1, result.stderr
    assert (
        result.stderr.strip().splitlines()[-1] == f"inr_worker: error: 1 of 4 meshes failed; see {out}/manifest.jsonl"
    )
    rows = manifest(out)
    assert set(rows) == {*LIBRARY, "broken.obj"}
    assert rows["broken.obj"]["status"] == "failed"
    assert rows["broken.obj"]["error"] == "no mesh could be read from it"
    for name, folder in LIBRARY.items():
        row = rows[name]
        stem = Path(folder) / Path(name).stem
        assert row["status"] == "done", row
        assert row["input"] == str(library / folder / name)
        assert row["input_triangles"] == len(igl.read_triangle_mesh(str(MESHES / name))[1])
        assert row["field_bytes"] == (out / f"{stem}.safetensors").stat().st_size
        (surface,) = row["surfaces"]
        assert surface["file"] == f"{stem}_32.obj"
        assert surface["boundary_edges"] == 0 and surface["nonmanifold_edges"] == 0
        assert surface["iou"] > 0.7 and surface["chamfer_l1"] < 0.05
        triangles = igl.read_triangle_mesh(str(out / surface["file"]))[1]
        assert len(triangles) == surface["triangles"] > 100
        assert load_field(out / f"{stem}.safetensors").info["preset"] == "FAST"
    assert not list(out.rglob("*.partial*"))
    assert "\n3 fitted in " in result.stderr and f"failed: {library / BAD}: no mesh could be read" in result.stderr


def test_rerun_skips_complete_meshes_and_finishes_an_interrupted_one(batch):
    library, out, ray_dir, _ = batch
    teapot_field = (out / "teapot.safetensors").read_bytes()
    earlier = manifest(out)
    (out / "teapot_32.obj").unlink()  # as if the run was killed before this surface was moved into place
    (out / ".teapot_32.obj.partial").write_text("half a file")
    result = run_batch(library, out, ray_dir)
    assert result.returncode == 1, result.stderr
    rows = manifest(out)
    assert [rows[name]["status"] for name in ("cube_no_bottom.obj", "truck.obj")] == ["skipped", "skipped"]
    assert rows["truck.obj"]["input_triangles"] == earlier["truck.obj"]["input_triangles"]  # figures carried over
    assert rows["teapot.obj"]["status"] == "done" and rows["teapot.obj"]["fitted"] is False
    assert rows["broken.obj"]["status"] == "failed"
    assert (out / "teapot.safetensors").read_bytes() == teapot_field  # extracted again, not fitted again
    triangles = igl.read_triangle_mesh(str(out / "teapot_32.obj"))[1]
    assert len(triangles) == rows["teapot.obj"]["surfaces"][0]["triangles"]
    assert "4 meshes: 2 to do, 2 skipped" in result.stderr


def test_scores_agree_with_the_shared_yardstick(batch):
    _, out, _, _ = batch
    reference = igl.read_triangle_mesh(str(MESHES / "truck.obj"))[:2]
    candidate = igl.read_triangle_mesh(str(out / "vehicles" / "truck_32.obj"))[:2]
    ours = score_surface(reference, candidate, samples=20_000)
    yardstick = compare_arrays(*reference, *candidate, samples=20_000)
    assert np.isclose(ours["chamfer_l1"], yardstick["chamfer_l1"], rtol=0.1)
    assert abs(ours["iou"] - yardstick["iou"]) < 0.02
    assert abs(ours["f_score"] - yardstick["f_score"]) < 0.02
    assert abs(ours["normal_consistency"] - yardstick["normal_consistency"]) < 0.02


def test_import_field_then_re_extract(scene, batch):
    import bpy

    _, out, _, _ = batch
    assert bpy.ops.inr.import_field(filepath=str(out / "teapot.safetensors"), resolution=32) == {"FINISHED"}
    imported = bpy.context.active_object
    assert imported.name == "teapot_inr" and imported["inr_preset"] == "FAST" and imported["inr_resolution"] == 32
    assert imported["_inr_field"] == (out / "teapot.safetensors").read_bytes()
    coarse = len(imported.data.polygons)
    assert coarse > 100
    assert bpy.ops.inr.extract_mesh(resolution=48) == {"FINISHED"}
    assert len(imported.data.polygons) > coarse and imported["inr_resolution"] == 48


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such field file"),
        (b"not a field", "thing.safetensors: not a field file"),
        ((MESHES / "cube_no_bottom.obj").read_bytes(), "thing.safetensors: not a field file"),
        (struct.pack("<Q", 24) + b'{"__metadata__":{}}'.ljust(24), "thing.safetensors: not a field file"),
    ],
    ids=["missing", "not safetensors", "a mesh picked by mistake", "not a field"],
)
def test_import_field_of_a_bad_file_is_one_line_and_changes_nothing(scene, tmp_path, content, message):
    import bpy

    path = tmp_path / "thing.safetensors"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(RuntimeError, match=message) as error:
        bpy.ops.inr.import_field(filepath=str(path))
    assert "\n" not in str(error.value).strip()
    assert len(bpy.data.objects) == 0 and len(bpy.data.meshes) == 0
