"""Two mechanisms every door shares: atomic file writing and the rich progress display.

Atomic writing: a file is written under a temporary name beside its destination
(``.NAME.partial-<pid>-<rand>.ext``, :func:`temporary_path`) and renamed into place only when complete, so a
crash leaves either the old file or the new one, whole; :func:`sweep_partials` removes what killed runs left.

Progress (rich): a phase line while models load, then counted work (frames, files) done/total, speed and ETA.
Silent when disabled (not a terminal, --quiet). The speed is shown in frames per second, or in seconds per
frame when under 1 fps (a CPU restoring faces). Frames leave a batching face stage in bursts, so the speed
and the ETA come from a time-decayed moving average of seconds per frame (:class:`RateEstimator`): the wait
before a burst counts towards the frames of the burst, and one burst does not swing the ETA.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

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

__all__ = [
    "Bars", "FrameProgress", "RateEstimator", "atomic_output", "bar_columns", "check_destination", "format_eta",
    "format_rate", "fsync_dir", "stale_partials", "sweep_partials", "temporary_path", "write_atomic",
]


# -- atomic writing -----------------------------------------------------------------------------------------------
def temporary_path(dst: Path) -> Path:
    """``.NAME.partial-<pid>-<rand>.ext`` beside ``dst``: the writer's PID tells a later run whether it is gone."""
    dst = Path(dst)
    return dst.with_name(f".{dst.stem}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}{dst.suffix}")


# Partials named before the PID was part of the name (``.NAME.partial-<rand>.ext``) have no writer to ask; a
# live writer rewrites its file at least every few minutes (the encoder's look-ahead is under ~100 frames, and
# the slowest CPU restorer takes ~5 s a frame), so one untouched for this long belongs to a dead run.
_OLD_PARTIAL_S = 600.0


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a PID we can ask about: keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists but belongs to someone else (EPERM), or cannot tell: keep the file
    return True


def stale_partials(dst: Path, now: float | None = None) -> list[Path]:
    """The partial files of ``dst`` (``.{stem}.partial-*{suffix}`` beside it) whose writer is gone.

    A name with a PID is stale when no process has that PID on this machine; an old-style name without one
    when it has not been written for ``_OLD_PARTIAL_S`` seconds.
    """
    pattern = re.compile(
        rf"\.{re.escape(dst.stem)}\.partial-(?:(\d+)-)?[0-9a-f]{{8}}{re.escape(dst.suffix)}"
    )
    now = time.time() if now is None else now
    try:
        entries = list(os.scandir(dst.parent))
    except OSError:
        return []
    stale = []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        pid = match.group(1)
        if pid is not None:
            gone = not _pid_alive(int(pid))
        else:
            try:
                gone = now - entry.stat(follow_symlinks=False).st_mtime > _OLD_PARTIAL_S
            except OSError:
                continue
        if gone:
            stale.append(Path(entry.path))
    return sorted(stale)


def sweep_partials(dst: Path, notice: Callable[[str], None]) -> list[Path]:
    """Remove the stale partial files of ``dst`` left by killed runs, and say so. Returns what was removed."""
    removed = []
    for path in stale_partials(dst):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            notice(f"warning: cannot remove {path}, left by a run that was killed: {exc.strerror or exc}")
            continue
        removed.append(path)
    if removed:
        names = ", ".join(p.name for p in removed)
        notice(f"notice: removed {len(removed)} partial file(s) of {dst.name} left by a run that was killed: {names}")
    return removed


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk; best effort (not every file system can)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(dst: Path, *, fsync: bool = False) -> Iterator[Path]:
    """The temporary path to write ``dst`` under; renamed to ``dst`` when the block ends normally, removed when
    it raises (Ctrl-C and SIGTERM too). ``fsync``: the file and the rename are flushed to disk as well."""
    dst = Path(dst)
    tmp = temporary_path(dst)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(dst.parent)


def write_atomic(path: Path, data: bytes | str, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one, whole."""
    raw = data.encode() if isinstance(data, str) else data
    with atomic_output(Path(path), fsync=fsync) as tmp:
        with open(tmp, "wb") as f:
            f.write(raw)


def check_destination(src: Path, dst: Path, overwrite: bool, what: str = "output") -> None:
    """Refuse, before any work, a destination that is the input, is a folder, sits in a folder that is missing or
    not writable, or exists (without ``overwrite``). Each door checks its own formats first."""
    from .errors import OutputError, UsageError

    if dst.resolve() == src.resolve() or (dst.exists() and os.path.samefile(dst, src)):
        raise UsageError(f"the {what} {dst} is the input; choose another -o (the input is never written)")
    parent = dst.parent
    if not parent.exists():
        raise OutputError(f"output folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {parent} is not writable")
    if dst.is_dir():
        raise OutputError(f"the {what} {dst} is a folder; give a file name")
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst} already exists; pass --overwrite to replace it")


# -- progress -----------------------------------------------------------------------------------------------------


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


class Bars:
    """The one rich progress display: bars of counted work (frames, files) with their speed and ETA, and a
    spinner line naming a phase (``"loading models"``) until the first bar appears. Disabled, it does nothing.

    Every bar has a :class:`RateEstimator`; ``done`` given to :meth:`add` (work finished by an earlier run)
    does not count towards its pace.
    """

    def __init__(
        self,
        enabled: bool = True,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        spinner: bool = False,
        transient: bool = True,
    ) -> None:
        self.enabled = enabled
        self.console = console
        self.clock = clock
        self.spinner = spinner
        self.transient = transient
        self._progress: Progress | None = None
        self._phase: Any = None
        self._bars = 0

    def __enter__(self) -> "Bars":
        if self.enabled:
            columns = [SpinnerColumn(finished_text=" ")] if self.spinner else []
            self._progress = Progress(*columns, *bar_columns(), console=self.console or Console(),
                                      transient=self.transient)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    def phase(self, text: str) -> None:
        """Show what the run is doing before any bar (``"loading models"``)."""
        if self._progress is None or self._bars:
            return
        label = f"{text}…"
        if self._phase is None:
            self._phase = self._progress.add_task(label, total=None, phase=True)
        else:
            self._progress.update(self._phase, description=label)

    def add(self, description: str, total: int | None, done: int = 0, *, rate: bool = True) -> Any:
        """A new bar (it replaces the phase line); returns its handle (None when disabled). ``rate``: show its
        speed and ETA."""
        if self._progress is None:
            return None
        if self._phase is not None:
            self._progress.remove_task(self._phase)
            self._phase = None
        self._bars += 1
        estimator = RateEstimator(clock=self.clock, done=done) if rate else None
        return self._progress.add_task(description, total=total, completed=done, estimator=estimator)

    def update(self, bar: Any, done: int) -> None:
        """``done`` units of ``bar`` are finished (a running count)."""
        if self._progress is None or bar is None:
            return
        estimator = self._task(bar).fields.get("estimator")
        if estimator is not None:
            estimator.update(done)
        self._progress.update(bar, completed=done)

    def advance(self, bar: Any, units: int = 1) -> None:
        if self._progress is None or bar is None:
            return
        self.update(bar, int(self._task(bar).completed) + units)

    def _task(self, bar: Any) -> Task:
        assert self._progress is not None
        return next(t for t in self._progress.tasks if t.id == bar)

    def remove(self, bar: Any) -> None:
        if self._progress is not None and bar is not None:
            self._progress.remove_task(bar)
            self._bars -= 1


class FrameProgress:
    """One file's frame bar, preceded by a phase line (``phase("loading models")``) until ``start``.

    ``update(done)`` may be called from the pipeline for every frame.
    """

    def __init__(
        self, enabled: bool, console: Console | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._bars = Bars(enabled, console, clock, spinner=True)
        self._bar: Any = None

    def __enter__(self) -> "FrameProgress":
        self._bars.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._bars.__exit__(*exc)

    def phase(self, text: str) -> None:
        self._bars.phase(text)

    def start(self, total: int | None, description: str) -> None:
        self._bar = self._bars.add(description, total)

    def update(self, done: int) -> None:
        self._bars.update(self._bar, done)
