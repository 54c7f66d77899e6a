"""Wire the stages: decode → face stage → encode + mux, in threads joined by bounded queues.

Decoding, the stage and encoding each run in their own thread (:mod:`.threads`); the calling thread only
watches them. The queues hold at most a few frames, so memory does not grow with the length of the video.
"""

from __future__ import annotations

import contextlib
import errno
import queue
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import av

from ..errors import MediaError, OutputError, VidrestoreError
from ..media.filters import FilterPlan, plan_filters
from ..media.probe import MediaInfo
from ..media.sink import EncodeOptions, VideoSink
from ..media.source import Frame, VideoSource, check_range
from ..options import RestoreOptions
from .threads import DONE, JOIN_S, QUEUE_FRAMES, Control, Worker, drain, join_all, put


class FaceStage(Protocol):
    """A transform of the frame stream; it may buffer (batching, look-ahead) but yields every frame, in order."""

    def __call__(self, frames: Iterable[Frame]) -> Iterator[Frame]: ...


@dataclass
class RestoreStats:
    """What a run did. Returned by ``restore_video``."""

    input: Path
    output: Path
    frames: int = 0
    faces: int = 0
    tracks: int = 0
    skipped_packets: int = 0
    truncated: bool = False
    missing_seconds: float = 0.0
    seconds: float = 0.0
    notices: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    stage: Any = field(default=None, repr=False)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def filtered(plan: FilterPlan, stage: FaceStage) -> FaceStage:
    """``stage`` fed by the frames ``plan`` (deinterlace, denoise, crop) makes of the decoded ones."""

    def cleaned(frames: Iterable[Frame]) -> Iterator[Frame]:
        for frame in plan(frames):
            frame.meta.setdefault("before", frame.rgb)  # --compare shows the cleaned-up input beside the output
            yield frame

    def run(frames: Iterable[Frame]) -> Iterator[Frame]:
        return stage(cleaned(frames))

    return run


# errno of a failed write → what it means, in plain words ({} is the output the user asked for)
_WRITE_ERRNO = {
    errno.ENOSPC: "no space left on device while writing {}",
    errno.EDQUOT: "disk quota exceeded while writing {}",
    errno.EACCES: "permission denied while writing {}",
    errno.EPERM: "permission denied while writing {}",
    errno.EROFS: "the file system turned read-only while writing {}",
    errno.EIO: "input/output error while writing {} (failing disk or lost network share?)",
    errno.EFBIG: "{} grew larger than its file system allows",
    errno.ENOENT: "the output folder of {} disappeared while writing",
    errno.ESTALE: "the network share went away while writing {}",
}


def write_error(exc: BaseException, path: Path) -> BaseException:
    """The one-line error for ``exc`` raised while encoding or muxing into ``path`` (``exc`` itself if it is
    already one of ours or not an I/O error)."""
    if isinstance(exc, VidrestoreError) or not isinstance(exc, (OSError, av.FFmpegError)):
        return exc
    code = getattr(exc, "errno", None)
    if code in _WRITE_ERRNO:
        return OutputError(_WRITE_ERRNO[code].format(path))
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if isinstance(exc, av.FFmpegError):
        return MediaError(f"FFmpeg could not encode or write {path}: {reason}")
    return OutputError(f"cannot write {path}: {reason}")


def read_error(exc: BaseException, path: Path) -> BaseException:
    """The one-line error for an OS error raised while reading the input ``path``."""
    if isinstance(exc, OSError) and not isinstance(exc, av.FFmpegError):
        return MediaError(f"cannot read {path}: {exc.strerror or exc}")
    return exc


@contextlib.contextmanager
def mapped(convert: Callable[[BaseException, Path], BaseException], path: Path) -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - mapped to a one-line error, or re-raised as it is
        mapped = convert(exc, path)
        if mapped is exc:
            raise
        raise mapped from exc


@dataclass
class Output:
    """One file the stream is encoded into: the restored video, or a before/after comparison.

    ``dst`` is the name the user gave (errors name it, not the temporary ``tmp``)."""

    tmp: Path
    size: tuple[int, int]
    render: Callable[[Frame], Frame] | None = None
    dst: Path | None = None


def side_by_side(frame: Frame) -> Frame:
    """Input on the left, output on the right, at the output's size (the input resized if upscaled)."""
    import cv2
    import numpy as np

    before, after = frame.meta["before"], frame.rgb
    if before.shape != after.shape:
        before = cv2.resize(before, (after.shape[1], after.shape[0]), interpolation=cv2.INTER_LANCZOS4)
    return frame.with_rgb(np.hstack([before, after]))


def keep_input(frames: Iterable[Frame]) -> Iterator[Frame]:
    """Remember each frame's decoded pixels (the stages replace ``frame.rgb``; they never write into it)."""
    for frame in frames:
        frame.meta["before"] = frame.rgb
        yield frame


@dataclass(frozen=True)
class StreamSetup:
    """What lies between the decoder and the encoder besides the stage: the time range (seconds, end
    exclusive) and the video as it leaves the filters (``out_info``; None: as decoded)."""

    start: float | None = None
    end: float | None = None
    out_info: MediaInfo | None = None
    # True: the filters deinterlaced (never flag interlacing); False: they ran but kept the fields (flag as the
    # source is, though the frames come from RGB); None: no filters (the decoded frames say)
    progressive: bool | None = None

    def source(self, info: MediaInfo) -> VideoSource:
        if self.start is None and self.end is None:
            return VideoSource(info)
        return VideoSource(info, start=self.start, end=self.end)

    def sink_info(self, info: MediaInfo) -> MediaInfo:
        return self.out_info or info

    def sink_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.start is not None or self.end is not None:
            kwargs.update(start=self.start, end=self.end)
        if self.progressive is not None:
            kwargs["progressive"] = self.progressive
        return kwargs


def plan_stream(info: MediaInfo, options: RestoreOptions) -> tuple[StreamSetup, FilterPlan]:
    """The checked time range and the resolved filters of ``options`` for ``info``."""
    start, end = options.time_range()
    if start is not None or end is not None:
        start, end = check_range(info, start, end)
    plan = plan_filters(info, options.filter_options())
    out_info = plan.output_info(info) if plan.active else None
    progressive = (plan.deinterlace is not None) if plan.active else None
    return StreamSetup(start, end, out_info, progressive=progressive), plan


def expected_frames(info: MediaInfo, setup: StreamSetup, plan: FilterPlan) -> int | None:
    """About how many frames the output will have (for the progress bar): the range's, doubled by field mode."""
    total = info.estimated_frames
    rate = float(info.video.rate) if info.video.rate else None
    if rate and (setup.start is not None or setup.end is not None):
        length = info.video.duration or info.duration
        end = setup.end if setup.end is not None else length
        if end is not None:
            if length is not None:
                end = min(end, length)
            total = max(0, round((end - (setup.start or 0.0)) * rate))
    if total is not None and plan.deinterlace == "field":
        total *= 2
    return total


def run_stream(
    info: MediaInfo,
    outputs: list[Output],
    encode: EncodeOptions,
    stage: FaceStage,
    stats: RestoreStats,
    progress: Callable[[int], None] | None,
    notice: Callable[[str], None],
    setup: StreamSetup = StreamSetup(),
) -> None:
    """Decode, transform and encode ``info`` into each output. Raises on failure; the caller cleans up.

    Decoder, stage and encoder each run in a thread; the calling thread only watches them, so Ctrl-C (or
    SIGTERM turned into an exception) ends the run at once even while the stage is inside a long model call.
    The first failure of any thread stops every queue wait and is raised here as one clear error.
    """
    control = Control()
    stop = control.stop
    decoded: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
    restored: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
    source = setup.source(info)
    sinks = [
        VideoSink(o.tmp, setup.sink_info(info), encode, notice=notice if i == 0 else (lambda _m: None), size=o.size,
                  **setup.sink_kwargs())
        for i, o in enumerate(outputs)
    ]

    def decode() -> None:
        with mapped(read_error, info.path), source:
            for frame in source.frames():
                if not put(decoded, frame, stop):
                    return
        put(decoded, DONE, stop)

    def transform() -> None:
        frames: Iterable[Frame] = drain(decoded, stop, decoder)
        if any(o.render is not None for o in outputs):
            frames = keep_input(frames)
        for frame in stage(frames):
            if not put(restored, frame, stop):
                return
            stats.frames += 1
            if progress is not None:
                progress(stats.frames)
        put(restored, DONE, stop)

    def write() -> None:
        for frame in drain(restored, stop, stager):
            for sink, output in zip(sinks, outputs):
                with mapped(write_error, output.dst or output.tmp):
                    sink.write(output.render(frame) if output.render is not None else frame)
        if sinks[0].frames_written == 0:
            raise MediaError(f"{info.path}: no video frame could be decoded")
        for sink, output in zip(sinks, outputs):
            with mapped(write_error, output.dst or output.tmp):
                sink.close()

    decoder = Worker(decode, "vidrestore-decode", control)
    stager = Worker(transform, "vidrestore-stage", control)
    encoder = Worker(write, "vidrestore-encode", control)
    ok = _supervise(control, (decoder, stager, encoder), sinks, outputs)
    if control.error is not None:
        raise control.error
    if not ok:  # cannot happen (only a failure sets the stop); never take a stopped run for a finished one
        raise MediaError(f"internal: the run on {info.path} stopped without a cause")
    stats.skipped_packets = source.stats.skipped_packets
    stats.truncated = source.stats.truncated
    stats.missing_seconds = source.stats.missing_seconds


def _supervise(control: Control, workers: tuple[Worker, Worker, Worker], sinks: list[VideoSink],
               outputs: list[Output]) -> bool:
    """Open the sinks, start the (decode, stage, encode) workers and watch them from the calling thread until
    they end or one fails. True: all finished cleanly. On the way out every worker is stopped, and the sinks
    are aborted unless the run finished (never under a live encoder thread)."""
    decoder, stager, encoder = workers
    stop = control.stop
    opened: list[VideoSink] = []
    ok = False
    try:
        for sink, output in zip(sinks, outputs):
            opened.append(sink)  # abort() is safe on a sink that failed half-way through opening
            with mapped(write_error, output.dst or output.tmp):
                sink.__enter__()
        for worker in workers:
            worker.start()
        while not stop.is_set() and any(w.is_alive() for w in workers):
            stop.wait(0.1)  # interruptible: Ctrl-C and SIGTERM land here at once
        ok = control.error is None and not any(w.is_alive() for w in workers)
    finally:
        stop.set()
        join_all((decoder, encoder), JOIN_S)
        if stager.ident is not None:
            stager.join(timeout=0.5)  # a stage inside a long model call is left to finish on its own (daemon)
        if not ok and not encoder.is_alive():  # never close a container under a live encoder thread
            for sink in opened:
                sink.abort()
    return ok
