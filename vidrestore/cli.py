"""The command line: arguments → an options dataclass → one call.

``vidrestore VIDEO`` restores a file; ``vidrestore weights …`` manages model files. Every
``VidrestoreError`` becomes one line on stderr and exit status 1; usage errors exit 2; Ctrl-C exits 130,
SIGTERM 143 (each after removing the partial output). Any other exception is a bug: one line too, exit 1
(``VIDRESTORE_DEBUG=1`` shows its traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator, Sequence

from . import __version__
from .errors import VidrestoreError
from .cli_options import (
    add_clean_arguments,
    add_encode_arguments,
    add_face_arguments,
    add_range_arguments,
    add_upscale_arguments,
    restore_options,
)



class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="vidrestore",
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


def _error(message: str) -> None:
    if sys.stderr.isatty():
        message = f"\x1b[31m{message}\x1b[0m"
    _stderr(message)


def run_restore(args: argparse.Namespace) -> int:
    from .pipeline import restore_video
    from .progress import FrameProgress

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
    if argv and argv[0] in ("batch", "still", "live"):
        import importlib

        module = importlib.import_module(f".{argv[0]}", __package__)
        sub = module.build_parser(prog=f"vidrestore {argv[0]}")
        sub.error = _Parser.error.__get__(sub)  # type: ignore[method-assign]
        args = sub.parse_args(argv[1:])
        return lambda: module.run(args)
    args = build_parser().parse_args(argv)
    return lambda: run_restore(args)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a run cleans up exactly as on Ctrl-C."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises ``Terminated`` in the main thread (once: a second SIGTERM during the
    clean-up is ignored so the clean-up finishes). The previous handler is restored on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread; the caller owns signals there
        return
    owner = os.getpid()
    raised = False

    def handler(signum: int, _frame: object) -> None:
        nonlocal raised
        if os.getpid() != owner:  # a forked child inherited this handler: end as SIGTERM asks
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if not raised:
            raised = True
            raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with sigterm_as_interrupt():
            command = _dispatch(argv)
            return command()
    except VidrestoreError as exc:
        _error(f"vidrestore: {exc}")
        return 1
    except Terminated:
        _stderr("vidrestore: terminated (SIGTERM); the partial output was removed")
        return 143
    except KeyboardInterrupt:
        _stderr("vidrestore: interrupted; the partial output was removed")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug, but still one line for the user
        if os.environ.get("VIDRESTORE_DEBUG"):
            raise
        text = " ".join(str(exc).split()) or "(no message)"
        _error(f"vidrestore: internal error: {type(exc).__name__}: {text} "
               "(please report it; VIDRESTORE_DEBUG=1 shows the traceback)")
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
