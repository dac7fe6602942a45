"""The worker's Python: make one (a virtual environment with the worker's pinned requirements) and check one.

No bpy here. A set-up runs its steps (venv, pip, a check) one process at a time, writes everything they print
to a log file, and builds in a temporary folder beside its final place; only a complete, checked environment
is moved into place, so a failed or cancelled set-up leaves the old one (and Worker Python) as they were.
Nothing is ever installed into the Python that runs Blender: pip always runs as the new environment's Python.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from . import runner

REQUIREMENTS = Path(__file__).resolve().parent / "requirements-worker.txt"
ENV_NAME = "worker-env"
LOG_NAME = "worker-setup.log"
BUILDING_PREFIX = ".worker-env-building-"
REMOVED_PREFIX = ".worker-env-removed-"  # renamed aside, being deleted
TORCH_BUILDS = ("CPU", "CUDA")
# pip's own index holds CPU-only torch for Windows and macOS, but a CUDA build for Linux; the PyTorch index
# has the CPU-only Linux build, and the CUDA builds for Windows.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu128"
MIN_PIP = "pip>=24.1"  # the first pip with `--progress-bar raw`
MIN_PYTHON = (3, 10)
MIN_TORCH = (2, 0)
WORKER_MODULES = {  # module: package
    "numpy": "numpy",
    "igl": "libigl",
    "skimage": "scikit-image",
    "fast_simplification": "fast-simplification",
}
CANCEL_GRACE_S = 1.5
PROBE_TIMEOUT_S = 60
CHECK_TIMEOUT_S = 180
# Variables that would send pip's installs somewhere else than the new environment.
PIP_REDIRECTS = ("PIP_TARGET", "PIP_PREFIX", "PIP_ROOT", "PIP_USER", "PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV")


class SetupError(RuntimeError):
    """A set-up that failed or was refused; the message is one line for the user."""


class SetupCancelled(SetupError):
    """A set-up stopped by the user."""


class WorkerPythonError(RuntimeError):
    """A Python that cannot run the worker; the message says exactly why, in one line."""


def environment_dir(root: Path) -> Path:
    """Where the environment lives inside ``root`` (the add-on's user folder)."""
    return Path(root) / ENV_NAME


def env_python(env_dir: Path) -> Path:
    """The Python executable of a virtual environment."""
    if sys.platform == "win32":
        return Path(env_dir) / "Scripts" / "python.exe"
    return Path(env_dir) / "bin" / "python"


def log_path(root: Path) -> Path:
    return Path(root) / LOG_NAME


@functools.cache
def has_nvidia_gpu() -> bool:
    """True where ``nvidia-smi -L`` lists a GPU (asked once per session)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listed = subprocess.run(
            [smi, "-L"], check=False, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def offered_builds() -> tuple[str, ...]:
    """The torch builds Set Up Worker offers on this machine."""
    return TORCH_BUILDS if has_nvidia_gpu() else ("CPU",)


def torch_requirement() -> str:
    """The torch line of the requirements file."""
    for line in REQUIREMENTS.read_text().splitlines():
        if re.match(r"torch\b", line.strip()):
            return line.strip()
    raise SetupError(f"{REQUIREMENTS} names no torch")


def torch_index(build: str, platform: str = sys.platform) -> str:
    """The extra index that has the wanted torch build here, or "" where pip's own index has it."""
    if build == "CPU" and platform.startswith("linux"):
        return TORCH_CPU_INDEX
    if build == "CPU" and platform == "win32":
        return TORCH_CPU_INDEX
    if build == "CUDA" and platform == "win32":
        return TORCH_CUDA_INDEX
    return ""


def inside(path: Path | str, folder: Path | str) -> bool:
    """True if ``path`` is ``folder`` or lies in it (folders resolved, the last name not: a venv's python is a link)."""
    path, folder = Path(os.path.abspath(path)), Path(os.path.realpath(folder))
    path = Path(os.path.realpath(path.parent)) / path.name
    return path == folder or folder in path.parents


@dataclasses.dataclass(frozen=True)
class SetupConfig:
    """What a set-up makes: the environment under ``root`` with the ``torch_build`` ('CPU' or 'CUDA')."""

    root: Path
    torch_build: str = "CPU"
    index_url: str = ""  # empty: pip's own configuration
    base_python: str = sys.executable  # whose venv module makes the environment


@dataclasses.dataclass
class Step:
    label: str
    command: list[str]
    env: dict[str, str]


def _pip_environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in PIP_REDIRECTS}
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def plan(config: SetupConfig, building: Path) -> list[Step]:
    """The commands that make the environment in ``building`` (argument lists, never a shell)."""
    python = str(env_python(building))
    env = _pip_environment()
    index = ["--index-url", config.index_url] if config.index_url else []
    extra = "" if config.index_url else torch_index(config.torch_build)  # a studio's own index decides itself
    torch_extra = ["--extra-index-url", extra] if extra else []
    pip_install = [python, "-m", "pip", "install", "--disable-pip-version-check", *index]
    raw = ["--progress-bar", "raw"]
    return [
        Step("Making the environment", [config.base_python, "-m", "venv", str(building)], env),
        Step("Updating pip", [*pip_install, "--upgrade", MIN_PIP], env),
        Step(
            f"Installing torch ({config.torch_build})",
            [*pip_install, *raw, *torch_extra, "--no-deps", torch_requirement()],
            env,
        ),
        Step("Installing the worker's packages", [*pip_install, *raw, "-r", str(REQUIREMENTS)], env),
        Step("Checking the worker", runner.worker_command(python, "check"), runner.worker_environment()),
    ]


class PipOutput:
    """Turns the lines pip prints into a short progress detail and its error."""

    def __init__(self) -> None:
        self.detail = ""
        self.fraction: float | None = None
        self.error = ""
        self.last_line = ""
        self.unreachable = False

    def feed(self, line: str) -> None:
        line = line.rstrip()
        stripped = line.strip()
        if match := re.fullmatch(r"Progress (\d+) of (\d+)", stripped):
            done, total = int(match[1]), int(match[2])
            self.fraction = done / total if total else None
        elif stripped.startswith(("Collecting ", "Downloading ", "Installing collected packages:", "Processing ")):
            short = re.sub(r"\S+/(\S+)", r"\1", re.sub(r"\s*\(from .*\)$", "", stripped))  # file names, no paths
            self.detail = short if len(short) < 90 else short[:87] + "..."
            self.fraction = None
        elif stripped.startswith("ERROR: ") and not self.error:
            self.error = stripped[len("ERROR: ") :]
        elif "NewConnectionError" in stripped or "Failed to establish a new connection" in stripped:
            self.unreachable = True
        if stripped and not stripped.startswith(("WARNING", "Progress ")):
            self.last_line = stripped

    def text(self) -> str:
        percent = f" {self.fraction:.0%}" if self.fraction is not None else ""
        return f"{self.detail}{percent}"


class WorkerSetup:
    """One set-up run. ``poll`` advances it (from a timer or a loop); ``cancel`` stops it."""

    def __init__(self, config: SetupConfig) -> None:
        if config.torch_build not in TORCH_BUILDS:
            raise SetupError(f"unknown torch build {config.torch_build!r}; use one of {', '.join(TORCH_BUILDS)}")
        for own in {sys.prefix, sys.base_prefix}:
            if inside(config.root, own):
                raise SetupError(f"{config.root} is inside Blender's own Python ({own}); choose another folder")
        self.config = config
        self.root = Path(config.root)
        self.final = environment_dir(self.root)
        self.building = self.root / f"{BUILDING_PREFIX}{uuid.uuid4().hex[:8]}"
        self.log_path = log_path(self.root)
        self.started = time.monotonic()
        self.index = -1
        self.output = PipOutput()
        self.outcome: str | None = None  # "done", "failed" or "cancelled"
        self.message = ""
        self._process: subprocess.Popen | None = None
        self._read_at = 0
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            remove_leftovers(self.root)
            self.steps = plan(config, self.building)
            self.log_path.write_bytes(b"")
            self._log = open(self.log_path, "ab", buffering=0)  # noqa: SIM115 (open for the set-up's life)
        except OSError as error:
            raise SetupError(f"cannot write in {self.root}: {error}") from error
        self._write_log(
            f"Set Up Worker {time.strftime('%Y-%m-%d %H:%M:%S')}: torch {config.torch_build}, "
            f"index {config.index_url or 'from pip configuration'}, Python {config.base_python}\n"
            f"building in {self.building}, then moving to {self.final}\n"
        )
        self._next_step()

    @property
    def python(self) -> Path:
        """The finished environment's Python (valid once the set-up is done)."""
        return env_python(self.final)

    def status(self) -> str:
        """One line for the preferences: the step and what pip is doing."""
        if self.outcome is not None:
            return self.message
        step = self.steps[self.index]
        detail = self.output.text()
        line = f"Step {self.index + 1}/{len(self.steps)}: {step.label}" + (f": {detail}" if detail else "")
        return f"{line}  ({time.monotonic() - self.started:.0f} s)"

    def poll(self) -> bool:
        """Read new output, move to the next step when one ends; True once the set-up has ended."""
        if self.outcome is not None:
            return True
        self._read_output()
        code = self._process.poll()
        if code is None:
            return False
        self._read_output()
        if code != 0:
            self._fail(self._failure_reason(code))
        elif self.index + 1 < len(self.steps):
            self._next_step()
        else:
            self._move_into_place()
        return self.outcome is not None

    def wait(self, on_status: Callable[[str], None] | None = None) -> None:
        """Poll until the set-up ends (background mode and scripts)."""
        while not self.poll():
            if on_status is not None:
                on_status(self.status())
            time.sleep(0.1)

    def cancel(self) -> None:
        """Stop the running step and remove the half-made environment."""
        if self.outcome is not None:
            return
        _stop(self._process)
        self._end("cancelled", "Set Up Worker cancelled; Worker Python is unchanged")

    def check_result(self) -> Path:
        """The new environment's Python, or SetupError / SetupCancelled with the one-line reason."""
        if self.outcome == "cancelled":
            raise SetupCancelled(self.message)
        if self.outcome != "done":
            raise SetupError(self.message or "Set Up Worker has not finished")
        return self.python

    def _next_step(self) -> None:
        self.index += 1
        self.output = PipOutput()
        step = self.steps[self.index]
        self._write_log(f"\n== Step {self.index + 1}/{len(self.steps)}: {step.label}\n$ {' '.join(step.command)}\n")
        self._read_at = self.log_path.stat().st_size
        try:
            self._process = subprocess.Popen(
                step.command,
                cwd=self.root,
                env=step.env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        except OSError as error:
            self._fail(f"cannot run {step.command[0]}: {error}")

    def _read_output(self) -> None:
        with open(self.log_path, "rb") as log:
            log.seek(self._read_at)
            complete, newline, _ = log.read().rpartition(b"\n")
        self._read_at += len(complete) + len(newline)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            self.output.feed(line)

    def _failure_reason(self, code: int) -> str:
        reason = self.output.error or self.output.last_line
        if self.output.unreachable and (not reason or "Could not find a version" in reason):
            reason = "no network: pip could not reach the package index" + (f" ({reason})" if reason else "")
        if not reason:
            reason = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        return reason

    def _fail(self, reason: str) -> None:
        step = self.steps[self.index]
        self._end(
            "failed",
            f"Set Up Worker failed at step {self.index + 1}/{len(self.steps)} ({step.label}): {reason}; "
            f"Worker Python is unchanged; the log is {self.log_path}",
        )

    def _move_into_place(self) -> None:
        replaced = self.root / f"{REMOVED_PREFIX}{uuid.uuid4().hex[:8]}"
        try:
            if self.final.exists():
                os.replace(self.final, replaced)
            try:
                os.replace(self.building, self.final)
            except OSError:
                if replaced.exists():
                    os.replace(replaced, self.final)
                raise
        except OSError as error:
            self._fail(f"cannot move the new environment into place ({error}); is the old one still in use?")
            return
        _point_scripts_at(self.final, self.building)
        if replaced.exists():
            _delete_quietly(replaced)
        try:
            found = json.loads(self.output.last_line)
            torch = f"torch {found['torch']} on {found['device'].upper()}, "
        except (ValueError, KeyError, TypeError):
            torch = ""
        self._end("done", f"Worker set up in {time.monotonic() - self.started:.0f} s: {torch}{self.python}")

    def _end(self, outcome: str, message: str) -> None:
        self.outcome, self.message = outcome, message
        if self.building.exists():
            _delete_quietly(self.building)
        self._write_log(f"\n== {outcome}: {message}\n")
        self._log.close()

    def _write_log(self, text: str) -> None:
        self._log.write(text.encode("utf-8"))


def _stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(CANCEL_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _point_scripts_at(env_dir: Path, built_at: Path) -> None:
    """venv writes its folder into activate scripts and script headers; after the move they name the new place."""
    scripts = env_python(env_dir).parent
    old, new = str(built_at).encode(), str(env_dir).encode()
    for path in scripts.iterdir():
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1_000_000:
            continue
        content = path.read_bytes()
        if old in content and b"\0" not in content:  # text only: Windows launchers carry a zip after the path
            path.write_bytes(content.replace(old, new))


_deletions: list[threading.Thread] = []


def delete_aside(path: Path) -> None:
    """Rename ``path`` aside (at once) and delete it in a thread: a 1 GB environment takes a minute to delete
    on some disks, and Blender must not freeze meanwhile. What a quit interrupts, the next set-up deletes."""
    aside = path if path.name.startswith(REMOVED_PREFIX) else path.parent / f"{REMOVED_PREFIX}{uuid.uuid4().hex[:8]}"
    if aside != path:
        os.replace(path, aside)
    thread = threading.Thread(target=shutil.rmtree, args=(aside,), kwargs={"ignore_errors": True}, daemon=True)
    thread.start()
    _deletions.append(thread)


def _delete_quietly(path: Path) -> None:
    try:
        delete_aside(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


def wait_for_deletions(timeout_s: float | None = None) -> None:
    """Wait until the folders put aside are deleted."""
    for thread in list(_deletions):
        thread.join(timeout_s)
        if not thread.is_alive():
            _deletions.remove(thread)


def remove_leftovers(root: Path) -> None:
    """Delete folders left by a set-up or removal that Blender did not live to finish."""
    for path in Path(root).glob(".worker-env-*"):
        if path.name.startswith((BUILDING_PREFIX, REMOVED_PREFIX)):
            try:
                delete_aside(path)
            except OSError:
                pass  # in use: try again next time


def remove_environment(root: Path) -> Path:
    """Remove the environment under ``root`` from use at once (its files are deleted in the background).
    Returns its folder; SetupError if there is none or it cannot be moved (a worker still runs from it)."""
    env_dir = environment_dir(root)
    if not env_dir.exists():
        raise SetupError(f"there is no worker environment in {root}")
    try:
        delete_aside(env_dir)
    except OSError as error:
        raise SetupError(f"cannot remove {env_dir} ({error}); is a worker still running?") from error
    remove_leftovers(root)
    return env_dir


_active: WorkerSetup | None = None
last_message = ""  # how the last set-up in this session ended, for the preferences


def active() -> WorkerSetup | None:
    """The set-up that is running now, if any (one at a time)."""
    return _active


def set_active(setup: WorkerSetup | None) -> None:
    global _active, last_message
    if setup is None and _active is not None:
        last_message = _active.message
    _active = setup


# --- Checking a Python ---------------------------------------------------------------------------------------

PROBE = """
import importlib.metadata, importlib.util, json, sys
def version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""
modules = %r
print(json.dumps({"python": list(sys.version_info[:3]), "torch": version("torch") if importlib.util.find_spec("torch")
    else "", "missing": [m for m in modules if importlib.util.find_spec(m) is None]}))
"""


@dataclasses.dataclass
class WorkerReport:
    """What Check Worker found in a Python that can run the worker."""

    python: str
    python_version: str
    torch: str
    device: str
    cpu_threads: int
    cuda_devices: list[str]
    mps: bool

    def summary(self) -> str:
        devices = [f"CPU ({self.cpu_threads} threads)"]
        devices += [f"CUDA {index}: {name}" for index, name in enumerate(self.cuda_devices)]
        devices += ["MPS"] if self.mps else []
        return (
            f"Worker OK: Python {self.python_version}, torch {self.torch}; devices: {', '.join(devices)}; "
            f"uses {self.device.upper()} ({self.python})"
        )


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:2])


def check_python(path: str, device: str = "AUTO") -> WorkerReport:
    """Run ``path`` twice (a stdlib probe, then the worker's ``check``); WorkerPythonError says why it cannot work."""
    python = Path(os.path.expanduser(path))
    hint = f"set a Python with torch in {runner.PREFERENCES_PATH}, or press Set Up Worker there"
    if not python.exists():
        raise WorkerPythonError(f"worker Python {python} does not exist; {hint}")
    if python.is_dir():
        raise WorkerPythonError(f"worker Python {python} is a folder, not a Python; {hint}")
    if not os.access(python, os.X_OK):
        raise WorkerPythonError(f"worker Python {python} is not executable; {hint}")
    try:
        probe = subprocess.run(
            [str(python), "-c", PROBE % (list(WORKER_MODULES),)],
            check=False,
            env=runner.worker_environment(),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        found = json.loads(probe.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as error:
        raise WorkerPythonError(f"worker Python {python} is not a Python 3 interpreter ({error}); {hint}") from error
    version = ".".join(str(part) for part in found["python"])
    if tuple(found["python"][:2]) < MIN_PYTHON:
        raise WorkerPythonError(f"worker Python {python} is Python {version}; the worker needs 3.10 or newer")
    if not found["torch"]:
        raise WorkerPythonError(f"worker Python {python} (Python {version}) has no torch; {hint}")
    if _version_tuple(found["torch"]) < MIN_TORCH:
        raise WorkerPythonError(
            f"worker Python {python} has torch {found['torch']}, too old: the worker needs torch 2.0 or newer"
        )
    if found["missing"]:
        packages = ", ".join(f"{WORKER_MODULES[m]} (module {m})" for m in found["missing"])
        raise WorkerPythonError(
            f"worker Python {python} lacks {packages}; install {REQUIREMENTS.name} into it, or press Set Up Worker"
        )
    try:
        completed = subprocess.run(
            runner.worker_command(str(python), "check", "--device", device),
            check=False,
            env=runner.worker_environment(),
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise WorkerPythonError(f"worker Python {python} could not run the worker: {error}") from error
    lines = (completed.stdout if completed.returncode == 0 else completed.stderr or completed.stdout).strip()
    if completed.returncode != 0:
        last = lines.splitlines()[-1] if lines else f"exit status {completed.returncode}"
        raise WorkerPythonError(f"worker Python {python} cannot run the worker: {last}")
    report = json.loads(lines.splitlines()[-1])
    return WorkerReport(
        python=str(python),
        python_version=version,
        torch=report["torch"],
        device=report["device"],
        cpu_threads=int(report.get("cpu_threads", 0)),
        cuda_devices=list(report.get("cuda_devices", [])),
        mps=bool(report.get("mps", False)),
    )
