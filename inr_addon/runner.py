"""Starts the worker process for a job, follows its progress and collects its result.

No bpy here: the operators own the scene, this module owns processes and job files, so
that nothing touches Blender's data from anywhere but the main thread.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .inr_worker import protocol

WORKER_DIR = Path(__file__).resolve().parent  # holds the inr_worker package
CANCEL_GRACE_S = 1.5  # after this, a cancelled worker is killed
PREFERENCES_PATH = "Preferences > Add-ons > Neural Field Remesh > Worker Python"


class JobError(RuntimeError):
    """A job that failed; the message is one line for the user."""


class JobCancelled(JobError):
    """A job stopped by the user."""


def worker_python(configured: str) -> str:
    """The Python to run the worker with: the configured path, or this one if it has torch."""
    if configured:
        path = Path(os.path.expanduser(configured))
        if not path.is_file():
            raise JobError(f"worker Python {path} does not exist; set a Python with torch in {PREFERENCES_PATH}")
        if not os.access(path, os.X_OK):
            raise JobError(f"worker Python {path} is not executable; set a Python with torch in {PREFERENCES_PATH}")
        return str(path)
    if importlib.util.find_spec("torch") is None:
        raise JobError(
            f"Blender's Python ({sys.executable}) has no torch; set a Python with torch in {PREFERENCES_PATH}"
        )
    return sys.executable


def worker_command(python: str, *args: str) -> list[str]:
    """Argument list (never a shell string) that runs the worker CLI."""
    return [python, "-m", "inr_worker", *args]


def worker_environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(WORKER_DIR)
    env["PYTHONNOUSERSITE"] = "1"
    return env


@dataclasses.dataclass
class Status:
    """What the panel shows of a running job."""

    stage: str = "starting"
    detail: str = ""
    step: int = 0
    steps: int = 0
    loss: float = 0.0
    remaining_s: float = 0.0

    @property
    def fraction(self) -> float:
        return self.step / self.steps if self.steps else 0.0

    def text(self) -> str:
        if self.stage == "training" and self.steps:
            return f"Training {self.step}/{self.steps}  loss {self.loss:.1e}  {self.remaining_s:.0f} s left"
        return self.stage.capitalize() + (f": {self.detail}" if self.detail else "")


class WorkerJob:
    """One worker process and its job directory."""

    def __init__(
        self,
        jobs_root: Path,
        key: str,
        spec: protocol.JobSpec,
        python: str,
        inputs: dict[str, bytes | dict[str, np.ndarray]],
    ) -> None:
        self.key = key
        self.spec = spec
        self.python = python
        self.status = Status()
        self.directory = jobs_root / f"{spec.task}-{uuid.uuid4().hex[:12]}"
        self._events: protocol.EventReader | None = None
        self._process: subprocess.Popen | None = None
        self._outcome: dict[str, Any] | None = None
        try:
            self.directory.mkdir(parents=True)
            for name, content in inputs.items():
                if isinstance(content, bytes):
                    (self.directory / name).write_bytes(content)
                else:
                    np.savez(self.directory / name, **content)
            spec.parent_pid = os.getpid()
            spec.write(self.directory)
        except OSError as error:
            self.cleanup()
            raise JobError(f"cannot write the job files in {self.directory.parent}: {error}") from error
        self._events = protocol.EventReader(self.directory / protocol.EVENTS_FILE)
        self._process = _hand_to_ready_worker(python, self.directory)
        if self._process is not None:
            return
        try:
            with open(self.directory / protocol.LOG_FILE, "wb") as log:
                self._process = subprocess.Popen(
                    worker_command(python, "run", str(self.directory)),
                    cwd=self.directory,
                    env=worker_environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        except OSError as error:
            self.cleanup()
            raise JobError(f"cannot start the worker Python {python}: {error}") from error

    def poll(self) -> bool:
        """Read new events; True once the job has ended (done, failed or cancelled)."""
        if self._outcome is not None:
            return True
        self._drain()
        if self._outcome is None and self._process.poll() is not None:
            self._drain()
            if self._outcome is None:
                self._outcome = {"event": "error", "message": self._crash_message()}
        return self._outcome is not None

    def wait(self, on_status: Callable[[Status], None] | None = None) -> None:
        """Poll until the job ends (for background mode, where timers do not run)."""
        while not self.poll():
            if on_status is not None:
                on_status(self.status)
            time.sleep(0.05)

    def cancel(self) -> None:
        """Stop the worker: SIGTERM, then SIGKILL after a short grace period."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(CANCEL_GRACE_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._outcome = {"event": "cancelled"}

    def check_result(self) -> None:
        """Wait for the finished worker to exit; raise JobError (or JobCancelled) unless it succeeded."""
        outcome = self._outcome or {}
        if outcome.get("event") == "cancelled":
            raise JobCancelled("cancelled")
        if outcome.get("event") != "done":
            raise JobError(outcome.get("message", "the worker ended without a result"))
        self._process.wait()

    def cleanup(self) -> None:
        """End the process if it still runs and delete the job directory."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _drain(self) -> None:
        for event in self._events.read_new():
            kind = event.get("event")
            if kind == "stage":
                self.status = Status(stage=event.get("stage", ""), detail=event.get("detail", ""))
            elif kind == "progress":
                self.status.step = int(event.get("step", 0))
                self.status.steps = int(event.get("steps", 0))
                self.status.loss = float(event.get("loss", 0.0))
                self.status.remaining_s = float(event.get("remaining_s", 0.0))
            elif kind in ("done", "error"):
                self._outcome = event

    def _crash_message(self) -> str:
        code = self._process.returncode
        try:
            lines = (self.directory / protocol.LOG_FILE).read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        last = lines[-1] if lines else ""
        if last.startswith("ModuleNotFoundError:"):
            return (
                f"the worker Python {self.python} cannot import what the worker needs ({last.split(': ', 1)[1]}); "
                f"install requirements-worker.txt into it, or set another Worker Python in {PREFERENCES_PATH}"
            )
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        return f"the worker process {how}" + (f": {last}" if last else "")


_running: dict[str, WorkerJob] = {}
_ready: tuple[str, subprocess.Popen] | None = None  # a worker (its Python) that has loaded torch and waits


def start_ready_worker(python: str) -> None:
    """Start a worker that loads torch and the worker's libraries now and then waits on stdin for the
    next job, so that the job starts at once; nothing where one with this Python waits already."""
    global _ready
    if _ready is not None and _ready[0] == python and _ready[1].poll() is None:
        return
    stop_ready_worker()
    try:
        process = subprocess.Popen(
            worker_command(python, "standby"),
            env=worker_environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except OSError:  # the job that needs it reports why the worker cannot start
        return
    _ready = (python, process)


def stop_ready_worker() -> None:
    """End the ready worker, if there is one."""
    global _ready
    if _ready is not None:
        process = _ready[1]
        _ready = None
        process.kill()
        process.wait()
        if process.stdin is not None:
            process.stdin.close()


def _hand_to_ready_worker(python: str, job_dir: Path) -> subprocess.Popen | None:
    """The ready worker, now running the job in ``job_dir``; None where none with ``python`` is ready."""
    global _ready
    if _ready is None or _ready[0] != python or _ready[1].poll() is not None or _ready[1].stdin is None:
        stop_ready_worker()
        return None
    process, stdin = _ready[1], _ready[1].stdin
    _ready = None
    try:
        stdin.write(f"{job_dir}\n".encode())
        stdin.close()
    except OSError:  # it ended meanwhile: the job gets a fresh worker
        process.kill()
        process.wait()
        return None
    return process
    if process.poll() is None and process.args[0] == python:
        try:
            process.stdin.write(f"{job_dir}\n".encode())
            process.stdin.close()
            return process
        except OSError:  # it ended meanwhile: the job gets a fresh worker
            pass
    _ready = process
    stop_ready_worker()
    return None


def start(job: WorkerJob) -> None:
    _running[job.key] = job


def finish(job: WorkerJob) -> None:
    job.cleanup()
    _running.pop(job.key, None)


def running(key: str) -> WorkerJob | None:
    return _running.get(key)


def all_running() -> list[WorkerJob]:
    return list(_running.values())


def stop_all() -> None:
    """Cancel every job and remove its files (on quit, file load and unregister)."""
    for job in list(_running.values()):
        job.cancel()
        finish(job)
