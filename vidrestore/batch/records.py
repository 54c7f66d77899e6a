"""What a batch reports: one ``FileResult`` per input, the ``BatchResult`` of a run, and the ``BatchProgress``
callbacks. Plain records at the bottom of the batch package: every other batch module may import them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

__all__ = ["BatchProgress", "BatchResult", "FileNotes", "FileResult"]


@dataclass
class FileResult:
    """The outcome for one input. ``status``: ok, failed, skipped (done earlier), failed-earlier."""

    input: str  # relative to the input folder
    status: str
    output: str | None = None
    error: str | None = None
    frames: int = 0
    seconds: float = 0.0
    segments: int = 0
    resumed_segments: int = 0
    notices: list[str] = field(default_factory=list)
    kind: str | None = None  # of a failure: "input" (the file) or "environment" (retried on rerun)

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "skipped")


@dataclass
class BatchResult:
    in_dir: Path
    out_dir: Path
    manifest: Path
    files: list[FileResult] = field(default_factory=list)
    not_video: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if not f.ok]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    @property
    def frames(self) -> int:
        return sum(f.frames for f in self.files if f.status == "ok")


class BatchProgress:
    """Callbacks ``restore_folder`` reports to; the default does nothing."""

    def found(self, total: int) -> None: ...

    def file_started(self, rel: str, frames: int) -> None: ...

    def segment_done(self, frames: int) -> None: ...

    def file_done(self, result: FileResult) -> None: ...


@dataclass
class FileNotes:
    """The notices of one input: said at once, prefixed with its path, and kept for its ``FileResult``."""

    rel: str
    say: Callable[[str], None]
    lines: list[str] = field(default_factory=list)

    def __call__(self, message: str) -> None:
        self.lines.append(message)
        self.say(f"{self.rel}: {message}")
