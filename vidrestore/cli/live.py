"""``vidrestore live``: its arguments → :class:`~vidrestore.live.LiveOptions` → :func:`~vidrestore.live.run_live`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from ..live import LiveOptions, run_live
from .options import Parser, add_backend_argument

__all__ = ["build_parser", "options_from_args", "run"]


def build_parser(prog: str = "vidrestore live") -> argparse.ArgumentParser:
    d = LiveOptions()
    p = Parser(
        prog=prog,
        description="Restore faces in a camera, file or network stream while it plays, in a window or a browser.",
        epilog="Keys in the window: space before/after split, s snapshot (PNG), r start/stop recording, q or Esc quit. "
        "Sources: N (camera: /dev/videoN via v4l2 on Linux, avfoundation device N on macOS; on Windows: "
        "--format dshow --source \"video=NAME\"), /dev/videoN, a file (played in real time), or a URL "
        "(rtsp://, http://, ...). Recordings hold the source's audio for files and streams; camera recordings are silent.",
    )
    p.add_argument("--source", default=d.source, help="camera index, device, file or URL (default 0)")
    p.add_argument("--format", help="FFmpeg input format (v4l2, avfoundation, dshow, ...); guessed when omitted")
    p.add_argument("--source-option", action="append", default=[], metavar="KEY=VALUE",
                   help="FFmpeg input option, repeatable (e.g. video_size=1280x720, framerate=30, input_format=mjpeg)")
    p.add_argument("--loop", action="store_true", help="play a file source again and again")
    p.add_argument("--model", default=d.model, metavar="NAME",
                   help="face restorer: gfpgan-1.4, gfpgan-1.3, codeformer, restoreformer, a .pth checkpoint, or none (default gfpgan-1.4)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default=d.precision)
    add_backend_argument(p)
    p.add_argument("--detector", default=d.detector, metavar="NAME|PATH",
                   help="face detector: retinaface_resnet50, retinaface_mobile0.25 or a RetinaFace .pth checkpoint "
                        f"(default {d.detector}: fast enough to track every few frames on a CPU)")
    p.add_argument("--min-face", type=float, default=d.min_face, metavar="PIXELS")
    p.add_argument("--no-parse", action="store_true", help="paste with a feathered box, not the ParseNet mask")
    p.add_argument("--temporal", choices=("on", "off"), default="on")
    p.add_argument("--serve", metavar="[HOST:]PORT",
                   help="serve the preview as MJPEG + a page at http://HOST:PORT/ (HOST default 127.0.0.1); "
                   "works without a display")
    p.add_argument("--no-window", action="store_true",
                   help="no OpenCV window even with a display (with --serve or --record); none is opened without one")
    p.add_argument("--record", metavar="OUT.mp4", help="record what is shown from the start (.mp4, .mkv, .mov)")
    p.add_argument("--overwrite", action="store_true", help="replace the --record file if it exists")
    p.add_argument("--save-dir", default=d.save_dir, metavar="DIR",
                   help="folder for snapshots and recordings started with r (default: the current folder)")
    p.add_argument("--split", action="store_true", help="start with the before/after split view")
    p.add_argument("--no-hud", action="store_true", help="no figures drawn over the preview")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this many seconds")
    p.add_argument("--weights-dir", help="folder holding the model files (also: VIDRESTORE_WEIGHTS)")
    return p


def options_from_args(args: argparse.Namespace) -> LiveOptions:
    return LiveOptions(
        source=args.source, format=args.format, source_options=tuple(args.source_option), loop=args.loop,
        model=args.model, device=args.device, precision=args.precision, backend=args.backend, detector=args.detector,
        parse=not args.no_parse, temporal=args.temporal == "on", min_face=args.min_face, serve=args.serve,
        record=args.record, overwrite=args.overwrite, window=not args.no_window, save_dir=args.save_dir,
        weights_dir=args.weights_dir, duration=args.duration, split=args.split, hud=not args.no_hud,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``vidrestore live``; returns the exit status. Errors propagate as one-line VidrestoreErrors."""

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    options = options_from_args(args)
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM (a service manager) stops cleanly
        previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    try:
        stats = run_live(options, notice=say, stop=stop)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    reason = {"end": "the source ended", "quit": "quit", "duration": "--duration reached",
              "interrupted": "interrupted", "stopped": "stopped"}.get(stats.end, stats.end)
    say(f"{reason}: {stats.frames_shown} of {stats.frames_captured} frames shown in {stats.seconds:.1f} s "
        f"({stats.shown_fps:.1f} fps), {stats.restorations} restorations")
    return 0
