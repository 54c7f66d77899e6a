"""Wire the stages: decode → face stage → encode + mux, in threads joined by bounded queues.

Decoding and encoding each run in their own thread; the face stage runs in the calling thread. The queues
hold at most a few frames, so memory does not grow with the length of the video. The output is written
under a temporary name beside the destination and renamed into place only when complete; on any error or
Ctrl-C the temporary file is removed and the input is never touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import av

from .errors import MediaError, OutputError, UsageError, VidrestoreError
from .media.filters import FilterPlan, plan_filters
from .media.probe import MediaInfo, probe
from .media.sink import CONTAINERS, EncodeOptions, VideoSink, container_for
from .media.source import Frame, VideoSource, check_range
from .options import MODELS, RestoreOptions

_QUEUE_FRAMES = 8
_DONE = object()


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


def default_output(src: Path) -> Path:
    ext = src.suffix if src.suffix.lower() in CONTAINERS else ".mkv"
    return src.with_name(f"{src.stem}_restored{ext}")


def check_output(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse every output that would lose data or cannot be written, before any work starts."""
    container_for(dst)
    if dst.exists() and (dst.resolve() == src.resolve() or os.path.samefile(dst, src)):
        raise UsageError(f"the output {dst} is the input; choose another -o (the input is never written)")
    if dst.resolve() == src.resolve():
        raise UsageError(f"the output {dst} is the input; choose another -o (the input is never written)")
    parent = dst.parent
    if not parent.exists():
        raise OutputError(f"output folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {parent} is not writable")
    if dst.is_dir():
        raise OutputError(f"the output {dst} is a folder; give a file name")
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst} already exists; pass --overwrite to replace it")


def temporary_path(dst: Path) -> Path:
    """``.NAME.partial-<pid>-<rand>.ext`` beside ``dst``: the writer's PID tells a later run whether it is gone."""
    return dst.with_name(f".{dst.stem}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}{dst.suffix}")


# Partials named before the PID was part of the name (``.NAME.partial-<rand>.ext``) have no writer to ask; a
# live writer rewrites its file at least every few minutes (the encoder's look-ahead is under ~100 frames, and
# the slowest CPU restorer takes ~5 s a frame), so one untouched for this long belongs to a dead run.
_OLD_PARTIAL_S = 600.0


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a PID we can ask about: keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists but belongs to someone else (EPERM), or cannot tell: keep the file
    return True


def stale_partials(dst: Path, now: float | None = None) -> list[Path]:
    """The partial files of ``dst`` (``.{stem}.partial-*{suffix}`` beside it) whose writer is gone.

    A name with a PID is stale when no process has that PID on this machine; an old-style name without one
    when it has not been written for ``_OLD_PARTIAL_S`` seconds.
    """
    pattern = re.compile(
        rf"\.{re.escape(dst.stem)}\.partial-(?:(\d+)-)?[0-9a-f]{{8}}{re.escape(dst.suffix)}"
    )
    now = time.time() if now is None else now
    try:
        entries = list(os.scandir(dst.parent))
    except OSError:
        return []
    stale = []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        pid = match.group(1)
        if pid is not None:
            gone = not _pid_alive(int(pid))
        else:
            try:
                gone = now - entry.stat(follow_symlinks=False).st_mtime > _OLD_PARTIAL_S
            except OSError:
                continue
        if gone:
            stale.append(Path(entry.path))
    return sorted(stale)


def sweep_partials(dst: Path, notice: Callable[[str], None]) -> list[Path]:
    """Remove the stale partial files of ``dst`` left by killed runs, and say so. Returns what was removed."""
    removed = []
    for path in stale_partials(dst):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            notice(f"warning: cannot remove {path}, left by a run that was killed: {exc.strerror or exc}")
            continue
        removed.append(path)
    if removed:
        names = ", ".join(p.name for p in removed)
        notice(f"notice: removed {len(removed)} partial file(s) of {dst.name} left by a run that was killed: {names}")
    return removed


def identity_stage(frames: Iterable[Frame]) -> Iterator[Frame]:
    yield from frames


def filtered(plan: FilterPlan, stage: FaceStage) -> FaceStage:
    """``stage`` fed by the frames ``plan`` (deinterlace, denoise, crop) makes of the decoded ones."""

    def cleaned(frames: Iterable[Frame]) -> Iterator[Frame]:
        for frame in plan(frames):
            frame.meta.setdefault("before", frame.rgb)  # --compare shows the cleaned-up input beside the output
            yield frame

    def run(frames: Iterable[Frame]) -> Iterator[Frame]:
        return stage(cleaned(frames))

    return run


def upscale_stage(upscaler: Any) -> FaceStage:
    """Whole-frame upscaling alone (``--model none --upscale N``)."""

    def stage(frames: Iterable[Frame]) -> Iterator[Frame]:
        for frame in frames:
            frame.rgb = upscaler.upscale(frame.rgb)
            yield frame

    return stage


_JOIN_S = 5.0  # how long a stopping run waits for its decode and encode threads (each checks every 0.1 s)


class _Cancelled(Exception):
    """Raised inside a worker whose run was stopped by another thread (not an error of its own)."""


class _Control:
    """The run's one stop signal and its first failure: any thread may fail; every queue wait sees the stop."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None and not isinstance(exc, _Cancelled):
                self.error = exc
        self.stop.set()


class _Worker(threading.Thread):
    """A daemon thread that records the exception it dies of and, given a ``_Control``, stops the run with it."""

    def __init__(self, target: Callable[[], None], name: str, control: _Control | None = None) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.control = control
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
            if self.control is not None:
                self.control.fail(exc)


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` into the bounded ``q``; False (not put) as soon as the run is stopped."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _drain(q: queue.Queue, stop: threading.Event, producer: _Worker | None = None) -> Iterator[Frame]:
    """Items of ``q`` until the end marker. A stop raises ``_Cancelled`` (the consumer must not take the
    stream for complete); the producer thread's death raises its error, or ends the items if it had none."""
    while True:
        if stop.is_set():
            raise _Cancelled()
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            if producer is not None and not producer.is_alive() and q.empty():
                if producer.error is not None and not isinstance(producer.error, _Cancelled):
                    raise producer.error
                if stop.is_set() or producer.error is not None:
                    raise _Cancelled() from None
                return
            continue
        if item is _DONE:
            return
        yield item


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
def _mapped(convert: Callable[[BaseException, Path], BaseException], path: Path) -> Iterator[None]:
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


def _accepts(cls: Any, name: str) -> bool:
    import inspect

    return name in inspect.signature(cls).parameters


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
        if self.progressive is not None and _accepts(VideoSink, "progressive"):
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


def _join_all(threads: Iterable[threading.Thread], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for thread in threads:
        if thread.ident is not None:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


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
    control = _Control()
    stop = control.stop
    decoded: queue.Queue = queue.Queue(maxsize=_QUEUE_FRAMES)
    restored: queue.Queue = queue.Queue(maxsize=_QUEUE_FRAMES)
    source = setup.source(info)
    sinks = [
        VideoSink(o.tmp, setup.sink_info(info), encode, notice=notice if i == 0 else (lambda _m: None), size=o.size,
                  **setup.sink_kwargs())
        for i, o in enumerate(outputs)
    ]

    def decode() -> None:
        with _mapped(read_error, info.path), source:
            for frame in source.frames():
                if not _put(decoded, frame, stop):
                    return
        _put(decoded, _DONE, stop)

    def transform() -> None:
        frames: Iterable[Frame] = _drain(decoded, stop, decoder)
        if any(o.render is not None for o in outputs):
            frames = keep_input(frames)
        for frame in stage(frames):
            if not _put(restored, frame, stop):
                return
            stats.frames += 1
            if progress is not None:
                progress(stats.frames)
        _put(restored, _DONE, stop)

    def write() -> None:
        for frame in _drain(restored, stop, stager):
            for sink, output in zip(sinks, outputs):
                with _mapped(write_error, output.dst or output.tmp):
                    sink.write(output.render(frame) if output.render is not None else frame)
        if sinks[0].frames_written == 0:
            raise MediaError(f"{info.path}: no video frame could be decoded")
        for sink, output in zip(sinks, outputs):
            with _mapped(write_error, output.dst or output.tmp):
                sink.close()

    decoder = _Worker(decode, "vidrestore-decode", control)
    stager = _Worker(transform, "vidrestore-stage", control)
    encoder = _Worker(write, "vidrestore-encode", control)
    workers = (decoder, stager, encoder)
    opened: list[VideoSink] = []
    ok = False
    try:
        for sink, output in zip(sinks, outputs):
            opened.append(sink)  # abort() is safe on a sink that failed half-way through opening
            with _mapped(write_error, output.dst or output.tmp):
                sink.__enter__()
        for worker in workers:
            worker.start()
        while not stop.is_set() and any(w.is_alive() for w in workers):
            stop.wait(0.1)  # interruptible: Ctrl-C and SIGTERM land here at once
        ok = control.error is None and not any(w.is_alive() for w in workers)
    finally:
        stop.set()
        _join_all((decoder, encoder), _JOIN_S)
        if stager.ident is not None:
            stager.join(timeout=0.5)  # a stage inside a long model call is left to finish on its own (daemon)
        if not ok and not encoder.is_alive():  # never close a container under a live encoder thread
            for sink in opened:
                sink.abort()
    if control.error is not None:
        raise control.error
    if not ok:  # cannot happen (only a failure sets the stop); never take a stopped run for a finished one
        raise MediaError(f"internal: the run on {info.path} stopped without a cause")
    stats.skipped_packets = source.stats.skipped_packets
    stats.truncated = source.stats.truncated
    stats.missing_seconds = source.stats.missing_seconds


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
    options = options or RestoreOptions()
    known = {f.name for f in fields(RestoreOptions)}
    # detector= / restorer= / parser= may be objects (any detect()/restore()/face_masks()): those go to extra
    direct = {k: v for k, v in overrides.items() if k in known and (k != "detector" or isinstance(v, (str, os.PathLike)))}
    if "detector" in direct:
        direct["detector"] = os.fspath(direct["detector"])  # a name or a checkpoint path
    extra = {k: v for k, v in overrides.items() if k not in direct}
    if direct or extra:
        options = replace(options, **direct, extra={**options.extra, **extra})
    encode = options.encode_options()
    info = probe(src)
    src_path = info.path
    dst_path = Path(dst) if dst is not None else default_output(src_path)
    check_output(src_path, dst_path, options.overwrite)
    compare_path = Path(options.compare) if options.compare else None
    if compare_path is not None:
        check_output(src_path, compare_path, options.overwrite)
        if compare_path.resolve() == dst_path.resolve():
            raise UsageError("--compare must name another file than the output")
    if options.upscale not in (1, 2, 4):
        raise UsageError(f"--upscale must be 1, 2 or 4, got {options.upscale}")
    stats = RestoreStats(input=src_path, output=dst_path)

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
            with _mapped(write_error, output.dst):
                os.replace(output.tmp, output.dst)
    except BaseException:
        for output in outputs:
            output.tmp.unlink(missing_ok=True)
        raise
    stats.seconds = time.perf_counter() - started
    face_report = getattr(stats.stage, "report", None)
    if face_report is not None:
        stats.report = face_report.as_dict()
        stats.faces = face_report.faces
        stats.tracks = len(face_report.tracks)
        if options.report:
            write_report(Path(options.report), stats)
    if stats.skipped_packets:
        note(f"warning: {stats.skipped_packets} corrupt packet(s) could not be decoded and were skipped")
    if stats.truncated:
        note(
            f"warning: the video stops {stats.missing_seconds:.1f} s before the file's stated end (truncated?); "
            "everything that decodes was restored"
        )
    return stats




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
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write the report {path}: {exc.strerror or exc}") from None


def build_stage(
    options: RestoreOptions, stats: RestoreStats, notice: Callable[[str], None], info: MediaInfo | None = None
) -> FaceStage:
    """The face stage the options ask for (``model="none"`` and no ``restorer=``: frames pass through).

    ``options.extra`` may hold ready objects: ``detector=`` (anything with ``detect(frames)``),
    ``restorer=`` (anything with ``restore(faces)``), ``parser=`` (anything with ``face_masks(crops)``).
    """
    extra = options.extra
    restorer = extra.get("restorer")
    upscaler = extra.get("upscaler")
    faces = restorer is not None or options.model != "none"
    from .restore import resolve_run_weights

    # every weight file the run needs, found (or downloaded) before any model is built; all missing ones named at once
    resolve_run_weights(
        options.weights_dir,
        model=options.model if restorer is None and faces else None,
        detector=options.detector if faces and extra.get("detector") is None else None,
        parse=faces and extra.get("parser") is None and options.parse and options.strength > 0,
        upscale=options.upscale if upscaler is None else 1,
        bg_upsampler=options.bg_upsampler,
    )
    if upscaler is None and options.upscale > 1:
        from .upscale import load_upscaler

        upscaler = load_upscaler(
            options.upscale, method=options.bg_upsampler, device=options.device, weights_dir=options.weights_dir,
            tile=options.tile, tile_pad=options.tile_pad, precision=options.precision,
        )
    if restorer is None and options.model == "none":
        return identity_stage if upscaler is None else upscale_stage(upscaler)
    is_file = Path(options.model).suffix.lower() in (".pth", ".pt")
    if restorer is None and options.model not in MODELS and not is_file:
        raise UsageError(
            f"unknown --model {options.model!r}; choose one of {', '.join(MODELS)} or give a .pth file"
        )
    from .faces.stage import FaceOptions, FaceStage as _FaceStage

    if restorer is None:
        from .restore import load_restorer

        restorer = load_restorer(
            options.model, device=options.device, precision=options.precision,
            batch_size=options.batch_size, weights_dir=options.weights_dir, fidelity=options.fidelity,
        )
    device = getattr(restorer, "device", None) or options.device or "cpu"
    detector = extra.get("detector")
    if detector is None:
        from .faces.detect import load_detector

        # on the CPU one frame per forward pass is faster (measured: 0.45 s vs 0.72 s per frame in batches of 6)
        detect_batch = 1 if str(device).startswith("cpu") else 8
        detector = load_detector(options.detector, device=device, weights_dir=options.weights_dir,
                                 batch_size=detect_batch)
    parser = extra.get("parser")
    if parser is None and options.parse and options.strength > 0:
        from .faces.parse import load_parser

        parser = load_parser("parsenet", device=device, weights_dir=options.weights_dir,
                             parse_size=options.parse_size)
    face_options = FaceOptions(
        detect_every=options.detect_every,
        batch_size=options.batch_size,
        min_face=options.min_face,
        only_center_face=options.only_center_face,
        parse=options.parse,
        parse_every=options.parse_every,
        temporal=options.temporal,
        temporal_strength=options.temporal_strength,
        strength=options.strength,
        sar=float(info.video.sar) if info is not None else 1.0,
        **extra.get("face_options", {}),
    )
    stage = _FaceStage(detector, restorer, face_options, parser=parser, device=device, upscaler=upscaler)
    stats.stage = stage
    return stage
