"""The live preview: face restoration for a stream that never makes the display wait for the model.

Threads and hand-offs (each a one-slot :class:`~vidrestore.live.mailbox.Mailbox` keeping the newest item)::

    submit(frame) ──► detector thread (newest frame: detect + causal Kalman tracking)
                          └──frame, faces──► restorer thread (newest tracked frame: align + restore)
    render(frame) ◄── the cached restored crops, warped onto this frame's extrapolated landmarks

* **detector** runs the face detector and :class:`~vidrestore.faces.track.FaceTracker` on the newest
  frame only; it publishes each confirmed track's landmarks at that frame and its velocity (px/frame).
* **restorer** aligns those faces on the same frame and restores them (GFP-GAN, with each track's own
  fixed noise, optional temporal blend and ParseNet mask); it caches each track's restored aligned crop
  and its soft mask in aligned space. All of a track's state (cached crop, mask, blend state, restore
  count, noise on the model's device) is dropped as soon as the tracker ends the track or the scene cuts,
  so memory follows the faces on screen, not the length of the session.
* **render** (the display) never waits for either worker: for every frame it extrapolates each track's
  landmarks to this frame (last landmarks + velocity × frames since, at most ``max_extrapolate`` frames),
  computes the similarity to the FFHQ template for them, and warps the cached restored crop and mask back
  with it (:func:`~vidrestore.live.overlay.reproject`, OpenCV, a few ms). Faces not restored yet are shown
  as they are.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UsageError, VidrestoreError
from ..faces.align import FFHQ_TEMPLATE_512, sar_affine
from ..faces.face import Face
from ..faces.masks import TrackMasks
from ..media.source import Frame
from .mailbox import Mailbox
from .overlay import box_mask, reproject, split_view

__all__ = ["LivePreview", "PreviewOptions", "PreviewStats"]


def _as_array(mask: Any) -> np.ndarray:
    """A parser's mask (tensor or array) as a contiguous float32 array (what the display side pastes with)."""
    m = mask.detach().float().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask, np.float32)
    return np.ascontiguousarray(m, np.float32)


@dataclass(frozen=True)
class PreviewOptions:
    """How :class:`LivePreview` follows and restores faces."""

    max_extrapolate: int = 5  # frames a track's landmarks are carried forward (or back) on its velocity
    velocity_smoothing: float = 0.5  # EMA weight of the newest velocity estimate
    min_face: float = 0.0
    parse_every: int = 5  # restorations of a track between two ParseNet masks
    temporal: bool = True
    temporal_strength: float = 0.5
    cut_detection: bool = True
    sar: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_extrapolate < 0 or self.parse_every < 1:
            raise UsageError("max_extrapolate must be >= 0 and parse_every >= 1")
        if not 0.0 < self.velocity_smoothing <= 1.0:
            raise UsageError("velocity_smoothing must be in (0, 1]")


@dataclass
class _Tracked:
    segment: int
    index: int
    faces: list[Face]
    velocity: dict[int, np.ndarray]


@dataclass
class _Restored:
    segment: int
    index: int
    crop: np.ndarray
    mask: np.ndarray


@dataclass
class PreviewStats:
    submitted: int = 0
    detections: int = 0
    restorations: int = 0
    faces_shown: int = 0
    detect_ms: deque = field(default_factory=lambda: deque(maxlen=2000))
    restore_ms: deque = field(default_factory=lambda: deque(maxlen=2000))

    @property
    def last_restore_ms(self) -> float | None:
        return self.restore_ms[-1] if self.restore_ms else None


class LivePreview:
    """Face restoration for a live stream that never makes the display wait for the model.

    ``submit(frame)`` (capture side) offers a frame to the detector; ``render(frame)`` (display side)
    returns the frame to show: the cached restored faces re-projected onto the tracked landmarks of this
    frame, optionally split before/after. With ``threaded=True`` (default) detection and restoration run
    in two worker threads (``start()``/``close()`` or a ``with`` block); with ``threaded=False``
    ``submit`` runs both synchronously (deterministic, for tests). ``detector=None`` shows frames as they
    are. A worker's exception is re-raised by the next ``render``.
    """

    def __init__(
        self,
        detector: Any | None = None,
        restorer: Any | None = None,
        parser: Any | None = None,
        options: PreviewOptions = PreviewOptions(),
        *,
        threaded: bool = True,
        device: Any | None = None,
    ) -> None:
        import torch

        from ..faces.track import FaceTracker, TrackerOptions
        from ..faces.temporal import TemporalBlender, TemporalOptions, TrackNoise

        self.detector = detector if restorer is not None else None
        self.restorer = restorer
        self.parser = parser
        self.options = options
        self.threaded = threaded
        dev = device if device is not None else getattr(restorer, "device", "cpu")
        self.device = torch.device(dev)
        self.split = False
        self.stats = PreviewStats()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._tracker = FaceTracker(TrackerOptions(causal=True))
        self._blender = TemporalBlender(TemporalOptions(enabled=options.temporal,
                                                        strength=options.temporal_strength))
        self._noise = TrackNoise(base_seed=options.seed, device=self.device)
        self._box = box_mask()
        self._masks = TrackMasks(self.parser, self.options.parse_every, _as_array)
        self._restore_count: dict[int, int] = {}
        self._segment = 0
        self._tracker_segment = 0
        self._prev_small: np.ndarray | None = None
        self._tracked: _Tracked | None = None
        self._cache: dict[int, _Restored] = {}
        self._alive: tuple[int, frozenset[int]] = (0, frozenset())  # (segment, ids the tracker follows)
        self._held: frozenset[int] = frozenset()  # ids whose state the restorer side holds
        self._to_detect = Mailbox()
        self._to_restore = Mailbox()
        self._threads: list[threading.Thread] = []

    # -- life cycle ---------------------------------------------------------------------------------------
    def start(self) -> "LivePreview":
        if self.threaded and not self._threads and self.detector is not None:
            for name, fn in (("detect", self._detect_loop), ("restore", self._restore_loop)):
                t = threading.Thread(target=self._guard(fn), name=f"vidrestore-live-{name}", daemon=True)
                t.start()
                self._threads.append(t)
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Stop the workers (a restoration under way is waited for, up to ``timeout`` seconds)."""
        self._to_detect.close()
        self._to_restore.close()
        for t in self._threads:
            t.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]

    @property
    def busy(self) -> bool:
        """Whether a worker thread is still running."""
        return any(t.is_alive() for t in self._threads)

    def __enter__(self) -> "LivePreview":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the display thread
                self.error = exc
                self._to_detect.close()
                self._to_restore.close()

        return run

    def toggle_split(self) -> bool:
        self.split = not self.split
        return self.split

    # -- capture side ---------------------------------------------------------------------------------------
    def submit(self, frame: Frame) -> None:
        """Offer a captured frame (indices must increase). Marks scene cuts: ``frame.meta["segment"]``."""
        from ..faces.cut import is_scene_cut, small_grey

        self.stats.submitted += 1
        cut = bool(frame.meta.get("cut"))
        if self.options.cut_detection and frame.rgb.shape[0] >= 36 and frame.rgb.shape[1] >= 64:
            small = small_grey(frame.rgb)
            if self._prev_small is not None and self._prev_small.shape == small.shape:
                cut = cut or is_scene_cut(self._prev_small, small)
            self._prev_small = small
        if cut:
            self._segment += 1
        frame.meta["segment"] = self._segment
        if self.detector is None:
            return
        if self.threaded:
            self._to_detect.put(frame)
        else:
            tracked = self._detect_step(frame)
            if tracked is not None:
                self._restore_step(*tracked)

    # -- workers ----------------------------------------------------------------------------------------------
    def _detect_loop(self) -> None:
        def detect(frame: Frame) -> None:
            job = self._detect_step(frame)
            if job is not None:
                self._to_restore.put(job)

        self._to_detect.serve(detect)

    def _restore_loop(self) -> None:
        self._to_restore.serve(lambda job: self._restore_step(*job))

    def _detect_step(self, frame: Frame) -> tuple[Frame, list[Face], int] | None:
        seg = int(frame.meta.get("segment", 0))
        if seg != self._tracker_segment:
            self._tracker.reset()
            self._tracker_segment = seg
        started = time.perf_counter()
        dets = list(self.detector.detect([frame.rgb])[0])
        if self.options.min_face > 0:
            dets = [d for d in dets if d.size >= self.options.min_face]
        faces = self._tracker.update(frame.index, dets)
        self.stats.detect_ms.append(1000 * (time.perf_counter() - started))
        self.stats.detections += 1
        with self._lock:
            prev = self._tracked if self._tracked is not None and self._tracked.segment == seg else None
            velocity: dict[int, np.ndarray] = {}
            for f in faces:
                if prev is None or frame.index <= prev.index:
                    continue
                old = next((p for p in prev.faces if p.track_id == f.track_id), None)
                if old is None:
                    continue
                v = (f.landmarks.astype(np.float64) - old.landmarks) / (frame.index - prev.index)
                if f.track_id in prev.velocity:
                    a = self.options.velocity_smoothing
                    v = a * v + (1 - a) * prev.velocity[f.track_id]
                velocity[f.track_id] = v
            self._tracked = _Tracked(seg, frame.index, faces, velocity)
            # tracks the tracker still follows (coasting ones included); a scene cut reset it, so after a
            # cut nothing of the previous scene stays alive
            self._alive = (seg, frozenset(self._tracker.active_ids))
            self._prune_locked()
            stale = self._restorer_holds_ended
        if faces:
            return frame, faces, seg
        # no face to restore: still wake the restorer when it holds state for tracks that ended, so their
        # blend state and noise (on the model's device) are freed now, not at the next face
        return (frame, [], seg) if stale else None

    def _restore_step(self, frame: Frame, faces: list[Face], seg: int) -> None:
        from ..faces.align import align_face

        self._forget_ended()  # before this job adds its tracks' state
        if not faces:
            return
        started = time.perf_counter()
        n = len(faces)
        crops = np.empty((n, 512, 512, 3), np.uint8)
        for k, f in enumerate(faces):
            crops[k], _ = align_face(frame.rgb, f.landmarks, self.options.sar)
        ids = [int(f.track_id) for f in faces]
        if hasattr(self.restorer, "noise_shapes"):
            restored = self.restorer.restore(crops, noise=self._noise.for_tracks(ids))
        else:
            restored = self.restorer.restore(crops)
        restored = np.asarray(restored)
        if restored.shape != crops.shape or restored.dtype != np.uint8:
            raise VidrestoreError(f"the restorer returned {restored.shape} {restored.dtype} for {crops.shape} uint8 faces")
        out = np.empty_like(restored)
        for k, f in enumerate(faces):
            out[k] = self._blender.blend(ids[k], restored[k], f.landmarks, None)
            self._restore_count[ids[k]] = self._restore_count.get(ids[k], 0) + 1
        masks = self._face_masks(ids, out)
        self.stats.restore_ms.append(1000 * (time.perf_counter() - started))
        self.stats.restorations += 1
        with self._lock:
            for k, tid in enumerate(ids):
                self._cache[tid] = _Restored(seg, frame.index, out[k], masks[k])
            self._held = self._held | set(ids)
            self._prune_locked()  # a track may have ended while it was being restored
        self._forget_ended()

    # -- per-track state ------------------------------------------------------------------------------------
    def _prune_locked(self) -> None:
        """Drop cached crops of tracks that ended or belong to an earlier scene (hold ``self._lock``)."""
        alive_seg, ids = self._alive
        for tid in [t for t, r in self._cache.items() if r.segment != alive_seg or t not in ids]:
            del self._cache[tid]

    @property
    def _restorer_holds_ended(self) -> bool:
        return not self._held <= self._alive[1]

    def _forget_ended(self) -> None:
        """Drop the restorer's state (restore counts, masks, blend state, noise) of tracks that ended.

        Runs on the restorer's side only (the thread that uses that state).
        """
        with self._lock:
            ended = self._held - self._alive[1]
        for tid in ended:
            self._restore_count.pop(tid, None)
            self._masks.forget(tid)
            self._blender.forget(tid)
            self._noise.forget(tid)
        with self._lock:
            self._held = self._held - ended

    def per_track_entries(self) -> dict[str, int]:
        """How many tracks each piece of per-track state holds, and how many tracks are live (for tests)."""
        with self._lock:
            tracked = self._tracked
            return {"cache": len(self._cache), "masks": len(self._masks), "restore_count": len(self._restore_count),
                    "blend": len(self._blender.track_ids), "noise": len(self._noise._cache),
                    "velocity": 0 if tracked is None else len(tracked.velocity), "held": len(self._held),
                    "live_tracks": len(self._alive[1])}

    def _face_masks(self, ids: list[int], crops: np.ndarray) -> list[np.ndarray]:
        """Masks on the track's restoration count as clock (faces/masks.py: recomputed every ``parse_every``
        restorations, ramped in between)."""
        if self.parser is None:
            return [self._box] * len(ids)
        return self._masks.masks(ids, crops, [self._restore_count[t] - 1 for t in ids])

    # -- display side ---------------------------------------------------------------------------------------
    def render(self, frame: Frame) -> np.ndarray:
        """The frame to show for ``frame`` (a new array; ``frame.rgb`` is not modified)."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        out = frame.rgb.copy()
        seg = int(frame.meta.get("segment", self._segment))
        with self._lock:
            tracked = self._tracked
            cache = dict(self._cache)
        shown = 0
        if tracked is not None and tracked.segment == seg:
            ahead = frame.index - tracked.index
            lim = self.options.max_extrapolate
            ahead = max(-lim, min(lim, ahead))
            for f in tracked.faces:
                r = cache.get(f.track_id)
                if r is None or r.segment != seg:
                    continue
                lm = f.landmarks.astype(np.float64)
                v = tracked.velocity.get(f.track_id)
                if v is not None and ahead:
                    lm = lm + v * ahead
                try:
                    aff = sar_affine(lm, self.options.sar, FFHQ_TEMPLATE_512)
                except ValueError:
                    continue
                shown += reproject(out, r.crop, r.mask, aff)
        self.stats.faces_shown = shown
        if self.split:
            out = split_view(frame.rgb, out)
        return out
