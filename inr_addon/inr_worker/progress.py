"""Progress reporting: JSON events for Blender, a bar for a terminal, plain lines for logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from .protocol import EventWriter

EVENT_INTERVAL = 0.25  # seconds between step events


class Progress:
    """Receives the stages and steps of a job. This base class reports nothing."""

    def __init__(self) -> None:
        self._stage_start = time.monotonic()
        self._last_report = 0.0

    def stage(self, name: str, detail: str = "") -> None:
        self._stage_start = time.monotonic()
        self._last_report = 0.0
        self.on_stage(name, detail)

    def step(self, step: int, steps: int, loss: float) -> None:
        now = time.monotonic()
        if step < steps and now - self._last_report < EVENT_INTERVAL:
            return
        self._last_report = now
        elapsed = now - self._stage_start
        remaining = elapsed / step * (steps - step) if step else 0.0
        self.on_step(step, steps, loss, remaining)

    def on_stage(self, name: str, detail: str) -> None:
        pass

    def on_step(self, step: int, steps: int, loss: float, remaining_s: float) -> None:
        pass


class EventProgress(Progress):
    """Writes ``stage`` and ``progress`` events to a job's events file."""

    def __init__(self, events: EventWriter) -> None:
        super().__init__()
        self._events = events

    def on_stage(self, name: str, detail: str) -> None:
        self._events.emit("stage", stage=name, detail=detail)

    def on_step(self, step: int, steps: int, loss: float, remaining_s: float) -> None:
        self._events.emit("progress", step=step, steps=steps, loss=loss, remaining_s=round(remaining_s, 1))


class TerminalProgress(Progress):
    """A one-line bar on a terminal; a line per stage and a last line per stage elsewhere."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        super().__init__()
        self._stream = stream
        self._tty = stream.isatty()

    def on_stage(self, name: str, detail: str) -> None:
        self._stream.write(f"{name}{': ' + detail if detail else ''}\n")
        self._stream.flush()

    def on_step(self, step: int, steps: int, loss: float, remaining_s: float) -> None:
        if not self._tty and step < steps:
            return
        width = 30
        filled = width * step // steps
        line = (
            f"  [{'#' * filled}{'.' * (width - filled)}] step {step}/{steps}  "
            f"loss {loss:.2e}  {remaining_s:4.0f} s left"
        )
        self._stream.write(("\r" if self._tty else "") + line + ("\n" if step >= steps or not self._tty else ""))
        self._stream.flush()
