"""How the web app runs a job: through the same doors as the command line (``restore_image`` for photos, the
batch machinery — segments, manifest, resume — for videos), with the models loaded once and shared by every job.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from ..errors import VidrestoreError
from ..options import RestoreOptions

CHOICES = (("GFP-GAN 1.4", "gfpgan-1.4"), ("CodeFormer", "codeformer"), ("RestoreFormer", "restoreformer"))
CODEFORMER_NOTE = (
    "CodeFormer and its weights are under the NTU S-Lab License 1.0: **non-commercial use only**. "
    "Choose GFP-GAN or RestoreFormer for anything commercial."
)


@dataclass(frozen=True)
class Settings:
    """What the page lets a user choose for a job."""

    model: str = "gfpgan-1.4"
    fidelity: float = 0.5
    strength: float = 1.0
    upscale: int = 1
    vhs: bool = False

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "Settings":
        s = cls(**{k: doc[k] for k in ("model", "fidelity", "strength", "upscale", "vhs") if k in doc})
        if s.model not in {v for _, v in CHOICES}:
            raise VidrestoreError(f"unknown model {s.model!r}")
        if s.upscale not in (1, 2, 4):
            raise VidrestoreError(f"upscaling must be 1, 2 or 4, got {s.upscale}")
        return replace(s, fidelity=min(max(float(s.fidelity), 0.0), 1.0), strength=min(max(float(s.strength), 0.0), 1.0))


@dataclass(frozen=True)
class EngineOptions:
    weights_dir: str | None = None
    device: str | None = None
    precision: str = "fp32"
    backend: str = "auto"  # auto | torch | openvino, for every network (models.openvino.choose_backend)
    segment_seconds: float = 30.0
    fakes: bool = False  # tests: the marker restorer and a scripted detector instead of the models
    fake_delay: float = 0.0  # tests: seconds per face batch, to catch a video in the middle


# five landmarks (eyes, nose, mouth corners) in a unit square, placed on the fake detector's square
_UNIT_LANDMARKS = ((0.3, 0.35), (0.7, 0.35), (0.5, 0.55), (0.35, 0.75), (0.65, 0.75))


def _centre_face(_index: int, frame) -> list:
    import numpy as np

    from ..faces.face import Face

    h, w = frame.shape[:2]
    s = min(w, h) * 0.6
    x0, y0 = (w - s) / 2, (h - s) / 2
    return [Face(box=[x0, y0, x0 + s, y0 + s], landmarks=np.array(_UNIT_LANDMARKS) * s + [x0, y0], score=0.99)]


class _SlowMarker:
    def __init__(self, delay: float) -> None:
        from ..testing import MarkerRestorer

        self.inner, self.delay = MarkerRestorer(), delay

    def restore(self, faces, noise=None):
        time.sleep(self.delay)
        return self.inner.restore(faces)


class Models:
    """The loaded models, built on first use for a model choice and kept for the next jobs (one set at a time)."""

    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.lock = threading.Lock()
        self.key: tuple | None = None
        self.objects: dict[str, Any] = {}

    def restore_options(self, s: Settings) -> RestoreOptions:
        o = self.options
        base = RestoreOptions(model=s.model, fidelity=s.fidelity, strength=s.strength, upscale=s.upscale,
                              weights_dir=o.weights_dir, device=o.device, precision=o.precision, backend=o.backend,
                              overwrite=True)
        if o.fakes:  # nothing to load: no parsing model, and the upscaler that needs no weights
            base = replace(base, parse=False, bg_upsampler="lanczos")
        return base

    def missing(self, s: Settings) -> str | None:
        """The missing weight files of ``s`` (which file, from where, into which folder), or None. No download."""
        if self.options.fakes:
            return None
        from ..restorers import resolve_run_weights

        o = self.restore_options(s)
        try:
            resolve_run_weights(o.weights_dir, model=o.model, detector=o.detector, parse=o.parse and o.strength > 0,
                                upscale=o.upscale, bg_upsampler=o.bg_upsampler, download=False)
        except VidrestoreError as exc:
            return str(exc)
        return None

    def get(self, s: Settings) -> dict[str, Any]:
        """``restorer``/``detector``/``parser``/``upscaler`` objects for ``s``, loaded once per choice."""
        key = (s.model, s.fidelity if s.model == "codeformer" else None, s.upscale)
        with self.lock:
            if key != self.key:
                self.objects, self.key = {}, None  # let the old set go before the new one loads
                self.objects, self.key = self._load(s), key
            return self.objects

    def _load(self, s: Settings) -> dict[str, Any]:
        o = self.restore_options(s)
        if self.options.fakes:
            from ..testing import ScriptedDetector

            return {"restorer": _SlowMarker(self.options.fake_delay), "detector": ScriptedDetector(_centre_face)}
        problem = self.missing(s)
        if problem:
            raise VidrestoreError(problem)
        from ..pipeline.build import build_models  # the same models, loaded the same way, as a command-line run

        models = build_models(o)
        return {role: getattr(models, role) for role in ("restorer", "detector", "parser", "upscaler")
                if getattr(models, role) is not None}


class VideoProgress:
    """Frames done, seconds per frame and what is left, from the batch run's callbacks and each frame out."""

    def __init__(self, update: Callable[[int, int, float | None], None]) -> None:
        self.update = update
        self.total = 0
        self.base = 0  # frames in finished segments
        self.live = 0  # frames of the segment in progress
        self.ran = 0  # frames restored by this run
        self.started: float | None = None
        self.last = 0.0

    def found(self, total: int) -> None: ...

    def file_started(self, rel: str, frames: int) -> None:
        self.total = frames

    def segment_done(self, frames: int) -> None:
        self.base += frames
        self.live = 0
        self._report(force=True)

    def file_done(self, result: Any) -> None: ...

    def frame(self) -> None:
        now = time.perf_counter()
        if self.started is None:
            self.started = now
        self.live += 1
        self.ran += 1
        self._report(force=now - self.last > 0.5)

    def _report(self, force: bool) -> None:
        if not force:
            return
        self.last = time.perf_counter()
        spf = None
        if self.started is not None and self.ran > 1:
            spf = (self.last - self.started) / (self.ran - 1)
        self.update(self.base + self.live, self.total, spf)


def _counted(stage, tick: Callable[[], None]):
    def run(frames):
        for frame in stage(frames):
            tick()
            yield frame

    return run


def run_video(src: Path, out_dir: Path, s: Settings, models: Models, progress: VideoProgress) -> tuple[Path, int]:
    """Restore the one video in ``src``'s folder into ``out_dir`` (resuming the segments a previous run
    finished); returns the output and how many segments were resumed."""
    from ..batch import restore_folder
    from ..media.filters import FilterOptions
    from ..options import BatchOptions
    from ..pipeline import build_stage

    shared = models.get(s)

    def factory(options, stats, notice):
        stage = build_stage(replace(options, extra={**options.extra, **shared}), stats, notice)
        return _counted(stage, progress.frame)

    options = BatchOptions(
        restore=models.restore_options(s), filters=FilterOptions.profile("vhs" if s.vhs else "none"),
        segment_seconds=models.options.segment_seconds, engine="inline",
    )
    result = restore_folder(src.parent, out_dir, options, stage_factory=factory, progress=progress)
    if not result.files:
        raise VidrestoreError(f"{src.name}: not a video that can be restored")
    done = result.files[0]
    if not done.ok or done.output is None:
        raise VidrestoreError(done.error or f"{src.name}: the restore failed")
    return Path(done.output), done.resumed_segments


def run_photo(src: Path, out_dir: Path, s: Settings, models: Models) -> Path:
    """Restore one photo with the shared models through the photo door; the result keeps the photo's format."""
    from ..photo import default_image_output, restore_image

    dst = out_dir / default_image_output(src).name
    restore_image(src, dst, options=models.restore_options(s), **models.get(s))
    return dst


def write_compare(src: Path, restored: Path, dst: Path) -> Path:
    """A side-by-side before | after video of ``restored`` (with its audio), each output frame beside the input
    frame shown at the same time."""
    from ..media.probe import probe
    from ..media.sink import EncodeOptions, VideoSink
    from ..media.source import VideoSource
    from ..pipeline import side_by_side

    before_info, after_info = probe(src), probe(restored)
    size = (2 * after_info.video.width, after_info.video.height)
    tmp = dst.with_name(f".{dst.stem}.partial{dst.suffix}")
    try:
        with VideoSource(before_info) as before, VideoSource(after_info) as after, \
                VideoSink(tmp, after_info, EncodeOptions(codec="h264"), lambda _m: None, size=size) as sink:
            inputs = before.frames()
            current = next(inputs, None)
            upcoming = next(inputs, None)
            t0_in = t0_out = None
            for frame in after.frames():
                t = float(frame.pts * frame.time_base)
                t0_out = t if t0_out is None else t0_out
                t0_in = float(current.pts * current.time_base) if t0_in is None and current is not None else t0_in
                while upcoming is not None and float(upcoming.pts * upcoming.time_base) - t0_in <= t - t0_out + 1e-6:
                    current, upcoming = upcoming, next(inputs, None)
                if current is None:
                    break
                frame.meta["before"] = current.rgb
                sink.write(side_by_side(frame))
            sink.close()
        tmp.replace(dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst
