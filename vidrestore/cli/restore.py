"""``vidrestore VIDEO``: the default command, one file restored into another (the file door)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import __version__
from .options import (
    Parser,
    add_clean_arguments,
    add_encode_arguments,
    add_face_arguments,
    add_range_arguments,
    add_upscale_arguments,
    restore_options,
)


def build_parser(prog: str = "vidrestore") -> argparse.ArgumentParser:
    p = Parser(
        prog=prog,
        description="Restore an old video: faces tracked and restored, audio and subtitles kept.",
        epilog="Other commands: 'vidrestore batch IN_DIR -o OUT_DIR' (folders, VHS profile, resume), "
        "'vidrestore still VIDEO --at TIME -o cmp.png' (before/after of one frame), "
        "'vidrestore live --source 0|FILE|URL' (live preview), "
        "'vidrestore weights {list,fetch,verify}'. Run one with --help for its options.",
    )
    p.add_argument("input", type=Path, help="the video file to restore (never modified)")
    p.add_argument("-o", "--output", type=Path, help="output file (default: <stem>_restored.<ext> beside the input)")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    add_range_arguments(p)
    add_encode_arguments(p)
    add_clean_arguments(p)
    add_face_arguments(p)
    p.add_argument("--report", type=Path, metavar="JSON",
                   help="write per-track jitter and flicker figures to this JSON file")
    add_upscale_arguments(p)
    p.add_argument("--compare", type=Path, metavar="FILE",
                   help="also write a side-by-side before/after video (with the audio) to FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    p.add_argument("--version", action="version", version=f"vidrestore {__version__}")
    return p


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def backend_note(stage: object) -> str:
    """``", backend openvino"`` (or ``"restorer openvino, detector torch"`` when they differ) for the summary line;
    empty when no face models ran."""
    roles = ("restorer", "detector", "parser", "upscaler")
    kinds = {role: getattr(getattr(stage, role, None), "backend", None) for role in roles}
    found = {role: kind for role, kind in kinds.items() if kind}
    if not found:
        return ""
    if len(set(found.values())) == 1:
        return f", backend {next(iter(found.values()))}"
    return ", " + ", ".join(f"{role} {kind}" for role, kind in found.items())


def run(args: argparse.Namespace) -> int:
    from ..file import restore_video
    from ..util import FrameProgress

    options = restore_options(args)
    show = not args.quiet and sys.stdout.isatty()
    with FrameProgress(enabled=show) as bar:
        stats = restore_video(
            args.input,
            args.output,
            options,
            progress=bar.update,
            notice=_stderr,
            on_start=lambda info, dst: bar.start(info.estimated_frames, dst.name),
            phase=bar.phase,
        )
    if not args.quiet:
        faces = f", {stats.faces} faces in {stats.tracks} tracks" if stats.stage is not None else ""
        print(
            f"restored {stats.frames} frames{faces} in {stats.seconds:.1f} s "
            f"({stats.fps:.1f} fps{backend_note(stats.stage)}) -> {stats.output}"
        )
        if stats.stage is not None:
            print(f"faces: {stats.stage.report.summary()}")
    return 0
