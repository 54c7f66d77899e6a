"""The file door: ``restore_video(src, dst, options)`` restores one video file into another.

The output (and the ``--compare`` video) is written under a temporary name beside the destination and renamed
into place only when complete; on any error or Ctrl-C the temporary file is removed and the input is never
touched.
"""

from __future__ import annotations

import os
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Callable

from .errors import OutputError, UsageError
from .media.probe import MediaInfo, probe
from .media.sink import CONTAINERS, container_for
from .options import RestoreOptions
from .pipeline import (
    FaceStage, Output, RestoreStats, build_stage, expected_frames, filtered, mapped, plan_stream, run_stream,
    side_by_side, write_error,
)
from .util import check_destination, sweep_partials, temporary_path, write_atomic

__all__ = ["RestoreStats", "check_output", "default_output", "restore_video", "write_report"]


def default_output(src: Path) -> Path:
    ext = src.suffix if src.suffix.lower() in CONTAINERS else ".mkv"
    return src.with_name(f"{src.stem}_restored{ext}")


def check_output(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse every output that would lose data or cannot be written, before any work starts."""
    container_for(dst)
    check_destination(src, dst, overwrite)


def restore_video(
    src: str | os.PathLike,
    dst: str | os.PathLike | None = None,
    options: RestoreOptions | None = None,
    *,
    stage: FaceStage | None = None,
    progress: Callable[[int], None] | None = None,
    notice: Callable[[str], None] | None = None,
    on_start: Callable[[MediaInfo, Path], None] | None = None,
    phase: Callable[[str], None] | None = None,
    **overrides: Any,
) -> RestoreStats:
    """Restore ``src`` into ``dst`` (default ``<stem>_restored.<ext>`` beside it) and return what was done.

    ``phase(text)`` is told what the run is doing before the first frame (``"loading models"``);
    ``on_start(info, dst)`` is called when frames start to flow, with ``info.estimated_frames`` the number of
    frames expected in the output (the ``start``/``end`` range, doubled by ``deinterlace="field"``).

    ``overrides`` are ``RestoreOptions`` fields (``codec="h265"``, ``overwrite=True``, …); other keyword
    arguments of the face pipeline (``detector=``, ``restorer=``, …) go to ``options.extra``.
    """
    options = with_overrides(options or RestoreOptions(), overrides)
    encode = options.encode_options()
    info = probe(src)
    dst_path, compare_path = _checked_outputs(info.path, dst, options)
    stats = RestoreStats(input=info.path, output=dst_path)

    def note(message: str) -> None:
        stats.notices.append(message)
        if notice is not None:
            notice(message)

    say = phase or (lambda _text: None)
    if options.deinterlace == "auto":
        say("checking for interlacing")
    setup, plan = plan_stream(info, options)
    out_info = setup.sink_info(info)
    if stage is None:
        if options.model != "none" or options.upscale > 1 or "restorer" in options.extra:
            say("loading models")
        stage = build_stage(options, stats, note, out_info)
    if plan.active:
        stage = filtered(plan, stage)
    if on_start is not None:
        frames = expected_frames(info, setup, plan)
        on_start(replace(out_info, video=replace(out_info.video, frames=frames)), dst_path)
    scale = options.upscale
    size = (out_info.video.width * scale, out_info.video.height * scale)
    for path in (dst_path, compare_path):
        if path is not None:
            sweep_partials(path, note)
    outputs = [Output(temporary_path(dst_path), size, dst=dst_path)]
    if compare_path is not None:
        outputs.append(Output(temporary_path(compare_path), (2 * size[0], size[1]), side_by_side, dst=compare_path))
    started = time.perf_counter()
    try:
        run_stream(info, outputs, encode, stage, stats, progress, note, setup)
        for output in outputs:
            with mapped(write_error, output.dst):
                os.replace(output.tmp, output.dst)
    except BaseException:
        for output in outputs:
            output.tmp.unlink(missing_ok=True)
        raise
    stats.seconds = time.perf_counter() - started
    _finish(stats, options, note)
    return stats


def with_overrides(options: RestoreOptions, overrides: dict[str, Any]) -> RestoreOptions:
    """``options`` with ``overrides``: ``RestoreOptions`` fields replace their values; the rest (and ``detector=``
    given as an object: anything with ``detect()``, as ``restorer=``/``parser=`` are) go to ``options.extra``."""
    known = {f.name for f in fields(RestoreOptions)}
    direct = {k: v for k, v in overrides.items() if k in known and (k != "detector" or isinstance(v, (str, os.PathLike)))}
    if "detector" in direct:
        direct["detector"] = os.fspath(direct["detector"])  # a name or a checkpoint path
    extra = {k: v for k, v in overrides.items() if k not in direct}
    if direct or extra:
        options = replace(options, **direct, extra={**options.extra, **extra})
    return options


def _checked_outputs(
    src: Path, dst: str | os.PathLike | None, options: RestoreOptions
) -> tuple[Path, Path | None]:
    """The output and the ``--compare`` video (or None), each checked before any work starts."""
    dst_path = Path(dst) if dst is not None else default_output(src)
    check_output(src, dst_path, options.overwrite)
    compare_path = Path(options.compare) if options.compare else None
    if compare_path is not None:
        check_output(src, compare_path, options.overwrite)
        if compare_path.resolve() == dst_path.resolve():
            raise UsageError("--compare must name another file than the output")
    if options.upscale not in (1, 2, 4):
        raise UsageError(f"--upscale must be 1, 2 or 4, got {options.upscale}")
    return dst_path, compare_path


def _finish(stats: RestoreStats, options: RestoreOptions, note: Callable[[str], None]) -> None:
    """The face figures into ``stats`` (and the ``--report`` file); a line for each loss in the input."""
    face_report = getattr(stats.stage, "report", None)
    if face_report is not None:
        stats.report = face_report.as_dict()
        stats.faces = face_report.faces
        stats.tracks = len(face_report.tracks)
    if options.report:  # always written: without a face stage (--model none) it holds the run figures only
        write_report(Path(options.report), stats)
    if stats.skipped_packets:
        note(f"warning: {stats.skipped_packets} corrupt packet(s) could not be decoded and were skipped")
    if stats.truncated:
        note(
            f"warning: the video stops {stats.missing_seconds:.1f} s before the file's stated end (truncated?); "
            "everything that decodes was restored"
        )


def write_report(path: Path, stats: RestoreStats) -> None:
    """The ``--report`` JSON: run figures and per-track jitter and flicker, written atomically."""
    import json

    doc = {
        "input": str(stats.input),
        "output": str(stats.output),
        "frames": stats.frames,
        "seconds": round(stats.seconds, 3),
        "fps": round(stats.fps, 3),
        "skipped_packets": stats.skipped_packets,
        **stats.report,
    }
    try:
        write_atomic(path, json.dumps(doc, indent=2) + "\n", fsync=False)
    except OSError as exc:
        raise OutputError(f"cannot write the report {path}: {exc.strerror or exc}") from None
