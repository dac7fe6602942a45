"""The extension in real Blender (the bpy wheel), installed from the built zip, with the real worker."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import psutil
import pytest
from conftest import MESHES, ROOT, built_zip
from headless import ADDON, mesh_arrays
from meshmetrics import compare_arrays, edge_counts

from inr_worker import protocol


def scene_state(bpy) -> list[tuple]:
    """Names, types and sizes of everything a failed operator must leave alone."""
    objects = [
        (o.name, o.type, len(o.data.vertices) if o.type == "MESH" else 0, tuple(o.matrix_world.col[3]))
        for o in bpy.data.objects
    ]
    return sorted(objects) + [("meshes", len(bpy.data.meshes)), ("images", len(bpy.data.images))]


def job_directory(process: psutil.Process) -> Path | None:
    """The job directory that a worker process runs; None for the ready worker while it waits for a job
    (``inr_worker standby``, which moves into its job's directory when it gets one)."""
    try:
        command = process.cmdline()
        if "standby" in command:
            folder = Path(process.cwd())
            return folder if (folder / "job.json").is_file() else None
        return Path(command[-1]) if "run" in command else None
    except psutil.Error:  # ended meanwhile
        return None


def ready_workers() -> list[psutil.Process]:
    """This process's ready workers that wait for a job."""
    return [p for p in psutil.Process().children() if "standby" in p.cmdline() and job_directory(p) is None]


def worker_processes() -> list[psutil.Process]:
    """Every process under this one but the ready worker waiting for a job (it belongs to no job)."""
    waiting = {p.pid for p in ready_workers()}
    return [p for p in psutil.Process().children(recursive=True) if p.pid not in waiting]


def jobs_left(bpy) -> list[Path]:
    root = Path(bpy.utils.extension_path_user(ADDON, path="jobs", create=True))
    return list(root.iterdir())


def import_obj(bpy, name: str):
    bpy.ops.wm.obj_import(filepath=str(MESHES / name))
    return bpy.context.active_object


def test_installed_from_the_zip_into_a_temporary_profile(addon):
    module = addon.context.preferences.addons[ADDON].module
    import sys

    path = Path(sys.modules[module].__file__).resolve()
    assert ROOT not in path.parents  # runs from the installed copy, not the source tree
    names = zipfile.ZipFile(built_zip()).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and "inr_worker/cli.py" in names
    assert not [n for n in names if n.endswith((".obj", ".ply", ".png", ".blend")) or n.startswith("tests/")]


def test_fit_extract_save_reopen(scene, tmp_path):
    bpy = pytest.importorskip("bpy")
    source = import_obj(bpy, "bunny_closed_lowres.obj")
    source.location = (1.0, 2.0, 3.0)
    source_arrays = mesh_arrays(source)

    assert bpy.ops.inr.fit_mesh(resolution=48, preset="FAST", steps=150) == {"FINISHED"}
    result = bpy.context.active_object
    assert result.name == source.name + "_inr" and result.select_get() and not source.select_get()
    assert result.users_collection[0] == source.users_collection[0]
    assert np.allclose(np.array(result.matrix_world), np.array(source.matrix_world))
    assert np.array_equal(mesh_arrays(source)[0], source_arrays[0])  # the source is untouched
    vertices, triangles = mesh_arrays(result)
    metrics = compare_arrays(*source_arrays, vertices, triangles, samples=20_000)
    assert metrics["boundary_edges"] == 0 and metrics["nonmanifold_edges"] == 0
    assert metrics["signed_volume"] > 0
    assert metrics["iou"] > 0.9, metrics
    assert not worker_processes() and not jobs_left(bpy)

    coarse = len(result.data.vertices)
    assert bpy.ops.inr.extract_mesh(resolution=96) == {"FINISHED"}
    fine = len(result.data.vertices)
    assert fine > 3 * coarse and result["inr_resolution"] == 96
    assert edge_counts(mesh_arrays(result)[1]) == (0, 0)

    path, name = tmp_path / "fitted.blend", result.name
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    reopened = bpy.data.objects[name]
    bpy.context.view_layer.objects.active = reopened
    assert len(reopened.data.vertices) == fine
    assert bpy.ops.inr.extract_mesh(resolution=32) == {"FINISHED"}
    assert len(reopened.data.vertices) < coarse
    assert not worker_processes() and not jobs_left(bpy)


def test_fit_uses_the_evaluated_mesh(scene):
    bpy = pytest.importorskip("bpy")
    bpy.ops.mesh.primitive_cube_add(size=2.0)
    cube = bpy.context.active_object
    modifier = cube.modifiers.new("half", "BOOLEAN")
    bpy.ops.mesh.primitive_cube_add(size=2.0, location=(0, 0, 1.5))
    cutter = bpy.context.active_object
    cutter.hide_set(True)
    modifier.object = cutter
    bpy.context.view_layer.objects.active = cube
    assert bpy.ops.inr.fit_mesh(resolution=32, preset="FAST", steps=60) == {"FINISHED"}
    vertices, _ = mesh_arrays(bpy.context.active_object)
    assert vertices[:, 2].max() < 0.6  # the boolean cut the top half away: the field saw that
    assert len(cube.data.vertices) == 8


def write_field(tmp_path, **metadata) -> bytes:
    path = tmp_path / "f.safetensors"
    protocol.write_safetensors(path, {}, metadata)
    return path.read_bytes()


def _nothing_active(bpy, tmp_path):
    bpy.ops.mesh.primitive_cube_add()
    bpy.context.view_layer.objects.active = None
    bpy.data.objects["Cube"].select_set(False)  # a selected mesh would be fitted
    return "inr.fit_mesh", {}, "no active object"


def _camera(bpy, tmp_path):
    bpy.ops.object.camera_add()
    return "inr.fit_mesh", {}, "the active object Camera is a camera, not a mesh"


def _empty(bpy, tmp_path):
    bpy.ops.object.empty_add()
    return "inr.fit_mesh", {}, "the active object Empty is an empty, not a mesh"


def _curve(bpy, tmp_path):
    bpy.ops.curve.primitive_bezier_curve_add()
    return "inr.fit_mesh", {}, "the active object B.zierCurve is a curve, not a mesh"


def _single_triangle(bpy, tmp_path):
    mesh = bpy.data.meshes.new("Triangle")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    triangle = bpy.data.objects.new("Triangle", mesh)
    bpy.context.scene.collection.objects.link(triangle)
    bpy.context.view_layer.objects.active = triangle
    return "inr.fit_mesh", {"steps": 5}, "no surface found"


def _not_executable_python(bpy, tmp_path):
    bpy.ops.mesh.primitive_cube_add()
    (tmp_path / "python").write_text("not a program")
    bpy.context.preferences.addons[ADDON].preferences.python_path = str(tmp_path / "python")
    return "inr.fit_mesh", {}, "python is not executable.*Worker Python"


def _resolution_low(bpy, tmp_path):
    bpy.ops.mesh.primitive_cube_add()
    return "inr.fit_mesh", {"resolution": 8}, "resolution 8 is outside 16 to 2048"


def _resolution_high(bpy, tmp_path):
    bpy.ops.mesh.primitive_cube_add()
    return "inr.fit_mesh", {"resolution": 4096}, "resolution 4096 is outside 16 to 2048"


def _flat_plane(bpy, tmp_path):
    bpy.ops.mesh.primitive_plane_add()
    return "inr.fit_mesh", {"steps": 5}, "no surface found"


def _no_faces(bpy, tmp_path):
    bpy.ops.mesh.primitive_cube_add()
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.delete(type="ONLY_FACE")
    bpy.ops.object.mode_set(mode="OBJECT")
    return "inr.fit_mesh", {}, "Cube: only 8 points; a points fit needs at least 100"  # its vertices, as points


def _nan_vertex(bpy, tmp_path):
    bpy.ops.mesh.primitive_cube_add()
    bpy.context.active_object.data.vertices[0].co.x = float("nan")
    return "inr.fit_mesh", {}, "has vertices with NaN or infinite coordinates"


def _extract_without_field(bpy, tmp_path):
    bpy.ops.mesh.primitive_cube_add()
    return "inr.extract_mesh", {}, "has no fitted field"


def _extract_corrupt_field(bpy, tmp_path):
    bpy.ops.mesh.primitive_cube_add()
    bpy.context.active_object["_inr_field"] = b"\x00garbage"
    return "inr.extract_mesh", {}, "damaged.*re-fit this object"


def _extract_other_version(bpy, tmp_path):
    bpy.ops.mesh.primitive_cube_add()
    bpy.context.active_object["_inr_field"] = write_field(tmp_path, format=protocol.FIELD_FORMAT, format_version="99")
    return "inr.extract_mesh", {}, "version 99.*re-fit this object"


def _missing_python(bpy, tmp_path):
    bpy.ops.mesh.primitive_cube_add()
    bpy.context.preferences.addons[ADDON].preferences.python_path = str(tmp_path / "no-python")
    return "inr.fit_mesh", {}, "no-python does not exist.*Worker Python"


@pytest.mark.parametrize(
    "case",
    [
        _nothing_active,
        _camera,
        _empty,
        _curve,
        _single_triangle,
        _not_executable_python,
        _resolution_low,
        _resolution_high,
        _flat_plane,
        _no_faces,
        _nan_vertex,
        _extract_without_field,
        _extract_corrupt_field,
        _extract_other_version,
        _missing_python,
    ],
)
def test_bad_input_is_one_clear_error_and_changes_nothing(scene, tmp_path, case):
    bpy = pytest.importorskip("bpy")
    operator, arguments, message = case(bpy, tmp_path)
    before = scene_state(bpy)
    try:
        with pytest.raises(RuntimeError, match=message) as raised:
            getattr(bpy.ops.inr, operator.split(".")[1])(**arguments)
    finally:
        bpy.context.preferences.addons[ADDON].preferences.python_path = ""
    assert "Traceback" not in str(raised.value) and len(str(raised.value).strip().splitlines()) == 1
    assert scene_state(bpy) == before
    assert not worker_processes() and not jobs_left(bpy)


def test_check_worker_reports_torch(addon):
    import torch

    assert addon.ops.inr.check_worker() == {"FINISHED"}
    assert torch.__version__  # the same Python runs the worker here


def test_panel_draws_in_the_sidebar(addon):
    panel = addon.types.VIEW3D_PT_inr_neural_field
    assert panel.bl_category == "Neural Field" and panel.bl_region_type == "UI"


def test_worker_threads_follow_the_preference(addon):
    import sys

    preferences = sys.modules[addon.context.preferences.addons[ADDON].module + ".preferences"]
    settings = addon.context.preferences.addons[ADDON].preferences
    assert preferences.worker_threads(addon.context) == 0  # background: all cores
    settings.threads = 3
    try:
        assert preferences.worker_threads(addon.context) == 3
    finally:
        settings.threads = 0


@pytest.mark.parametrize("operator", ["fit_mesh", "extract_mesh"])
def test_a_job_that_cannot_fit_in_memory_is_refused_before_it_starts(scene, tmp_path, monkeypatch, operator):
    import sys

    bpy = pytest.importorskip("bpy")
    source = import_obj(bpy, "spot.obj")
    if operator == "extract_mesh":  # as if fitted at 64: at 2048 it would have 1024 times the triangles
        source["_inr_field"] = write_field(
            tmp_path, format=protocol.FIELD_FORMAT, format_version=str(protocol.FIELD_FORMAT_VERSION)
        )
        source["inr_resolution"] = 64
    before = scene_state(bpy)
    memory = sys.modules[bpy.context.preferences.addons[ADDON].module + ".inr_worker.memory"]
    monkeypatch.setattr(memory, "available_memory", lambda: 100 * 2**20)
    with pytest.raises(RuntimeError, match="resolution 2048 needs about .* only 100.0 MB is free") as raised:
        getattr(bpy.ops.inr, operator)(resolution=2048)
    assert len(str(raised.value).strip().splitlines()) == 1
    assert scene_state(bpy) == before
    assert not worker_processes() and not jobs_left(bpy)
