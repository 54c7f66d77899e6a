"""Progress display with rich: a phase line while models load, then frames done/total, speed and ETA.

Silent when disabled (not a terminal, --quiet). The speed is shown in frames per second, or in seconds per
frame when under 1 fps (a CPU restoring faces). Frames leave a batching face stage in bursts, so the speed
and the ETA come from a time-decayed moving average of seconds per frame (:class:`RateEstimator`): the wait
before a burst counts towards the frames of the burst, and one burst does not swing the ETA.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

__all__ = ["FrameProgress", "RateEstimator", "format_rate", "format_eta", "bar_columns"]


class RateEstimator:
    """Seconds per frame, averaged over about the last ``tau`` seconds (exponential decay in time).

    ``update(done)`` with the running frame count; calls that bring no new frame change nothing, so the time
    spent waiting for a burst is charged to the frames of that burst.
    """

    def __init__(self, tau: float = 60.0, clock: Callable[[], float] = time.monotonic, done: int = 0) -> None:
        self.tau = tau
        self.clock = clock
        self._t = clock()
        self._done = done  # frames done before timing started (resumed work) do not count towards the pace
        self._seconds = 0.0  # decayed sum of elapsed time
        self._frames = 0.0  # decayed sum of frames

    def update(self, done: int) -> None:
        now = self.clock()
        gained = done - self._done
        if gained <= 0:
            return
        dt = max(0.0, now - self._t)
        keep = math.exp(-dt / self.tau)
        self._seconds = keep * self._seconds + dt
        self._frames = keep * self._frames + gained
        self._t, self._done = now, done

    @property
    def seconds_per_frame(self) -> float | None:
        return self._seconds / self._frames if self._frames > 0 and self._seconds > 0 else None

    def eta(self, total: int | None) -> float | None:
        """Seconds left for ``total`` frames: the frames left at the average pace, less the time already spent
        waiting for the next one (never less than one frame fewer)."""
        spf = self.seconds_per_frame
        if spf is None or not total:
            return None
        left = max(0, total - self._done)
        if left == 0:
            return 0.0
        waited = max(0.0, self.clock() - self._t)
        return max(left * spf - waited, (left - 1) * spf)


def format_rate(seconds_per_frame: float | None) -> str:
    if seconds_per_frame is None:
        return "-- fps"
    if seconds_per_frame > 1.0:
        return f"{seconds_per_frame:.1f} s/frame"
    return f"{1.0 / seconds_per_frame:.1f} fps"


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA --:--"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"ETA {h}:{m:02d}:{s:02d}" if h else f"ETA {m:02d}:{s:02d}"


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        est = task.fields.get("estimator")
        return Text(format_rate(est.seconds_per_frame if est is not None else None), style="progress.data.speed")


class _EtaColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        est = task.fields.get("estimator")
        total = int(task.total) if task.total else None
        return Text(format_eta(est.eta(total) if est is not None else None), style="progress.remaining")


class _FramesOnly(ProgressColumn):
    """``column`` on frame bars; nothing on a phase line (a task with ``phase=True``)."""

    def __init__(self, column: ProgressColumn) -> None:
        super().__init__()
        self.column = column

    def render(self, task: Task):
        return Text("") if task.fields.get("phase") else self.column.render(task)


def bar_columns() -> list[ProgressColumn]:
    """The columns of a frame bar: name, bar, n/total, %, speed, elapsed, ETA. A task carries its
    ``estimator`` (a :class:`RateEstimator`) in its fields; a phase line (``phase=True``) shows its name only."""
    return [
        TextColumn("[bold]{task.description}"),
        *(_FramesOnly(c) for c in (BarColumn(), MofNCompleteColumn(), TaskProgressColumn(), _RateColumn(),
                                    TimeElapsedColumn(), _EtaColumn())),
    ]


class FrameProgress:
    """A frame counter bar, preceded by a phase line (``phase("loading models")``) until ``start``.

    ``update(done)`` may be called from the pipeline for every frame.
    """

    def __init__(
        self, enabled: bool, console: Console | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.enabled = enabled
        self.console = console
        self.clock = clock
        self._progress: Progress | None = None
        self._task = None
        self._phase = None
        self._estimator: RateEstimator | None = None

    def __enter__(self) -> "FrameProgress":
        if self.enabled:
            self._progress = Progress(
                SpinnerColumn(finished_text=" "),
                *bar_columns(),
                console=self.console or Console(),
                transient=True,
            )
            self._progress.__enter__()
        return self

    def phase(self, text: str) -> None:
        """Show what the run is doing before frames flow (``"loading models"``), with a spinner."""
        if self._progress is None or self._task is not None:
            return
        label = f"{text}…"
        if self._phase is None:
            self._phase = self._progress.add_task(label, total=None, phase=True)
        else:
            self._progress.update(self._phase, description=label)

    def start(self, total: int | None, description: str) -> None:
        if self._progress is None:
            return
        if self._phase is not None:
            self._progress.remove_task(self._phase)
            self._phase = None
        self._estimator = RateEstimator(clock=self.clock)
        self._task = self._progress.add_task(description, total=total, estimator=self._estimator)

    def update(self, done: int) -> None:
        if self._progress is None or self._task is None or self._estimator is None:
            return
        self._estimator.update(done)
        self._progress.update(self._task, completed=done)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None
