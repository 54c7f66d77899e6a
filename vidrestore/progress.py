"""Progress display with rich: frames done/total, fps, ETA. Silent when disabled (not a terminal, --quiet)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class FrameProgress:
    """A frame counter bar. ``update(done)`` may be called from the pipeline for every frame."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> "FrameProgress":
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[fps]:.1f} fps"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(),
                transient=True,
            )
            self._progress.__enter__()
        return self

    def start(self, total: int | None, description: str) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task(description, total=total, fps=0.0)

    def update(self, done: int) -> None:
        if self._progress is None or self._task is None:
            return
        task = self._progress.tasks[0]
        elapsed = task.elapsed or 0.0
        self._progress.update(self._task, completed=done, fps=done / elapsed if elapsed > 0 else 0.0)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None
