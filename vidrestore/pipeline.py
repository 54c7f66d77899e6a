"""Wire the stages: decode → face stage → encode + mux, in threads joined by bounded queues.

Decoding and encoding each run in their own thread; the face stage runs in the calling thread. The queues
hold at most a few frames, so memory does not grow with the length of the video. The output is written
under a temporary name beside the destination and renamed into place only when complete; on any error or
Ctrl-C the temporary file is removed and the input is never touched.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from .errors import MediaError, OutputError, UsageError
from .media.probe import MediaInfo, probe
from .media.sink import CONTAINERS, EncodeOptions, VideoSink, container_for
from .media.source import Frame, VideoSource

_QUEUE_FRAMES = 8
_DONE = object()


class FaceStage(Protocol):
    """A transform of the frame stream; it may buffer (batching, look-ahead) but yields every frame, in order."""

    def __call__(self, frames: Iterable[Frame]) -> Iterator[Frame]: ...


@dataclass(frozen=True)
class RestoreOptions:
    """Everything ``restore_video`` can be told. The CLI builds one of these from its arguments."""

    model: str = "gfpgan-1.4"
    fidelity: float = 0.5
    codec: str = "h264"
    crf: int | None = None
    preset: str = "medium"
    overwrite: bool = False
    device: str | None = None
    precision: str = "fp32"
    batch_size: int = 8
    weights_dir: str | None = None
    detector: str = "retinaface_resnet50"
    detect_every: int = 1
    only_center_face: bool = False
    min_face: float = 0.0
    parse: bool = True
    parse_size: int = 256
    parse_every: int = 5
    temporal: bool = True
    temporal_strength: float = 0.5
    strength: float = 1.0
    report: str | None = None
    upscale: int = 1
    bg_upsampler: str = "realesrgan"
    tile: int | None = None
    tile_pad: int = 10
    compare: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def encode_options(self) -> EncodeOptions:
        return EncodeOptions(codec=self.codec, crf=self.crf, preset=self.preset)


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
    return dst.with_name(f".{dst.stem}.partial-{uuid.uuid4().hex[:8]}{dst.suffix}")


def identity_stage(frames: Iterable[Frame]) -> Iterator[Frame]:
    yield from frames


def upscale_stage(upscaler: Any) -> FaceStage:
    """Whole-frame upscaling alone (``--model none --upscale N``)."""

    def stage(frames: Iterable[Frame]) -> Iterator[Frame]:
        for frame in frames:
            frame.rgb = upscaler.upscale(frame.rgb)
            yield frame

    return stage


class _Worker(threading.Thread):
    """A daemon thread that records the exception it dies of."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _drain(q: queue.Queue, stop: threading.Event, producer: _Worker | None = None) -> Iterator[Frame]:
    """Items of ``q`` until the end marker, a stop, or (if given) the producer thread's death."""
    while True:
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return
            if producer is not None and not producer.is_alive() and q.empty():
                if producer.error is not None:
                    raise producer.error
                return
            continue
        if item is _DONE:
            return
        yield item


@dataclass
class Output:
    """One file the stream is encoded into: the restored video, or a before/after comparison."""

    tmp: Path
    size: tuple[int, int]
    render: Callable[[Frame], Frame] | None = None


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


def run_stream(
    info: MediaInfo,
    outputs: list[Output],
    encode: EncodeOptions,
    stage: FaceStage,
    stats: RestoreStats,
    progress: Callable[[int], None] | None,
    notice: Callable[[str], None],
) -> None:
    """Decode, transform and encode ``info`` into each output. Raises on failure; the caller cleans up."""
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(maxsize=_QUEUE_FRAMES)
    restored: queue.Queue = queue.Queue(maxsize=_QUEUE_FRAMES)
    source = VideoSource(info)
    sinks = [
        VideoSink(o.tmp, info, encode, notice=notice if i == 0 else (lambda _m: None), size=o.size)
        for i, o in enumerate(outputs)
    ]

    def decode() -> None:
        with source:
            for frame in source.frames():
                if not _put(decoded, frame, stop):
                    return
        _put(decoded, _DONE, stop)

    def write() -> None:
        for frame in _drain(restored, stop):
            for sink, output in zip(sinks, outputs):
                sink.write(output.render(frame) if output.render is not None else frame)

    with contextlib.ExitStack() as opened:
        for sink in sinks:
            opened.enter_context(sink)
        decoder = _Worker(decode, "vidrestore-decode")
        encoder = _Worker(write, "vidrestore-encode")
        decoder.start()
        encoder.start()
        ok = False
        frames = _drain(decoded, stop, decoder)
        if any(o.render is not None for o in outputs):
            frames = keep_input(frames)
        try:
            for frame in stage(frames):
                if encoder.error is not None or not encoder.is_alive():
                    break
                if not _put(restored, frame, stop):
                    break
                stats.frames += 1
                if progress is not None:
                    progress(stats.frames)
            _put(restored, _DONE, stop)
            encoder.join()
            ok = encoder.error is None
        finally:
            if not ok:
                stop.set()
                encoder.join(timeout=10)
            decoder.join(timeout=10)
            stop.set()
            if not ok:
                for sink in sinks:
                    sink.abort()
        if decoder.error is not None:
            raise decoder.error
        if encoder.error is not None:
            raise encoder.error
        if sinks[0].frames_written == 0:
            for sink in sinks:
                sink.abort()
            raise MediaError(f"{info.path}: no video frame could be decoded")
        for sink in sinks:
            sink.close()
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
    **overrides: Any,
) -> RestoreStats:
    """Restore ``src`` into ``dst`` (default ``<stem>_restored.<ext>`` beside it) and return what was done.

    ``overrides`` are ``RestoreOptions`` fields (``codec="h265"``, ``overwrite=True``, …); other keyword
    arguments of the face pipeline (``detector=``, ``restorer=``, …) go to ``options.extra``.
    """
    options = options or RestoreOptions()
    known = {f.name for f in fields(RestoreOptions)}
    # detector= / restorer= / parser= may be objects (any detect()/restore()/face_masks()): those go to extra
    direct = {k: v for k, v in overrides.items() if k in known and (k != "detector" or isinstance(v, str))}
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

    if stage is None:
        stage = build_stage(options, stats, note, info)
    if on_start is not None:
        on_start(info, dst_path)
    scale = options.upscale
    size = (info.video.width * scale, info.video.height * scale)
    outputs = [Output(temporary_path(dst_path), size)]
    if compare_path is not None:
        outputs.append(Output(temporary_path(compare_path), (2 * size[0], size[1]), side_by_side))
    started = time.perf_counter()
    try:
        run_stream(info, outputs, encode, stage, stats, progress, note)
        os.replace(outputs[0].tmp, dst_path)
        if compare_path is not None:
            os.replace(outputs[1].tmp, compare_path)
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


MODELS = ("gfpgan-1.4", "gfpgan-1.3", "codeformer", "restoreformer", "none")


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
