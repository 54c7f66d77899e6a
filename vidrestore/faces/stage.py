"""The face stage of the stream: detect → track → align → restore → blend → paste, in frame order.

A generator transform of ``Frame`` objects (the pipeline's ``FaceStage``). Frames wait only as long as
detection chunks, the fixed-lag smoother and batching need:

* detection runs on chunks of ``detect_batch`` frames (every ``detect_every``-th frame, and every scene cut);
* the tracker's fixed-lag smoother hands a frame back ``lag`` frames later with RTS-smoothed landmarks
  (``causal=True`` for live: no delay);
* aligned crops of several frames and faces are gathered until ``batch_size`` faces (or ``batch_size``
  frames) are waiting, then restored in one call, with one fixed StyleGAN noise (the same for every face); a frame
  without faces (or at a scene cut) restores what is waiting at once, as a partial batch, and passes;
* each restored crop is blended with its track's previous output in aligned space (motion-weighted),
  mixed with the input crop by ``strength``, and pasted back with a soft mask (ParseNet's face mask,
  computed every ``parse_every`` frames of a track, or a feathered box).

So at most :attr:`FaceStage.window` ``= detect_batch + lag + batch_size`` frames are held (taken from the
input and not yet yielded), whatever the faces do and however long the video. Per-track state (blend,
noise, mask, the previous crops of the flicker figure) lives only while the track is seen; the report keeps
running sums per track, not histories.

The restorer is called in fixed-size micro-batches (``micro_batch`` faces, padded with copies of the last
crop), so a face's restored pixels never depend on ``batch_size`` or on how many faces share its call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
import torch

from ..media.source import Frame
from .temporal import TemporalBlender, TemporalOptions, TemporalProfile, TrackNoise
from .align import FITS, align_face, invert_affine
from .paste import antialias_crop, paste_faces
from .face import Face
from .masks import TrackMasks
from .prefetch import DetectAhead
from .regions import RegionDetector, RegionOptions
from .cut import is_scene_cut, small_grey
from .microbatch import Restorer, restore_crops
from .motion import TrackerOptions
from .report import FaceReport, FlickerMeter
from .smooth import FixedLagSmoother

__all__ = ["FaceOptions", "FaceStage", "FaceReport", "Detector", "Restorer", "alignment_fit", "tracker_options"]


def upscaled_paste_affine(affine: np.ndarray, s: int) -> np.ndarray:
    """The affine to hand to ``paste_faces(..., upscale=s)`` so the face lands exactly on the upscaled
    background (facexlib's paste adds half an output pixel more than the pixel-centre mapping; undo it)."""
    if s == 1:
        return affine
    inv = invert_affine(affine)
    inv[:, 2] -= 0.5 / s
    return invert_affine(inv)


def tracker_options(options: FaceOptions) -> TrackerOptions:
    """The smoother the stage runs. Files: a constant-acceleration model smoothed over ``lag`` frames of
    look-ahead, with an innovation gate (``maneuver_gate``) so a face that stops, starts or enters fast is
    followed instead of overshot: on real detections (bench/stability.py) the pasted face stays within ~2 px
    of the truth and jitters 0.2–0.5× as much as aligning on the raw detections, where without the gate an
    abrupt stop overshot by 9 px. Live: causal."""
    # with detection every k > 1 frames a face seen for k frames or fewer would never get its second hit
    min_hits = options.min_hits or (1 if options.detect_every > 1 else 2)
    if options.causal:
        return TrackerOptions(causal=True, min_hits=min_hits)
    return TrackerOptions(lag=options.lag, motion="acceleration", jerk_noise=0.002, maneuver_gate=25.0,
                          min_hits=min_hits)


def alignment_fit(options: FaceOptions) -> str:
    """The similarity fit the stage aligns with (``options.align_fit``, or by default): least squares on the
    fixed-lag smoother's landmarks (files: outliers are already filtered, and LMEDS's inlier choice flipping from frame
    to frame added jitter — bench/stability.py, rotation 0.63× → ~0.4× of raw); facexlib's LMEDS when causal
    (photos, for parity with GFPGAN; live)."""
    if options.align_fit is not None:
        return options.align_fit
    return "lmeds" if options.causal else "lstsq"


class Detector(Protocol):
    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Face]]: ...


def detect_scaled(detector: Detector, frames: list[np.ndarray], max_side: int | None) -> list[list[Face]]:
    """Faces of ``frames`` found on copies whose larger side is at most ``max_side`` (area-averaged), in the
    full frames' pixels (pixel centres map exactly: ``x = (x_small + 0.5) / s - 0.5``). Alignment then samples
    the full-resolution frame."""
    scales = [1.0 if not max_side or max(f.shape[:2]) <= max_side else max_side / max(f.shape[:2]) for f in frames]
    if all(s == 1.0 for s in scales):
        return detector.detect(frames)
    small = [f if s == 1.0 else cv2.resize(f, (max(1, round(f.shape[1] * s)), max(1, round(f.shape[0] * s))),
                                          interpolation=cv2.INTER_AREA) for f, s in zip(frames, scales)]
    out = []
    for f, sm, faces in zip(frames, small, detector.detect(small)):
        sx, sy = f.shape[1] / sm.shape[1], f.shape[0] / sm.shape[0]
        k = np.array([sx, sy], np.float32)
        for face in faces:
            face.landmarks = (face.landmarks + 0.5) * k - 0.5
            face.box = ((face.box.reshape(2, 2) + 0.5) * k - 0.5).reshape(4)
        out.append(list(faces))
    return out


def _chunks(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    chunk: list[Frame] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass(frozen=True)
class FaceOptions:
    """How faces are found, followed and restored (the CLI's face options)."""

    detect_every: int = 1
    detect_batch: int = 8
    batch_size: int = 8
    micro_batch: int | None = None  # faces per restorer call; None: 1 on the CPU, batch_size on CUDA
    min_face: float = 0.0
    only_center_face: bool = False
    parse: bool = True
    parse_every: int = 5
    temporal: bool = True
    temporal_strength: float | None = None  # None: the restorer's ``temporal.strength`` (CodeFormer 0.95), else 0.5
    strength: float = 1.0
    lag: int = 10
    causal: bool = False
    cut_threshold: float | None = None
    sar: float = 1.0
    seed: int = 0
    min_hits: int | None = None  # detections that confirm a track (None: 2, or 1 with detect_every > 1); photos: 1
    detect_max_side: int | None = None  # detect on a copy downscaled to this larger side (large scans); None: as is
    detect_ahead: int = 1  # chunks detected in a worker thread ahead of restoration (0: in line; faces/prefetch.py)
    scan_every: int | None = None  # full-frame searches every N frames, regions around the faces between (regions.py);
    # None: 4 on the CPU, 1 (every frame in full) elsewhere
    align_fit: str | None = None  # "lmeds" | "lstsq"; None: see alignment_fit (lstsq for the smoothed video stage)

    def __post_init__(self) -> None:
        from ..errors import UsageError

        if self.detect_every < 1:
            raise UsageError(f"--detect-every must be at least 1, got {self.detect_every}")
        if self.batch_size < 1 or self.detect_batch < 1:
            raise UsageError("batch sizes must be at least 1")
        if not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"--strength must be between 0 and 1, got {self.strength}")
        if self.temporal_strength is not None and not 0.0 <= self.temporal_strength < 1.0:
            raise UsageError(f"--temporal-strength must be in [0, 1), got {self.temporal_strength}")
        if self.parse_every < 1:
            raise UsageError(f"parse_every must be at least 1, got {self.parse_every}")
        if self.scan_every is not None and self.scan_every < 1:
            raise UsageError(f"--scan-every must be at least 1, got {self.scan_every}")
        if self.micro_batch is not None and self.micro_batch < 1:
            raise UsageError(f"micro_batch must be at least 1, got {self.micro_batch}")
        if self.align_fit is not None and self.align_fit not in FITS:
            raise UsageError(f"align_fit must be one of {', '.join(FITS)}, got {self.align_fit!r}")


@dataclass
class _Pending:
    """A frame whose faces are aligned and wait for the restorer."""

    frame: Frame
    faces: list[Face]
    crops: np.ndarray  # (n, 512, 512, 3) uint8
    affines: np.ndarray  # (n, 2, 3)
    restored: np.ndarray | None = None


class FaceStage:
    """The face restoration stage. Call it on the frame stream; it yields every frame once, in order."""

    def __init__(
        self,
        detector: Detector,
        restorer: Restorer,
        options: FaceOptions = FaceOptions(),
        parser: Any | None = None,
        device: str | torch.device | None = None,
        upscaler: Any | None = None,
    ) -> None:
        self.detector = detector
        self.upscaler = upscaler
        self.scale = int(getattr(upscaler, "scale", 1) or 1) if upscaler is not None else 1
        self.restorer = restorer
        self.parser = parser if options.parse else None
        self.options = options
        dev = device if device is not None else getattr(restorer, "device", "cpu")
        self.device = torch.device(dev)
        self.report = FaceReport()
        self._flicker = FlickerMeter()

    @property
    def window(self) -> int:
        """The most frames held at once: a detection chunk, the smoother's look-ahead, a restore batch."""
        opts = self.options
        ahead = opts.detect_batch * opts.detect_ahead  # chunks waiting for (or being) detected in the worker
        return opts.detect_batch + ahead + (0 if opts.causal else opts.lag) + opts.batch_size

    # -- the generator --------------------------------------------------------------------------------------
    def __call__(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        opts = self.options
        smoother = FixedLagSmoother(self._tracker_options())
        self._blender = TemporalBlender(self._temporal_options())
        self._antialias = self._profile().paste_antialias if opts.temporal else 0.0  # the paste's low-pass, per run
        self._noise = TrackNoise(base_seed=opts.seed, device=self.device)
        # face masks: ParseNet every parse_every frames (by frame index: a batch segment recomputes on the frames a
        # single run does), ramped between recomputations so the face boundary does not step (faces/masks.py)
        self._masks = TrackMasks(self.parser, self.options.parse_every, lambda m: m.to(self.device))
        self._flicker.live.clear()
        self._held: dict[int, tuple[Frame, list[Face] | None, bool]] = {}
        self._queue: list[_Pending] = []
        self._prev_small: np.ndarray | None = None
        scan = opts.scan_every if opts.scan_every is not None else 4 if self.device.type == "cpu" else 1
        self._regions = RegionDetector(lambda frames: detect_scaled(self.detector, frames, opts.detect_max_side),
                                       RegionOptions(scan_every=scan), getattr(self.detector, "detect_regions", None))
        with DetectAhead(self._detect, opts.detect_ahead) as ahead:
            for chunk in _chunks(frames, opts.detect_batch):
                for job, found in ahead.push(self._plan(chunk)):
                    yield from self._track(job, found, smoother)
            for job, found in ahead.drain():
                yield from self._track(job, found, smoother)
        for idx, faces in smoother.flush():
            yield from self._ready(idx, faces)
        yield from self._restore_queue()

    def _profile(self) -> TemporalProfile:
        """What the restorer declares about holding its output (``restorer.temporal``; CodeFormer holds harder)."""
        return getattr(self.restorer, "temporal", None) or TemporalProfile()

    def _temporal_options(self) -> TemporalOptions:
        """Blending of restored crops, gated on the aligned input (the stage passes it): see faces/temporal.py. The
        strength and gate are the restorer's profile's; ``temporal_strength``, when given, overrides the strength."""
        profile = self._profile()
        strength = profile.strength if self.options.temporal_strength is None else self.options.temporal_strength
        return TemporalOptions(enabled=self.options.temporal, strength=strength, source_gate=profile.source_gate)

    def _tracker_options(self) -> TrackerOptions:
        return tracker_options(self.options)

    # -- detection and tracking -----------------------------------------------------------------------------
    def _plan(self, chunk: list[Frame]) -> tuple[list[Frame], list[bool], list[int]]:
        """The chunk, its scene cuts and the frames to detect (in chunk order: it advances the cut and cadence
        state, so it runs in the stage's thread before the chunk's detection is handed to the worker)."""
        opts = self.options
        cuts = []
        for frame in chunk:
            small = small_grey(frame.rgb)
            cut = self._prev_small is not None and (
                is_scene_cut(self._prev_small, small)
                if opts.cut_threshold is None
                else is_scene_cut(self._prev_small, small, opts.cut_threshold)
            )
            self._prev_small = small
            cuts.append(cut)
        # the cadence follows the frame index (plus every scene cut), so a batch segment, which numbers its frames
        # as the whole file does, detects on the same frames as a single run
        wanted = [i for i, frame in enumerate(chunk) if cuts[i] or frame.index % opts.detect_every == 0]
        return chunk, cuts, wanted

    def _detect(self, job: tuple[list[Frame], list[bool], list[int]]) -> list[list[Face]]:
        chunk, cuts, wanted = job
        return self._regions.detect([chunk[i].rgb for i in wanted], [chunk[i].index for i in wanted],
                                    [cuts[i] for i in wanted])

    def _track(self, job: tuple[list[Frame], list[bool], list[int]], found: list[list[Face]],
               smoother: FixedLagSmoother) -> Iterator[Frame]:
        chunk, cuts, wanted = job
        detections: dict[int, list[Face]] = {}
        for i, faces in zip(wanted, found):
            detections[i] = self._select(list(faces), chunk[i].rgb.shape)
        for i, frame in enumerate(chunk):
            dets = detections.get(i)
            if cuts[i]:
                self.report.cuts += 1
            self._held[frame.index] = (frame, dets, cuts[i])
            for idx, faces in smoother.push(frame.index, dets, is_cut=cuts[i]):
                yield from self._ready(idx, faces)

    def _select(self, faces: list[Face], shape: tuple[int, ...]) -> list[Face]:
        opts = self.options
        if opts.min_face > 0:
            faces = [f for f in faces if f.size >= opts.min_face]
        if opts.only_center_face and len(faces) > 1:
            h, w = shape[:2]
            centre = np.array([w / 2, h / 2])
            faces = [min(faces, key=lambda f: float(np.linalg.norm(f.center - centre)))]
        return faces

    # -- alignment and batching -----------------------------------------------------------------------------
    def _ready(self, idx: int, faces: list[Face]) -> Iterator[Frame]:
        frame, raw, cut = self._held.pop(idx)
        if cut:
            # the frames before the cut finish with their tracks' state; then every track's state goes
            yield from self._restore_queue()
            self._forget_all()
        faces = [f for f in faces if f.track_id is not None]
        self.report.record_landmarks(faces, raw)
        if self.options.strength == 0.0 or not faces:
            # nothing to restore: what waits is restored now (a partial batch), and the frame passes untouched
            self._queue.append(_Pending(frame, [], np.empty((0, 512, 512, 3), np.uint8), np.empty((0, 2, 3))))
            yield from self._restore_queue()
            return
        crops = np.empty((len(faces), 512, 512, 3), np.uint8)
        affines = np.empty((len(faces), 2, 3), np.float64)
        fit = alignment_fit(self.options)
        for k, face in enumerate(faces):
            crops[k], affines[k] = align_face(frame.rgb, face.landmarks, self.options.sar, fit=fit)
        self._queue.append(_Pending(frame, faces, crops, affines))
        batch = self.options.batch_size
        if len(self._queue) >= batch or sum(len(p.faces) for p in self._queue) >= batch:
            yield from self._restore_queue()

    # -- restoration ------------------------------------------------------------------------------------------
    def _micro(self) -> int:
        if self.options.micro_batch is not None:
            return self.options.micro_batch
        return self.options.batch_size if self.device.type == "cuda" else 1

    def _restore_queue(self) -> Iterator[Frame]:
        todo = [p for p in self._queue if p.faces and p.restored is None]
        if todo:
            crops = np.concatenate([p.crops for p in todo])
            restored = restore_crops(self.restorer, crops, self._micro(), self._noise)
            k = 0
            for p in todo:
                p.restored = restored[k : k + len(p.faces)]
                k += len(p.faces)
        yield from self._emit_all()

    def _emit_all(self) -> Iterator[Frame]:
        queue, self._queue = self._queue, []
        for p in queue:
            yield self._finish(p)
        if queue:
            self._forget_ended(queue[-1].frame.index)

    def _forget_ended(self, index: int) -> None:
        """Drop the blend state, noise, mask and previous crops of tracks not seen for a while (ids are never
        reused). Walks only the live tracks."""
        horizon = 2 * (self.options.lag + self.options.detect_every) + 2
        for tid in [tid for tid, live in self._flicker.live.items() if index - live.frame > horizon]:
            self._forget(tid)

    def _forget(self, tid: int) -> None:
        self._blender.forget(tid)
        self._noise.forget(tid)
        self._masks.forget(tid)
        self._flicker.live.pop(tid, None)

    def _forget_all(self) -> None:
        """A scene cut: every track ends (the tracker gives new ids after it)."""
        self._blender.reset()
        self._noise.reset()
        self._masks.clear()
        self._flicker.live.clear()

    # -- blending and paste-back --------------------------------------------------------------------------------
    def _finish(self, p: _Pending) -> Frame:
        frame = p.frame
        frame.meta["faces"] = p.faces
        if not p.faces:
            if self.upscaler is not None:
                frame.rgb = self.upscaler.upscale(frame.rgb)
            return frame
        opts = self.options
        outs = np.empty_like(p.restored)
        for k, face in enumerate(p.faces):
            crop = p.restored[k]
            crop = self._blender.blend(face.track_id, crop, face.landmarks, frame.index, source=p.crops[k])
            if opts.strength < 1.0:
                mixed = p.crops[k].astype(np.float32) + opts.strength * (crop.astype(np.float32) - p.crops[k])
                crop = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
            outs[k] = crop
        masks = None
        if self.parser is not None:
            ids = [f.track_id for f in p.faces]
            masks = torch.stack(self._masks.masks(ids, outs, [frame.index] * len(ids)))
        if self._antialias > 0:  # a held texture on a moving face must not alias in the paste (TemporalProfile)
            outs = np.stack([antialias_crop(o, a, self._antialias, self.scale) for o, a in zip(outs, p.affines)])
        if self.upscaler is None:
            frame.rgb = paste_faces(frame.rgb, outs, p.affines, masks, device=self.device)
        else:
            background = self.upscaler.upscale(frame.rgb)
            affines = np.stack([upscaled_paste_affine(a, self.scale) for a in p.affines])
            frame.rgb = paste_faces(background, outs, affines, masks, device=self.device, upscale=self.scale)
        self._flicker.record(self.report, p.faces, p.crops, frame.rgb, p.affines, self.scale, frame.index)
        return frame
