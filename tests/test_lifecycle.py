"""The worker's life cycle under Blender: cancel, crash, Blender's death, a missing or bare worker Python."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import psutil
import pytest
from conftest import ROOT, built_zip
from test_blender import ADDON, job_directory, jobs_left, ready_workers, scene_state, worker_processes

LONG = 1_000_000  # training steps that never end within a test


def addon_module(name: str):
    return sys.modules[f"{ADDON}.{name}"]


def wait_for(condition, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def training_worker(parent: psutil.Process) -> psutil.Process | None:
    """The worker under ``parent`` once it has started training, else None."""
    for child in parent.children(recursive=True):
        job = job_directory(child)
        if job is not None and (job / "events.jsonl").exists() and '"progress"' in (job / "events.jsonl").read_text():
            return child
    return None


def start_long_fit(bpy, name: str):
    runner, protocol = addon_module("runner"), addon_module("inr_worker.protocol")
    jobs_root = addon_module("operators.job_operator").jobs_root
    mesh_data = addon_module("mesh_data")
    vertices, triangles = mesh_data.evaluated_triangles(bpy.data.objects[name], bpy.context.evaluated_depsgraph_get())
    spec = protocol.JobSpec(task="fit", resolution=32, preset="FAST", steps=LONG)
    job = runner.WorkerJob(
        jobs_root(), name, spec, sys.executable, {protocol.MESH_FILE: {"vertices": vertices, "triangles": triangles}}
    )
    runner.start(job)
    wait_for(lambda: job.poll() or job.status.step > 0, what="training to start")
    return job


def test_cancel_ends_the_worker_and_a_second_fit_of_the_same_object_is_refused(scene):
    bpy = pytest.importorskip("bpy")
    bpy.ops.mesh.primitive_monkey_add()
    job = start_long_fit(bpy, "Suzanne")
    pid = job._process.pid
    before = scene_state(bpy)
    with pytest.raises(RuntimeError, match="Suzanne is already being fitted"):
        bpy.ops.inr.fit_mesh(resolution=32)
    assert scene_state(bpy) == before

    assert bpy.ops.inr.cancel() == {"FINISHED"}
    assert not psutil.pid_exists(pid)  # cancel returns once the worker is gone (SIGTERM, then SIGKILL)
    assert job.poll()
    with pytest.raises(addon_module("runner").JobCancelled):
        job.check_result()
    addon_module("runner").finish(job)
    assert not worker_processes() and not jobs_left(bpy) and scene_state(bpy) == before


def test_the_ready_worker_runs_the_next_job_and_follows_its_preference(scene):
    bpy = pytest.importorskip("bpy")
    preferences = bpy.context.preferences.addons[ADDON].preferences
    assert preferences.keep_worker_ready  # on by default
    bpy.ops.mesh.primitive_cube_add()
    assert bpy.ops.inr.fit_mesh(resolution=32, preset="FAST") == {"FINISHED"}
    [waiting] = wait_for(ready_workers, what="a ready worker after the fit")
    bpy.ops.mesh.primitive_monkey_add()
    job = start_long_fit(bpy, "Suzanne")
    assert job_directory(waiting) == job.directory and not ready_workers()  # it runs this job
    job.cancel()
    addon_module("runner").finish(job)
    assert not psutil.pid_exists(waiting.pid) and not worker_processes() and not jobs_left(bpy)

    preferences.keep_worker_ready = True
    [waiting] = wait_for(ready_workers, what="a ready worker once the preference is set")
    preferences.keep_worker_ready = False
    assert not psutil.pid_exists(waiting.pid) and not ready_workers()
    bpy.ops.object.select_all(action="DESELECT")
    bpy.data.objects["Cube"].select_set(True)
    bpy.context.view_layer.objects.active = bpy.data.objects["Cube"]
    assert bpy.ops.inr.fit_mesh(resolution=32, preset="FAST") == {"FINISHED"}  # a fresh worker, as before
    assert not ready_workers()
    preferences.keep_worker_ready = True


def test_a_killed_worker_is_a_clear_error_and_changes_nothing(scene):
    bpy = pytest.importorskip("bpy")
    bpy.ops.mesh.primitive_monkey_add()
    before = scene_state(bpy)

    def kill_when_training() -> None:
        worker = wait_for(lambda: training_worker(psutil.Process()), what="the worker to train")
        worker.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_when_training)  # touches processes only, never bpy
    killer.start()
    try:
        with pytest.raises(RuntimeError, match="the worker process was killed by signal 9"):
            bpy.ops.inr.fit_mesh(resolution=32, preset="FAST", steps=LONG)
    finally:
        killer.join()
    assert scene_state(bpy) == before
    assert not worker_processes() and not jobs_left(bpy)


CHILD_BLENDER = """
import sys, time
sys.path.insert(0, {scripts!r})
from headless import start_blender
bpy = start_blender({zip!r})
bpy.ops.mesh.primitive_monkey_add()
if {quit_politely!r}:
    runner = sys.modules["bl_ext.user_default.inr_addon.runner"]
    protocol = sys.modules["bl_ext.user_default.inr_addon.inr_worker.protocol"]
    jobs_root = sys.modules["bl_ext.user_default.inr_addon.operators.job_operator"].jobs_root
    spec = protocol.JobSpec(task="fit", resolution=32, preset="FAST", steps={long})
    mesh = {{"vertices": [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]],
             "triangles": [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]}}
    job = runner.WorkerJob(jobs_root(), "tetra", spec, sys.executable, {{"mesh.npz": mesh}})
    runner.start(job)
    print("JOBS", jobs_root(), flush=True)
    while job.status.step == 0 and not job.poll():
        time.sleep(0.05)
    runner.start_ready_worker(sys.executable)  # the next job's worker, waiting
    print("WORKERS", *(child.pid for child in __import__("psutil").Process().children()), flush=True)
    sys.exit(0)  # Blender quits: its exit handlers must end the worker and remove the job files
bpy.ops.inr.fit_mesh(resolution=32, preset="FAST", steps={long})
"""


def run_child_blender(quit_politely: bool) -> subprocess.Popen:
    script = CHILD_BLENDER.format(
        scripts=str(ROOT / "scripts"), zip=str(built_zip()), long=LONG, quit_politely=quit_politely
    )
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
    )


def test_the_worker_dies_with_a_killed_blender():
    blender = run_child_blender(quit_politely=False)
    try:
        worker = wait_for(lambda: training_worker(psutil.Process(blender.pid)), what="the worker to train")
        waiting = [p for p in psutil.Process(blender.pid).children() if "standby" in p.cmdline() and p != worker]
        blender.kill()
        blender.wait()
        for process in [worker, *waiting]:
            process.wait(timeout=10)  # raises psutil.TimeoutExpired if a worker outlives Blender
    finally:
        blender.kill()
        blender.wait()


def test_quitting_blender_ends_the_worker_and_removes_its_files():
    blender = run_child_blender(quit_politely=True)
    output, _ = blender.communicate(timeout=300)
    assert blender.returncode == 0
    jobs_root = next(line.split(" ", 1)[1] for line in output.splitlines() if line.startswith("JOBS "))
    assert os.listdir(jobs_root) == []
    orphans = [p for p in psutil.process_iter(["cmdline"]) if jobs_root in " ".join(p.info["cmdline"] or [])]
    assert orphans == []
    workers = [int(pid) for line in output.splitlines() if line.startswith("WORKERS ") for pid in line.split()[1:]]
    assert len(workers) == 2  # the job's and the ready one
    assert not any(psutil.pid_exists(pid) for pid in workers)


def test_a_worker_python_without_torch_says_what_to_set(scene, tmp_path):
    bpy = pytest.importorskip("bpy")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    bpy.ops.mesh.primitive_cube_add()
    before = scene_state(bpy)
    preferences = bpy.context.preferences.addons[ADDON].preferences
    preferences.python_path = str(tmp_path / "bare" / "bin" / "python")
    try:
        with pytest.raises(RuntimeError, match=r"bare/bin/python cannot import what the worker needs .*Worker Python"):
            bpy.ops.inr.fit_mesh(resolution=32)
    finally:
        preferences.python_path = ""
    assert scene_state(bpy) == before and not worker_processes() and not jobs_left(bpy)


def test_an_unknown_preset_is_refused_by_blender(scene):
    bpy = pytest.importorskip("bpy")
    bpy.ops.mesh.primitive_cube_add()
    with pytest.raises(TypeError, match='"HUGE" not found'):
        bpy.ops.inr.fit_mesh(preset="HUGE")


@pytest.mark.parametrize("scale", [1e7, 1e-7])
def test_huge_and_tiny_coordinates_fit_like_any_other(scene, scale):
    bpy = pytest.importorskip("bpy")
    from mathutils import Matrix

    bpy.ops.mesh.primitive_monkey_add()
    source = bpy.context.active_object
    source.data.transform(Matrix.Scale(scale, 4))
    assert bpy.ops.inr.fit_mesh(resolution=24, preset="FAST", steps=80) == {"FINISHED"}
    result = bpy.context.active_object
    extent = np.array(result.dimensions) / np.array(source.dimensions)
    assert np.allclose(extent, 1.0, atol=0.15), extent


def test_with_several_selected_the_active_one_is_fitted(scene):
    bpy = pytest.importorskip("bpy")
    bpy.ops.mesh.primitive_cube_add(location=(3, 0, 0))
    bpy.ops.mesh.primitive_uv_sphere_add()
    bpy.data.objects["Cube"].select_set(True)
    assert len(bpy.context.selected_objects) == 2
    assert bpy.ops.inr.fit_mesh(resolution=16, preset="FAST", steps=40, selection="ACTIVE") == {"FINISHED"}
    assert bpy.context.active_object.name == "Sphere_inr"


def test_loading_a_file_ends_running_jobs_and_removes_their_files(scene):
    bpy = pytest.importorskip("bpy")
    bpy.ops.mesh.primitive_monkey_add()
    job = start_long_fit(bpy, "Suzanne")
    pid = job._process.pid
    bpy.ops.wm.read_homefile(use_empty=True)  # load_pre: every job is stopped
    assert not psutil.pid_exists(pid)
    assert addon_module("runner").all_running() == []
    assert not worker_processes() and not jobs_left(bpy)


def test_an_unwritable_job_folder_is_a_clear_error(scene):
    bpy = pytest.importorskip("bpy")
    jobs_root = addon_module("operators.job_operator").jobs_root()
    bpy.ops.mesh.primitive_cube_add()
    before = scene_state(bpy)
    jobs_root.rmdir()
    jobs_root.write_text("a file where the job folder should be")  # root ignores permissions; this blocks it
    try:
        with pytest.raises(RuntimeError, match="cannot write the job files"):
            bpy.ops.inr.fit_mesh(resolution=32)
    finally:
        jobs_root.unlink()
        jobs_root.mkdir()
    assert scene_state(bpy) == before and not worker_processes() and not jobs_left(bpy)


def test_fits_of_two_objects_run_apart_and_cancel_apart(scene):
    bpy = pytest.importorskip("bpy")
    bpy.ops.mesh.primitive_monkey_add()
    bpy.ops.mesh.primitive_cube_add(location=(3, 0, 0))
    first = start_long_fit(bpy, "Suzanne")
    second = start_long_fit(bpy, "Cube")
    assert first.directory != second.directory
    assert bpy.ops.inr.cancel(object_name="Cube") == {"FINISHED"}
    assert second.poll() and not first.poll()  # the other fit goes on
    assert first.status.stage == "training"
    runner = addon_module("runner")
    runner.finish(second)
    assert bpy.ops.inr.cancel() == {"FINISHED"}
    runner.finish(first)
    assert not worker_processes() and not jobs_left(bpy)
