"""Worker environment from the preferences: Check Worker on good and bad Pythons, Set Up Worker refused
offline, cancelled and failing cleanly, and one real set-up (venv + pip from the package index) that a FAST
fit then uses, without touching Blender's own Python."""

from __future__ import annotations

import platform
import shutil
import site
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import ROOT, built_zip
from headless import ADDON

GOOD_PYTHON = ROOT / ".venv" / "bin" / "python"


def addon_module(bpy):
    return sys.modules[bpy.context.preferences.addons[ADDON].module]


def preferences(bpy):
    return bpy.context.preferences.addons[ADDON].preferences


@pytest.fixture
def worker_python_kept(addon):
    """Restores Worker Python and online access after the test."""
    prefs, system = preferences(addon), addon.context.preferences.system
    kept = prefs.python_path, prefs.index_url, system.use_online_access
    yield prefs
    prefs.python_path, prefs.index_url, system.use_online_access = kept


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> Path:
    """A real Python without torch (a venv without pip), in a folder with a space in its name."""
    env = tmp_path_factory.mktemp("bare") / "bare env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    return env / "bin" / "python"


def fake_distribution(python: Path, name: str, version: str) -> Path:
    """Installs an empty importable package with the given version metadata into ``python``'s site-packages."""
    site_packages = next((python.parent.parent / "lib").glob("python3*/site-packages"))
    (site_packages / name).mkdir(exist_ok=True)
    (site_packages / name / "__init__.py").write_text("")
    info = site_packages / f"{name}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return info


def site_listing() -> list[str]:
    """Everything in the site-packages of the Python that runs Blender (here: the bpy wheel's)."""
    return sorted(
        str(path.relative_to(folder))
        for folder in map(Path, {*site.getsitepackages(), site.getusersitepackages()})
        if folder.is_dir()
        for path in folder.iterdir()
    )


def test_manifest_and_zip_carry_network_permission_and_requirements():
    names = zipfile.ZipFile(built_zip()).namelist()
    assert "requirements-worker.txt" in names and "worker_env.py" in names
    manifest = zipfile.ZipFile(built_zip()).read("blender_manifest.toml").decode()
    assert "network = " in manifest


def test_check_a_good_python(addon, worker_python_kept):
    worker_python_kept.python_path = str(GOOD_PYTHON)
    report = addon_module(addon).worker_env.check_python(str(GOOD_PYTHON))
    assert report.python_version == platform.python_version()
    assert report.torch == torch.__version__ and report.device == "cpu"
    assert report.cpu_threads >= 1 and report.cuda_devices == [] and report.mps is False
    assert f"torch {torch.__version__}" in report.summary() and "CPU (" in report.summary()
    assert addon.ops.inr.check_worker() == {"FINISHED"}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "does not exist"),
        ("folder", "is a folder, not a Python"),
        ("not executable", "is not executable"),
        ("not a python", "is not a Python 3 interpreter"),
        ("no torch", "has no torch"),
        ("old torch", "has torch 1.13.1, too old"),
        ("no libigl", r"lacks libigl \(module igl\)"),
    ],
)
def test_check_says_why_a_python_cannot_work(addon, worker_python_kept, bare_python, tmp_path, case, message):
    path = {
        "missing": tmp_path / "no such python",
        "folder": tmp_path,
        "not executable": tmp_path / "python",
        "not a python": tmp_path / "python",
        "no torch": bare_python,
        "old torch": bare_python,
        "no libigl": bare_python,
    }[case]
    if case in ("not executable", "not a python"):
        path.write_text("#!/bin/sh\necho hello\n")
        path.chmod(0o755 if case == "not a python" else 0o644)
    added = []
    if case in ("old torch", "no libigl"):
        added.append(fake_distribution(bare_python, "torch", "1.13.1" if case == "old torch" else "2.13.0"))
        added.append(fake_distribution(bare_python, "numpy", "1.26.4"))
    try:
        worker_python_kept.python_path = str(path)
        with pytest.raises(RuntimeError, match=message) as raised:
            addon.ops.inr.check_worker()
        assert "\n" not in str(raised.value).strip()
    finally:
        for info in added:
            for folder in (info, info.parent / info.name.split("-")[0]):
                for file in folder.iterdir():
                    file.unlink()
                folder.rmdir()


def test_setup_refused_with_online_access_off(addon, worker_python_kept, tmp_path):
    addon.context.preferences.system.use_online_access = False
    worker_python_kept.python_path = str(GOOD_PYTHON)
    assert not addon.app.online_access
    with pytest.raises(RuntimeError, match="Allow Online Access.*existing Python"):
        addon.ops.inr.worker_setup(torch_build="CPU", directory=str(tmp_path))
    assert list(tmp_path.iterdir()) == [] and worker_python_kept.python_path == str(GOOD_PYTHON)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
def test_cuda_refused_without_an_nvidia_gpu(addon, worker_python_kept, tmp_path):
    addon.context.preferences.system.use_online_access = True
    with pytest.raises(RuntimeError, match="no NVIDIA GPU"):
        addon.ops.inr.worker_setup(torch_build="CUDA", directory=str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_setup_cancelled_leaves_nothing(addon, tmp_path):
    worker_env = addon_module(addon).worker_env
    setup = worker_env.WorkerSetup(worker_env.SetupConfig(root=tmp_path / "user dir"))
    deadline = time.monotonic() + 60
    while not setup.building.exists() and time.monotonic() < deadline:
        assert not setup.poll()  # making the venv
        time.sleep(0.1)
    assert setup.building.exists()
    setup.cancel()
    assert setup.poll() and setup.outcome == "cancelled"
    with pytest.raises(worker_env.SetupCancelled):
        setup.check_result()
    worker_env.wait_for_deletions()
    assert sorted(p.name for p in (tmp_path / "user dir").iterdir()) == [worker_env.LOG_NAME]
    assert "cancelled" in setup.log_path.read_text()


class RecordingLayout:
    """Stands in for the UILayout that only a window has: records what the preferences draw."""

    def __init__(self) -> None:
        self.drawn: list[str] = []
        self.enabled = True

    def label(self, text: str = "", icon: str = "NONE") -> None:
        self.drawn.append(f"label: {text}")

    def operator(self, name: str, text: str = "", icon: str = "NONE"):
        self.drawn.append(f"operator: {name} {text}")
        return type("Properties", (), {})()

    def prop(self, data, name: str) -> None:
        self.drawn.append(f"prop: {name}")

    def row(self) -> RecordingLayout:
        return self


def test_button_path_refuses_a_second_click_cancels_and_shows_progress(addon, worker_python_kept, tmp_path):
    """What a button does: the set-up runs aside, an application timer follows it (driven by hand here,
    as the wheel has no event loop) and the preferences draw its progress line and Cancel."""
    module = addon_module(addon)
    worker_env, follow = module.worker_env, module.operators.worker_setup._follow
    addon.context.preferences.system.use_online_access = True
    worker_python_kept.python_path = str(GOOD_PYTHON)
    setup = worker_env.WorkerSetup(worker_env.SetupConfig(root=tmp_path / "user dir"))
    worker_env.set_active(setup)
    try:
        assert follow(setup) is not None  # still running: the timer asks to be called again
        layout = RecordingLayout()
        module.preferences.INR_AddonPreferences.draw_worker_setup(worker_python_kept, layout)
        assert any(line.startswith("label: Step 1/5: Making the environment") for line in layout.drawn)
        assert "operator: inr.worker_setup_cancel " in layout.drawn
        with pytest.raises(RuntimeError, match="already running"):
            addon.ops.inr.worker_setup(torch_build="CPU", directory=str(tmp_path / "other"))
        with pytest.raises(RuntimeError, match="Set Up Worker is running"):
            addon.ops.inr.worker_remove(directory=str(tmp_path / "user dir"))
        assert addon.ops.inr.worker_setup_cancel() == {"FINISHED"}
        assert follow(setup) is None  # ended: the timer stops
    finally:
        worker_env.set_active(None)
    assert worker_env.active() is None and "cancelled" in worker_env.last_message
    worker_env.wait_for_deletions()
    assert worker_python_kept.python_path == str(GOOD_PYTHON) and not setup.building.exists()
    layout = RecordingLayout()
    module.preferences.INR_AddonPreferences.draw_worker_setup(worker_python_kept, layout)
    assert "operator: inr.worker_setup Set Up Worker (CPU)" in layout.drawn
    assert f"label: {worker_env.last_message}" in layout.drawn


def test_progress_line_and_error_from_pip_output(addon):
    output = addon_module(addon).worker_env.PipOutput()
    output.feed("Collecting libigl==2.6.3 (from -r /tmp/a b/requirements-worker.txt (line 7))")
    output.feed("  Downloading libigl-2.6.3-cp311-cp311-manylinux_2_28_x86_64.whl (13.9 MB)")
    output.feed("Progress 3474914 of 13899658")
    assert output.text() == "Downloading libigl-2.6.3-cp311-cp311-manylinux_2_28_x86_64.whl (13.9 MB) 25%"
    output.feed("WARNING: Retrying (...) after connection broken by 'NewConnectionError(...)': /simple/scipy/")
    output.feed("ERROR: Could not find a version that satisfies the requirement scipy==1.17.1 (from versions: none)")
    output.feed("ERROR: No matching distribution found for scipy==1.17.1")
    assert output.unreachable and output.error.startswith("Could not find a version that satisfies")


def test_plan_uses_the_requirements_file_and_the_index(addon, tmp_path):
    worker_env = addon_module(addon).worker_env
    building = tmp_path / "building dir"
    steps = worker_env.plan(worker_env.SetupConfig(root=tmp_path, torch_build="CPU"), building)
    assert [s.command[0] for s in steps[1:]] == [str(worker_env.env_python(building))] * 4
    torch_step, packages_step = steps[2].command, steps[3].command
    assert torch_step[-1] == "torch==2.13.0" and "--no-deps" in torch_step
    assert packages_step[-2:] == ["-r", str(worker_env.REQUIREMENTS)]
    assert worker_env.REQUIREMENTS.read_text() == (ROOT / "inr_addon" / "requirements-worker.txt").read_text()
    if sys.platform.startswith("linux"):
        assert torch_step[torch_step.index("--extra-index-url") + 1] == worker_env.TORCH_CPU_INDEX
    mirror = worker_env.plan(
        worker_env.SetupConfig(tmp_path, "CPU", index_url="https://mirror.example/simple"), building
    )
    for step in mirror[1:4]:
        assert step.command[step.command.index("--index-url") + 1] == "https://mirror.example/simple"
        assert "--extra-index-url" not in step.command


def test_real_setup_fit_failed_update_and_remove(addon, scene, worker_python_kept, tmp_path, monkeypatch):
    bpy = addon
    worker_env = addon_module(bpy).worker_env
    bpy.context.preferences.system.use_online_access = True
    worker_python_kept.index_url = ""
    worker_python_kept.python_path = str(GOOD_PYTHON)
    root = tmp_path / "Blender user dir"  # a space in the path, as on Windows and macOS
    blender_site = site_listing()

    started = time.monotonic()
    assert bpy.ops.inr.worker_setup(torch_build="CPU", directory=str(root)) == {"FINISHED"}
    print(f"\nreal Set Up Worker (CPU): {time.monotonic() - started:.1f} s", file=sys.stderr)
    python = worker_env.env_python(root / worker_env.ENV_NAME)
    assert worker_python_kept.python_path == str(python)
    assert sorted(p.name for p in root.iterdir()) == [worker_env.ENV_NAME, worker_env.LOG_NAME]
    assert site_listing() == blender_site  # nothing went into Blender's own Python
    assert "Progress " in worker_env.log_path(root).read_text()  # pip reported download progress
    report = worker_env.check_python(str(python))  # imports torch, libigl and scikit-image there
    assert report.torch.startswith("2.13.0") and report.python == str(python)
    print(f"checked: {time.monotonic() - started:.1f} s", file=sys.stderr)

    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=3)
    assert bpy.ops.inr.fit_mesh(resolution=24, preset="FAST", steps=20) == {"FINISHED"}
    assert len(bpy.context.active_object.data.vertices) > 100
    print(f"fitted: {time.monotonic() - started:.1f} s", file=sys.stderr)

    # A set-up that fails (no package index reachable) keeps the working environment and Worker Python.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"failed at step 2/5 \(Updating pip\).*Worker Python is unchanged"):
        bpy.ops.inr.worker_setup(torch_build="CPU", directory=str(root))
    assert worker_python_kept.python_path == str(python) and python.is_file()
    worker_env.wait_for_deletions()  # the failed build (a bare venv) is deleted in the background
    assert sorted(p.name for p in root.iterdir()) == [worker_env.ENV_NAME, worker_env.LOG_NAME]
    assert "== failed" in worker_env.log_path(root).read_text()
    print(f"failed set-up: {time.monotonic() - started:.1f} s", file=sys.stderr)

    assert bpy.ops.inr.worker_remove(directory=str(root)) == {"FINISHED"}
    assert not (root / worker_env.ENV_NAME).exists() and worker_python_kept.python_path == ""
    with pytest.raises(RuntimeError, match="no worker environment"):
        bpy.ops.inr.worker_remove(directory=str(root))
    assert site_listing() == blender_site
