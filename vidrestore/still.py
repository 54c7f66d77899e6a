"""The still door (``vidrestore still``): a before/after PNG of one frame, restored exactly as the video would be.

The frames around the requested time go through the same face stage as a whole-file run (tracking needs a
little history and look-ahead), so the picture shows what the video will look like at that moment.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import MediaError, OutputError, UsageError
from .media.probe import probe
from .media.source import VideoSource
from .options import RestoreOptions
from .pipeline import RestoreStats, build_stage, keep_input, side_by_side, write_error
from .util import write_atomic

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_HISTORY_S = 1.0  # decoded before the requested time, so the tracker is settled there


__all__ = ["still_image", "write_image"]


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
    try:
        write_atomic(path, data.tobytes(), fsync=False)
    except OSError as exc:
        raise write_error(exc, path) from None
