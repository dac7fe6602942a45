"""A worker started ahead of its job: it loads torch and the worker's libraries at once, then waits on
standard input for the job directory to run, so that a job does not wait for the imports.

Blender (``runner.start_ready_worker``) keeps one such process ready. It ends without running anything
at the end of its input (Blender closed the pipe, quit or crashed). Standard library only until the
job comes: an import that fails is raised into the job's log, where the add-on reads it as it would a
fresh worker's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .protocol import LOG_FILE


def main() -> int:
    """Import the worker, wait for a job directory on stdin and run it; 0 at the end of input."""
    failed: ImportError | None = None
    try:
        from . import cli
        from .jobs import warm_up
    except ImportError as error:  # e.g. no torch in this Python: reported where the job's log is read
        failed = error
    else:
        warm_up()
    job = sys.stdin.readline().strip()
    if not job:
        return 0
    job_dir = Path(job)
    with open(job_dir / LOG_FILE, "ab") as log:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
            os.dup2(log.fileno(), stream.fileno())
    os.chdir(job_dir)
    if failed is not None:
        raise failed
    return cli.main(["run", str(job_dir)])
