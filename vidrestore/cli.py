"""The command line: arguments → an options dataclass → one call.

``vidrestore VIDEO`` restores a file; ``vidrestore weights …`` manages model files. Every
``VidrestoreError`` becomes one line on stderr and exit status 1; usage errors exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from . import __version__
from .errors import VidrestoreError
from .media.sink import CODECS
from .pipeline import MODELS

SUBCOMMANDS = ("weights", "batch")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="vidrestore",
        description="Restore an old video: faces tracked and restored, audio and subtitles kept.",
        epilog="Other commands: 'vidrestore batch IN_DIR -o OUT_DIR' (folders, VHS profile, resume), "
        "'vidrestore weights {list,fetch,verify}'. Run one with --help for its options.",
    )
    p.add_argument("input", type=Path, help="the video file to restore (never modified)")
    p.add_argument("-o", "--output", type=Path, help="output file (default: <stem>_restored.<ext> beside the input)")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    enc = p.add_argument_group("encoding")
    enc.add_argument("--codec", choices=sorted(CODECS), default="h264", help="video codec (default h264)")
    enc.add_argument("--crf", type=int, help="quality for h264/h265, 0-51, lower is better (default 18 / 20)")
    enc.add_argument("--preset", default="medium", help="x264/x265 speed preset (default medium)")
    faces = p.add_argument_group("faces")
    faces.add_argument("--model", default="gfpgan-1.4", metavar="NAME",
                       help=f"face restorer: {', '.join(MODELS)}, or a .pth checkpoint (default gfpgan-1.4); "
                       "none: no face restoration (I/O only)")
    faces.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    faces.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                       help="restorer precision on CUDA (default fp32)")
    faces.add_argument("--batch-size", type=int, default=8, help="faces per restorer batch (default 8)")
    faces.add_argument("--detector", choices=("retinaface_resnet50", "retinaface_mobile0.25"),
                       default="retinaface_resnet50", help="face detector (default retinaface_resnet50)")
    faces.add_argument("--detect-every", type=int, default=1, metavar="K",
                       help="run detection every K frames; the tracker predicts between (default 1)")
    faces.add_argument("--only-center-face", action="store_true", help="restore only the face nearest the centre")
    faces.add_argument("--min-face", type=float, default=0.0, metavar="PIXELS",
                       help="ignore faces smaller than this (box side, pixels)")
    faces.add_argument("--no-parse", action="store_true",
                       help="paste with a feathered box instead of the ParseNet face mask (faster)")
    faces.add_argument("--temporal", choices=("on", "off"), default="on",
                       help="blend each face with its previous output when it is still (default on)")
    faces.add_argument("--temporal-strength", type=float, default=0.5, metavar="S",
                       help="weight of the previous output for a still face, 0-0.95 (default 0.5)")
    faces.add_argument("--strength", type=float, default=1.0, metavar="S",
                       help="restoration strength 0-1: 1 = the model's face, 0 = the face untouched (default 1)")
    faces.add_argument("--report", type=Path, metavar="JSON",
                       help="write per-track jitter and flicker figures to this JSON file")
    faces.add_argument("--weights-dir", help="folder holding the model files (also: VIDRESTORE_WEIGHTS)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    p.add_argument("--version", action="version", version=f"vidrestore {__version__}")
    return p


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _error(message: str) -> None:
    if sys.stderr.isatty():
        message = f"\x1b[31m{message}\x1b[0m"
    _stderr(message)


def run_restore(args: argparse.Namespace) -> int:
    from .pipeline import RestoreOptions, restore_video
    from .progress import FrameProgress

    if args.batch_size < 1:
        raise SystemExit(f"vidrestore: error: --batch-size must be at least 1 (see --help)")
    options = RestoreOptions(
        model=args.model,
        codec=args.codec,
        crf=args.crf,
        preset=args.preset,
        overwrite=args.overwrite,
        device=args.device,
        precision=args.precision,
        batch_size=args.batch_size,
        weights_dir=args.weights_dir,
        detector=args.detector,
        detect_every=args.detect_every,
        only_center_face=args.only_center_face,
        min_face=args.min_face,
        parse=not args.no_parse,
        temporal=args.temporal == "on",
        temporal_strength=args.temporal_strength,
        strength=args.strength,
        report=str(args.report) if args.report else None,
    )
    show = not args.quiet and sys.stdout.isatty()
    with FrameProgress(enabled=show) as bar:
        stats = restore_video(
            args.input,
            args.output,
            options,
            progress=bar.update,
            notice=_stderr,
            on_start=lambda info, dst: bar.start(info.estimated_frames, dst.name),
        )
    if not args.quiet:
        faces = f", {stats.faces} faces in {stats.tracks} tracks" if stats.stage is not None else ""
        print(
            f"restored {stats.frames} frames{faces} in {stats.seconds:.1f} s "
            f"({stats.fps:.1f} fps) -> {stats.output}"
        )
        if stats.stage is not None:
            print(f"faces: {stats.stage.report.summary()}")
    return 0


def _dispatch(argv: list[str]) -> Callable[[], int]:
    if argv and argv[0] == "weights":
        from . import cli_weights

        sub = cli_weights.build_parser(prog="vidrestore weights")
        sub.error = _Parser.error.__get__(sub)  # type: ignore[method-assign]
        args = sub.parse_args(argv[1:])
        return lambda: cli_weights.run(args)
    if argv and argv[0] == "batch":
        from . import batch

        args = batch.build_parser(prog="vidrestore batch").parse_args(argv[1:])
        return lambda: batch.run(args)
    args = build_parser().parse_args(argv)
    return lambda: run_restore(args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        command = _dispatch(argv)
        return command()
    except VidrestoreError as exc:
        _error(f"vidrestore: {exc}")
        return 1
    except KeyboardInterrupt:
        _stderr("vidrestore: interrupted; the partial output was removed")
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
