"""``vidrestore batch IN_DIR -o OUT_DIR``: the batch door's command, its progress bars and summary table."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ..batch import MANIFEST, BatchAborted, BatchProgress, BatchResult, FileResult, restore_folder
from ..batch.segments import StageFactory
from ..errors import UsageError
from ..options import BatchOptions
from ..util import Bars
from .options import (
    Parser,
    add_clean_arguments,
    add_encode_arguments,
    add_face_arguments,
    add_range_arguments,
    filter_options,
    restore_options,
)


class BatchBars(BatchProgress):
    """Overall (files) and per-file (frames) bars on a terminal."""

    def __init__(self) -> None:
        self.bars = Bars()
        self.overall = None
        self.current = None
        self.file: tuple[str, int] | None = None

    def __enter__(self) -> "BatchBars":
        self.bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.__exit__(*exc)

    def found(self, total: int) -> None:
        self.overall = self.bars.add("files", total=total, rate=False)

    def file_started(self, rel: str, frames: int) -> None:
        self.bars.remove(self.current)
        self.current = None
        self.file = (rel, frames)

    def segment_done(self, frames: int) -> None:
        if self.current is not None:
            self.bars.advance(self.current, frames)
        elif self.file is not None:  # the first call reports the frames an earlier run finished
            rel, total = self.file
            self.current = self.bars.add(rel, total=total or None, done=frames)

    def file_done(self, result: FileResult) -> None:
        self.bars.advance(self.overall)


def build_parser(prog: str = "vidrestore batch") -> argparse.ArgumentParser:
    p = Parser(
        prog=prog,
        description="Restore every video under a folder into a mirrored tree; rerun the same command to resume.",
        epilog=f"The manifest {MANIFEST} in OUT_DIR records every input and result. Exit status: 0 all ok, "
        "1 some files failed (listed), 2 usage error.",
    )
    p.add_argument("in_dir", type=Path, metavar="IN_DIR", help="folder searched recursively for videos (never modified)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="output folder (created)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist and this batch did not make")
    p.add_argument("--retry-failed", action="store_true", help="try again the files an earlier run failed on")
    add_encode_arguments(p)
    add_face_arguments(p)
    add_clean_arguments(p)
    add_range_arguments(p)
    run_ = p.add_argument_group("running")
    run_.add_argument("--segment-seconds", type=float, default=60.0, metavar="S",
                      help="restore in segments of about S seconds, each saved as it finishes, so a crash loses "
                      "at most the segments in flight (default 60; 0: one segment per file)")
    run_.add_argument("--engine", choices=("local", "ray"), default="local",
                      help="local: worker processes on this machine; ray: Ray tasks (pip install vidrestore[ray])")
    run_.add_argument("--workers", type=int, default=1, help="segments restored at once (default 1)")
    run_.add_argument("--address", help="Ray cluster address (default: start Ray on this machine)")
    run_.add_argument("--keep-work", action="store_true", help="keep the segment files after joining")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary table")
    return p


def batch_options(args: argparse.Namespace) -> BatchOptions:
    """The BatchOptions of the parsed arguments (the clean-up filters apply once per segment)."""
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    filters = filter_options(args)
    restore = replace(restore_options(args), deinterlace="off", denoise="off", crop_bottom=0)
    restore.encode_options()
    return BatchOptions(
        restore=restore, filters=filters, segment_seconds=args.segment_seconds, retry_failed=args.retry_failed,
        engine=args.engine, workers=args.workers, address=args.address, keep_work=args.keep_work,
    )


def _summary(result: BatchResult, console) -> None:
    from rich.table import Table

    table = Table(title=f"vidrestore batch: {result.in_dir} -> {result.out_dir}", title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("result", no_wrap=True)
    table.add_column("frames", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("output / error", overflow="fold")
    style = {"ok": "green", "skipped": "dim", "failed": "bold red", "failed-earlier": "red"}
    for f in result.files:
        label = {"skipped": "done before", "failed-earlier": "failed before"}.get(f.status, f.status)
        if f.status == "ok" and f.resumed_segments:
            label = f"ok (resumed {f.resumed_segments}/{f.segments})"
        table.add_row(
            f.input, f"[{style[f.status]}]{label}[/]", str(f.frames) if f.frames else "",
            f"{f.seconds:.1f}" if f.status == "ok" else "", (f.output or "") if f.ok else (f.error or ""),
        )
    console.print(table)
    ok = sum(1 for f in result.files if f.status == "ok")
    skipped = sum(1 for f in result.files if f.status == "skipped")
    fps = result.frames / result.seconds if result.seconds > 0 else 0.0
    console.print(
        f"{ok} restored, {skipped} done before, {len(result.failed)} failed, {len(result.not_video)} not video; "
        f"{result.frames} frames in {result.seconds:.1f} s ({fps:.1f} fps); manifest {result.manifest}",
        highlight=False,
    )


def run(args: argparse.Namespace, *, stage_factory: StageFactory | None = None) -> int:
    """Run ``vidrestore batch``; returns the exit status (0 all ok, 1 some failed, 2 usage error)."""
    from rich.console import Console

    def err(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        options = batch_options(args)
        show = not args.quiet and sys.stdout.isatty()
        if show:
            with BatchBars() as bar:
                result = restore_folder(args.in_dir, args.output, options, stage_factory=stage_factory,
                                        progress=bar, notice=err)
        else:
            result = restore_folder(args.in_dir, args.output, options, stage_factory=stage_factory, notice=err)
    except UsageError as exc:
        err(f"vidrestore batch: {exc}")
        return 2
    except BatchAborted as exc:
        err(f"vidrestore batch: {exc}")
        return 1
    if not args.quiet:
        console = Console()
        _summary(result, console if console.is_terminal else Console(width=1000))
    for f in result.failed:
        err(f"failed: {f.input}: {f.error}")
    earlier = sum(1 for f in result.files if f.status == "failed-earlier")
    if earlier:
        err(f"{earlier} file(s) failed in an earlier run and were not tried again; pass --retry-failed to retry them")
    return result.exit_code
