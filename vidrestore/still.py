"""``vidrestore still``: a before/after PNG of one frame, restored exactly as the video would be.

The frames around the requested time go through the same face stage as a whole-file run (tracking needs a
little history and look-ahead), so the picture shows what the video will look like at that moment.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from .cli_options import add_face_arguments, add_range_arguments, add_upscale_arguments, parse_time, restore_options
from .errors import MediaError, OutputError, UsageError
from .media.probe import probe
from .media.source import VideoSource
from .pipeline import RestoreOptions, RestoreStats, build_stage, keep_input, side_by_side, write_error

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_HISTORY_S = 1.0  # decoded before the requested time, so the tracker is settled there


__all__ = ["parse_time", "still_image", "write_image", "build_parser", "run"]


def still_image(src: str | os.PathLike, at: float, dst: str | os.PathLike, options: RestoreOptions) -> Path:
    """Write the before/after image of the frame shown at ``at`` seconds of ``src`` to ``dst``.

    With ``options.start``/``options.end`` (a part of the video, as a video run with them would restore), ``at`` is
    counted from ``start``, as in that run's output, and must fall before ``end``.
    """
    first, last = options.time_range()
    if first is not None or last is not None:
        if last is not None and (first or 0.0) + at >= last:
            raise UsageError(f"--at {at:.2f} s is after the part chosen ({(first or 0.0):.2f} to {last:.2f} s)")
        at += first or 0.0
    info = probe(src)
    dst = Path(dst)
    if dst.suffix.lower() not in _IMAGE_EXTENSIONS:
        raise UsageError(f"{dst}: the comparison image must be .png or .jpg")
    if not dst.parent.is_dir():
        raise OutputError(f"output folder {dst.parent} does not exist")
    if dst.exists() and not options.overwrite:
        raise OutputError(f"{dst} already exists; pass --overwrite to replace it")
    duration = info.video.duration or info.duration
    if at < 0 or (duration is not None and at > duration):
        raise UsageError(f"--at {at:.2f} s is outside the video (0 to {duration or 0:.2f} s)")
    tb = info.video.time_base
    start = info.start_time or 0.0
    rate = float(info.video.rate or 25)
    begin = int((start + max(0.0, at - _HISTORY_S)) / tb)
    end = int((start + at + 16 / rate) / tb)  # enough look-ahead for the smoother
    stats = RestoreStats(input=info.path, output=dst)
    stage = build_stage(options, stats, lambda _m: None, info)
    best = None
    with VideoSource(info, start_pts=begin, end_pts=end) as source:
        for frame in stage(keep_input(source.frames())):
            if best is None or abs(frame.time - start - at) < abs(best.time - start - at):
                best = frame
    if best is None:
        raise MediaError(f"{info.path}: no frame could be decoded near {at:.2f} s")
    image = side_by_side(best).rgb
    write_image(dst, image)
    return dst


def write_image(path: Path, rgb: np.ndarray) -> None:
    import cv2

    ok, data = cv2.imencode(path.suffix.lower(), np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OutputError(f"{path}: the image could not be encoded")
    tmp = path.with_name(f".{path.name}.partial")  # one fixed name: a killed run's is overwritten by the next
    try:
        tmp.write_bytes(data.tobytes())
        os.replace(tmp, path)
    except BaseException as exc:  # Ctrl-C and SIGTERM too: never leave the partial behind
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_error(exc, path) from None
        raise


def build_parser(prog: str = "vidrestore still") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Write a before/after image of one frame, restored as the video would be."
    )
    p.add_argument("input", type=Path, help="the video (never modified)")
    p.add_argument("--at", required=True, help="the time of the frame: seconds or [hh:]mm:ss(.s)")
    p.add_argument("-o", "--output", type=Path, required=True, help="the image to write (.png or .jpg)")
    p.add_argument("--overwrite", action="store_true", help="replace the image if it exists")
    add_range_arguments(p)
    add_face_arguments(p)
    add_upscale_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    path = still_image(args.input, parse_time(args.at), args.output, restore_options(args))
    print(f"wrote {path}")
    return 0
