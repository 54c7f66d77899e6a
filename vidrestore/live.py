"""``vidrestore live``: restore a camera, a file or a network stream while it plays.

Threads and hand-offs (every hand-off is a one-slot mailbox that keeps the newest item, so nothing queues
without bound and a slow consumer skips items instead of falling behind)::

    capture ──frame──► display (main thread: render, window / MJPEG server / recorder), at the source rate
       │
       └──frame──► detector thread (newest frame: detect + causal Kalman tracking)
                        └──frame, faces──► restorer thread (newest tracked frame: align + restore)

* **capture** decodes the source (PyAV). A file plays at its own pace (each frame waits for its pts on
  the wall clock, ``--loop`` starts it again); a camera or a network stream is read as fast as it delivers.
  Audio packets of the source go to the recorder (and to a 3-second backlog for a recording started later).
* **detector** runs the face detector and :class:`~vidrestore.faces.track.FaceTracker` on the newest
  frame only; it publishes each confirmed track's landmarks at that frame and its velocity (px/frame).
* **restorer** aligns those faces on the same frame and restores them (GFP-GAN, with each track's own
  fixed noise, optional temporal blend and ParseNet mask); it caches each track's restored aligned crop
  and its soft mask in aligned space. All of a track's state (cached crop, mask, blend state, restore
  count, noise on the model's device) is dropped as soon as the tracker ends the track or the scene cuts,
  so memory follows the faces on screen, not the length of the session.
* **display** never waits for either worker: for every frame it extrapolates each track's landmarks to
  this frame (last landmarks + velocity × frames since, at most ``max_extrapolate`` frames), computes the
  similarity to the FFHQ template for them, and warps the cached restored crop and mask back with it
  (:func:`reproject`, OpenCV, a few ms). Faces not restored yet are shown as they are.

Without a display (:func:`vidrestore.live_window.display_problem`) no window is opened — OpenCV aborts the
process otherwise — and ``--serve``/``--record`` carry on alone; with neither the session stops with one line.

The pure part — :class:`LivePreview` (``submit(frame)``, ``render(frame) -> shown``) — is independent of
the window (:mod:`vidrestore.live_window`) and the server (:mod:`vidrestore.live_server`).

Sources (``--source``): ``N`` (a camera index: ``/dev/videoN`` through FFmpeg's ``v4l2`` input on Linux,
device ``N`` of ``avfoundation`` on macOS; on Windows give ``--format dshow --source "video=CAMERA NAME"``,
the names are listed by ``ffmpeg -list_devices true -f dshow -i dummy``), ``/dev/videoN``, a file, or a
URL (``rtsp://``, ``rtmp://``, ``http(s)://``, ``udp://``, ``srt://`` …; RTSP over TCP). ``--format`` and
``--source-option KEY=VALUE`` (e.g. ``video_size=1280x720``, ``framerate=30``, ``input_format=mjpeg``)
go to FFmpeg.

Recording (``--record out.mp4`` or the ``r`` key) writes the shown frames (split view included, HUD not)
with libx264 under a temporary name, renamed into place when the recording stops. Audio: a file's or a
stream's first audio track is copied packet for packet, in step with the video (with ``--loop`` every
pass); FFmpeg's camera inputs (v4l2, avfoundation device N, dshow video=) carry no audio, so a camera
recording is silent.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from .errors import MediaError, OutputError, UsageError, VidrestoreError
from .faces.align import compose_sar, estimate_affine, invert_affine
from .faces.face import Face
from .media.source import Frame

__all__ = [
    "LiveOptions",
    "LivePreview",
    "LiveRecorder",
    "LiveSource",
    "LiveStats",
    "PreviewOptions",
    "SourceSpec",
    "box_mask",
    "build_parser",
    "parse_source",
    "reproject",
    "run",
    "run_live",
]

LIVE_TIME_BASE = Fraction(1, 1_000_000)  # live frames carry their source time in microseconds
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_AUDIO_BACKLOG_S = 3.0


# ------------------------------------------------------------------------------------------------ mailbox


class Mailbox:
    """A one-slot hand-off between threads that keeps the newest item.

    ``put`` never blocks (it replaces an item not taken yet and counts it in ``dropped``); ``get`` waits for
    an item newer than the last one taken. ``close`` wakes every waiter; ``get`` then returns None once the
    slot is empty.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._full = False
        self.closed = False
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self._cond:
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Any:
        with self._cond:
            self._cond.wait_for(lambda: self._full or self.closed, timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        with self._cond:
            return self.closed and not self._full


# ------------------------------------------------------------------------------------------------ geometry


def box_mask(size: int = 512) -> np.ndarray:
    """facexlib's feathered paste mask drawn in aligned space: (size, size) float32 in [0, 1].

    facexlib erodes the warped-back box by ``sqrt(area) // 20`` px and blurs it with a kernel twice that,
    in image space; in the aligned crop the face box is the whole crop, so that is an inset of size/20
    and a Gaussian of size/10 + 1.
    """
    edge = max(1, size // 20)
    m = np.zeros((size, size), np.float32)
    m[edge:-edge, edge:-edge] = 1.0
    k = 2 * edge + 1
    return cv2.GaussianBlur(m, (k, k), 0)


def face_affine(landmarks: np.ndarray, sar: float = 1.0) -> np.ndarray:
    """The (2, 3) image → FFHQ-512 crop similarity for five landmarks (as :func:`align_face` uses)."""
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    if sar == 1.0:
        return estimate_affine(lm)
    display = lm.copy()
    display[:, 0] = sar * lm[:, 0] + 0.5 * (sar - 1.0)
    return compose_sar(estimate_affine(display), sar)


def reproject(frame: np.ndarray, crop: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> bool:
    """Blend an aligned crop (S, S, 3) uint8 into ``frame`` (H, W, 3) uint8 **in place** at ``affine``.

    ``affine`` maps image pixels to crop pixels (as :func:`vidrestore.faces.align.align_face` returns);
    ``mask`` (S, S) float32 in [0, 1] is the soft paste mask in aligned space. Only the face's bounding box
    is touched. Returns False when the face lies outside the frame.
    """
    h, w = frame.shape[:2]
    s = crop.shape[0]
    inv = invert_affine(affine)
    corners = np.array([[0, 0, 1], [s, 0, 1], [0, s, 1], [s, s, 1]], np.float64) @ inv.T
    x0 = max(0, math.floor(corners[:, 0].min()))
    y0 = max(0, math.floor(corners[:, 1].min()))
    x1 = min(w, math.ceil(corners[:, 0].max()) + 1)
    y1 = min(h, math.ceil(corners[:, 1].max()) + 1)
    if x1 <= x0 or y1 <= y0:
        return False
    m = np.asarray(affine, np.float64).copy()
    m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)  # ROI pixel → crop pixel
    size = (x1 - x0, y1 - y0)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    face = cv2.warpAffine(crop, m, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = cv2.warpAffine(mask, m, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    roi = frame[y0:y1, x0:x1]
    a = alpha[..., None]
    roi[...] = np.clip(roi + a * (face.astype(np.float32) - roi), 0, 255).astype(np.uint8)
    return True


def split_view(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Left half ``before``, right half ``after``, a thin white divider; a new array."""
    out = after.copy()
    w = out.shape[1]
    half = w // 2
    out[:, :half] = before[:, :half]
    out[:, max(0, half - 1) : half + 1] = 255
    return out


def draw_hud(rgb: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """White text on a darkened panel in the top-left corner; returns the drawn array.

    Drawn in place when ``rgb`` is a writeable C-contiguous uint8 array, else on a contiguous copy. The text
    is drawn once, at thickness 1: OpenCV 5 renders the Hershey font names with a TrueType face whose
    glyphs get wider with thickness, so the usual trick of a thick dark outline under thin white text no
    longer lines up (the HUD came out garbled). A panel sized with ``cv2.getTextSize`` keeps it legible on
    any background with both OpenCV 4 and 5.
    """
    if not (rgb.flags.c_contiguous and rgb.flags.writeable):
        rgb = np.ascontiguousarray(rgb).copy()
    lines = [str(t) for t in lines if str(t)]
    if not lines:
        return rgb
    h, w = rgb.shape[:2]
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, min(0.6, w / 1280))
    sizes = [cv2.getTextSize(t, font, scale, 1) for t in lines]
    asc = max(sz[0][1] for sz in sizes)
    desc = max(sz[1] for sz in sizes)
    pad = max(2, asc // 3)
    step = asc + desc + pad
    x1 = min(w, 2 * pad + max(sz[0][0] for sz in sizes) + 2)
    y1 = min(h, pad + step * len(lines) + 1)
    panel = rgb[:y1, :x1]
    panel[...] = (panel.astype(np.uint16) * 2 // 7).astype(np.uint8)  # darken to ~30 %
    for i, text in enumerate(lines):
        org = (pad, pad + asc + step * i)
        cv2.putText(rgb, text, org, font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return rgb


# ------------------------------------------------------------------------------------------------ preview


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

        from .faces.track import FaceTracker, TrackerOptions
        from .faces.temporal import TemporalBlender, TemporalOptions, TrackNoise

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
        self._masks: dict[int, tuple[int, np.ndarray]] = {}  # track → (restorations at compute, mask)
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
        from .faces.track import is_scene_cut, small_grey

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
        while True:
            frame = self._to_detect.get(timeout=0.5)
            if frame is None:
                if self._to_detect.finished:
                    return
                continue
            job = self._detect_step(frame)
            if job is not None:
                self._to_restore.put(job)

    def _restore_loop(self) -> None:
        while True:
            job = self._to_restore.get(timeout=0.5)
            if job is None:
                if self._to_restore.finished:
                    return
                continue
            self._restore_step(*job)

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
        from .faces.align import align_face

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
            self._masks.pop(tid, None)
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
        if self.parser is None:
            return [self._box] * len(ids)
        every = self.options.parse_every
        need = [k for k, t in enumerate(ids)
                if t not in self._masks or self._restore_count[t] - self._masks[t][0] >= every]
        if need:
            fresh = self.parser.face_masks(crops[need])
            for j, k in enumerate(need):
                m = fresh[j]
                m = m.detach().float().cpu().numpy() if hasattr(m, "detach") else np.asarray(m, np.float32)
                self._masks[ids[k]] = (self._restore_count[ids[k]], np.ascontiguousarray(m, np.float32))
        return [self._masks[t][1] for t in ids]

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
                    aff = face_affine(lm, self.options.sar)
                except ValueError:
                    continue
                shown += reproject(out, r.crop, r.mask, aff)
        self.stats.faces_shown = shown
        if self.split:
            out = split_view(frame.rgb, out)
        return out


# ------------------------------------------------------------------------------------------------ sources


@dataclass(frozen=True)
class SourceSpec:
    """Where frames come from: ``kind`` is ``camera``, ``file`` or ``stream``."""

    kind: str
    target: str
    format: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    @property
    def realtime(self) -> bool:
        """Whether frames must be paced by their timestamps (a file), or arrive at their own pace."""
        return self.kind == "file"


def parse_source(text: str, fmt: str | None = None, options: Sequence[str] = (),
                 platform: str | None = None) -> SourceSpec:
    """``--source`` (+ ``--format``, ``--source-option K=V``) → a :class:`SourceSpec`; files are checked."""
    plat = sys.platform if platform is None else platform
    opts = []
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--source-option {item!r}: expected KEY=VALUE (e.g. video_size=1280x720)")
        opts.append((key, value))
    text = str(text).strip()
    if not text:
        raise UsageError("--source is empty; give a camera index, a device, a file or a URL")
    if text.isdigit() and fmt is None:
        if plat.startswith("linux"):
            return SourceSpec("camera", f"/dev/video{int(text)}", "v4l2", tuple(opts))
        if plat == "darwin":
            return SourceSpec("camera", text, "avfoundation", tuple(opts))
        raise UsageError("give the camera by name here: --format dshow --source \"video=CAMERA NAME\" "
                         "(list them with: ffmpeg -list_devices true -f dshow -i dummy)")
    if text.startswith("/dev/video"):
        return SourceSpec("camera", text, fmt or "v4l2", tuple(opts))
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif _URL.match(text):
        if text.lower().startswith("rtsp") and "rtsp_transport" not in dict(opts):
            opts.append(("rtsp_transport", "tcp"))
        return SourceSpec("stream", text, fmt, tuple(opts))
    if fmt is not None and fmt in ("v4l2", "avfoundation", "dshow", "video4linux2", "gdigrab", "x11grab"):
        return SourceSpec("camera", text, fmt, tuple(opts))
    from .media.probe import check_input_path

    path = check_input_path(text)
    return SourceSpec("file", str(path), fmt, tuple(opts))


class SourceLost(MediaError):
    """The source stopped before its end (truncated, removed, unplugged, disconnected)."""


@dataclass
class LiveSource:
    """Decode a :class:`SourceSpec` into :class:`Frame` objects whose ``pts`` is the source time in µs.

    :meth:`run` (in the capture thread) calls ``on_frame(frame)`` for each frame — paced by timestamps for
    a file, with ``loop`` restarting it (times keep increasing; the first frame of each pass carries
    ``meta["cut"]``) — and ``on_audio(packet, seconds)`` for the first audio track's packets. It returns
    ``"end"`` or ``"stopped"``, or raises :class:`SourceLost`. Each frame's ``meta["captured"]`` is the
    ``time.perf_counter()`` when it was ready to show.
    """

    spec: SourceSpec
    loop: bool = False
    open_timeout: float = 10.0
    read_timeout: float = 5.0
    width: int = 0
    height: int = 0
    rate: Fraction | None = None
    duration: float | None = None
    frames: int = 0
    skipped_packets: int = 0
    audio_template: Any = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _container: Any = field(default=None, repr=False)

    def describe(self) -> str:
        return self.spec.target

    def open(self) -> "LiveSource":
        """Open the source (raises :class:`MediaError` with one line) and read its video geometry."""
        self._container = self._open()
        v = self._container.streams.video[0]
        self.width, self.height = v.codec_context.width, v.codec_context.height
        rate = v.average_rate or v.guessed_rate or v.base_rate
        self.rate = Fraction(rate) if rate else None
        if self._container.duration:
            self.duration = self._container.duration / 1_000_000
        audio = self._container.streams.audio
        self.audio_template = audio[0] if audio else None
        return self

    def _open(self) -> Any:
        spec = self.spec
        kwargs: dict[str, Any] = {"options": dict(spec.options)} if spec.options else {}
        if spec.format:
            kwargs["format"] = spec.format
        if spec.kind != "file":
            kwargs["timeout"] = (self.open_timeout, self.read_timeout)
        try:
            container = av.open(spec.target, mode="r", **kwargs)
        except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
            what = {"camera": "camera", "file": "file", "stream": "stream"}[spec.kind]
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            hint = ""
            if spec.kind == "camera" and spec.format == "v4l2":
                hint = " (is the camera plugged in and not used by another program? try --source /dev/videoN)"
            raise MediaError(f"cannot open the {what} {spec.target}: {first}{hint}") from None
        if not container.streams.video:
            container.close()
            raise MediaError(f"{spec.target} has no video stream")
        return container

    def close(self) -> None:
        with self.lock:
            c, self._container = self._container, None
            self.audio_template = None
        if c is not None:
            c.close()

    def run(self, on_frame: Callable[[Frame], None], on_audio: Callable[[Any, float], None],
            stop: threading.Event) -> str:
        offset = 0.0
        index = 0
        passes = 0
        while True:
            if self._container is None:
                try:
                    container = self._open()
                except MediaError as exc:
                    raise SourceLost(f"the source could not be reopened for --loop: {exc}") from None
                with self.lock:
                    self._container = container
            end, base = self._play(self._container, on_frame, on_audio, stop, offset, passes, index)
            index = self.frames
            if end is None:
                return "stopped"
            self.close()
            if not (self.loop and self.spec.kind == "file") or index == 0:
                return "end"
            offset += max(end - base, 1e-3)
            passes += 1

    def _play(self, container: Any, on_frame: Callable[[Frame], None], on_audio: Callable[[Any, float], None],
              stop: threading.Event, offset: float, passes: int, index: int) -> tuple[float | None, float]:
        """One pass over the container; returns (end time of the last frame or None if stopped, base time)."""
        v = container.streams.video[0]
        v.thread_type = "AUTO" if self.spec.kind == "file" else "SLICE"
        audio = container.streams.audio[0] if container.streams.audio else None
        with self.lock:
            self.audio_template = audio
        vtb = v.time_base or Fraction(1, 90000)
        rate = v.average_rate or v.guessed_rate
        step = float(1 / rate) if rate else 1 / 30
        base = float(v.start_time * vtb) if v.start_time is not None else None
        last_t: float | None = None
        wall0: float | None = None
        first_of_pass = passes > 0
        streams = [v] + ([audio] if audio is not None else [])
        demux = container.demux(*streams)
        while True:
            if stop.is_set():
                return None, base or 0.0
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                first = (str(exc).strip().splitlines() or ["read error"])[0]
                raise SourceLost(f"the source stopped after {self.frames} frames ({first})") from None
            if audio is not None and packet.stream.index == audio.index:
                if packet.size and packet.pts is not None:
                    t = float(packet.pts * packet.time_base) - (base or 0.0) + offset
                    on_audio(packet, t)
                continue
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                if packet.size:
                    self.skipped_packets += 1
                continue
            for vf in decoded:
                if vf.pts is not None:
                    t_src = float(vf.pts * (vf.time_base or vtb))
                else:
                    t_src = (last_t + step) if last_t is not None else 0.0
                if base is None:
                    base = t_src
                t = t_src - base + offset
                if last_t is not None and t <= last_t:
                    t = last_t + 1e-6
                if self.spec.realtime:
                    now = time.perf_counter()
                    if wall0 is None:
                        wall0 = now - (t - offset)  # the pass starts now
                    due = wall0 + (t - offset)
                    if due - now > 0:
                        if stop.wait(due - now):
                            return None, base
                    elif now - due > 1.0:  # far behind (a stall): restart the clock rather than rush
                        wall0 += now - due
                rgb = vf.to_ndarray(format="rgb24")
                frame = Frame(index=self.frames, pts=round(t / LIVE_TIME_BASE), time_base=LIVE_TIME_BASE,
                              duration=round(step / LIVE_TIME_BASE), rgb=rgb)
                frame.meta["captured"] = time.perf_counter()
                if first_of_pass:
                    frame.meta["cut"] = True
                    first_of_pass = False
                self.frames += 1
                last_t = t
                on_frame(frame)
        base = base or 0.0
        if last_t is None:
            if self.frames == 0:
                raise SourceLost(f"{self.spec.target}: no video frame could be decoded")
            raise SourceLost(f"the source stopped after {self.frames} frames (no more frames on --loop)")
        end = last_t + step
        expected = self._expected_duration(container, v)
        short = bool(v.frames) and self.frames - index < v.frames - 1
        if expected and (end - offset) < expected - max(3 * step, 0.01 * expected):
            short = True
        if self.spec.kind == "file" and short:
            of = f" of {expected:.2f} s" if expected else ""
            raise SourceLost(f"the source stopped at {end - offset:.2f} s{of} (truncated or removed?)")
        return end, base

    @staticmethod
    def _expected_duration(container: Any, v: Any) -> float | None:
        if v.duration and v.time_base:
            return float(v.duration * v.time_base)
        if container.duration:
            return container.duration / 1_000_000
        return None


# ------------------------------------------------------------------------------------------------ recording


class LiveRecorder:
    """Write shown frames (and the source's audio) to ``path`` via a temporary name; :meth:`close` renames.

    Video: libx264 (yuv420p, 4:4:4 for odd sizes) at the shown frames' source times, starting at 0.
    Audio: ``audio_template`` (an input audio stream) is copied packet for packet when the container takes
    its codec; :meth:`add_audio` takes packets with their source time in seconds (earlier packets may be
    handed in with ``backlog``). Thread-safe: video and audio may come from different threads.
    """

    def __init__(self, path: str | os.PathLike, size: tuple[int, int], rate: Fraction | None = None, *,
                 audio_template: Any = None, backlog: Sequence[tuple[Any, float]] = (),
                 notice: Callable[[str], None] = lambda _m: None, crf: int = 20, preset: str = "veryfast",
                 overwrite: bool = False) -> None:
        from .media.sink import container_for
        from .pipeline import temporary_path

        self.path = Path(path)
        fmt = container_for(self.path)
        parent = self.path.parent
        if not parent.is_dir():
            raise OutputError(f"output folder {parent} does not exist")
        if self.path.exists() and not overwrite:
            raise OutputError(f"{self.path} already exists; pass --overwrite to replace it")
        self.tmp = temporary_path(self.path)
        self.width, self.height = size
        self._lock = threading.Lock()
        self._t0: float | None = None
        self._last_pts = -1
        self._early: deque = deque(backlog)
        self.frames = 0
        self.audio_packets = 0
        try:
            self._out = av.open(str(self.tmp), mode="w", format=fmt)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot create {self.path}: {exc}") from None
        try:
            v = self._out.add_stream("libx264", rate=rate or Fraction(30))
            v.width, v.height = self.width, self.height
            odd = self.width % 2 or self.height % 2
            v.pix_fmt = "yuv444p" if odd else "yuv420p"
            v.time_base = Fraction(1, 90000)
            v.codec_context.time_base = Fraction(1, 90000)
            v.codec_context.options = {"crf": str(crf), "preset": preset}
            self._video = v
            self._audio = None
            if audio_template is not None:
                codec = audio_template.codec_context.name if audio_template.codec_context else None
                mp4_ok = {"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac", "mp2"}
                if codec in self._out.supported_codecs and (fmt != "mp4" or codec in mp4_ok):
                    self._audio = self._out.add_stream_from_template(audio_template)
                else:
                    notice(f"notice: the source's {codec} audio cannot be copied into {self.path.suffix}; "
                           "recording without audio (use .mkv)")
        except BaseException:
            self.abort()
            raise

    @property
    def has_audio(self) -> bool:
        return self._audio is not None

    def write(self, rgb: np.ndarray, t: float) -> None:
        """Encode one shown frame (RGB uint8) shown at source time ``t`` seconds."""
        if rgb.shape[0] != self.height or rgb.shape[1] != self.width:
            rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
        with self._lock:
            if self._out is None:
                return
            if self._t0 is None:
                self._t0 = t
                early, self._early = list(self._early), deque()
                for packet, at in early:
                    self._mux_audio(packet, at)
            pts = max(round((t - self._t0) * 90000), self._last_pts + 1)
            self._last_pts = pts
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(
                format=self._video.pix_fmt)
            vf.pts = pts
            vf.time_base = Fraction(1, 90000)
            self._out.mux(self._video.encode(vf))
            self.frames += 1

    def add_audio(self, packet: Any, t: float) -> None:
        if self._audio is None:
            return
        with self._lock:
            if self._out is None:
                return
            if self._t0 is None:
                self._early.append((packet, t))
                while self._early and t - self._early[0][1] > _AUDIO_BACKLOG_S:
                    self._early.popleft()
                return
            self._mux_audio(packet, t)

    def _mux_audio(self, packet: Any, t: float) -> None:
        if self._audio is None or t < self._t0 - 1e-6 or packet.pts is None:
            return
        tb = packet.time_base
        copy = av.Packet(bytes(packet))
        new_pts = round((t - self._t0) / tb)
        shift = packet.pts - new_pts
        copy.pts = new_pts
        copy.dts = (packet.dts - shift) if packet.dts is not None else new_pts
        copy.duration = packet.duration
        copy.time_base = tb
        copy.is_keyframe = packet.is_keyframe
        if copy.dts < 0:
            return
        copy.stream = self._audio
        self._out.mux(copy)
        self.audio_packets += 1

    def close(self) -> Path | None:
        """Flush and rename into place; returns the path, or None (file removed) if no frame was written."""
        with self._lock:
            out, self._out = self._out, None
            if out is None:
                return None
            try:
                if self.frames:
                    out.mux(self._video.encode(None))
            finally:
                out.close()
        if not self.frames:
            self.tmp.unlink(missing_ok=True)
            return None
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        with self._lock:
            out, self._out = self._out, None
        try:
            if out is not None:
                out.close()
        except Exception:  # noqa: BLE001 - the file is deleted anyway
            pass
        self.tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ session


@dataclass(frozen=True)
class LiveOptions:
    """Everything ``vidrestore live`` can be told (the CLI builds one from its arguments)."""

    source: str = "0"
    format: str | None = None
    source_options: tuple[str, ...] = ()
    loop: bool = False
    model: str = "gfpgan-1.4"
    device: str | None = None
    precision: str = "fp32"
    detector: str = "retinaface_mobile0.25"
    parse: bool = True
    temporal: bool = True
    min_face: float = 0.0
    serve: str | None = None
    record: str | None = None
    overwrite: bool = False
    window: bool = True
    save_dir: str = "."
    weights_dir: str | None = None
    duration: float | None = None
    split: bool = False
    hud: bool = True

    def __post_init__(self) -> None:
        if self.duration is not None and self.duration <= 0:
            raise UsageError(f"--duration must be positive, got {self.duration}")


@dataclass
class LiveStats:
    """What a live session did (returned by :func:`run_live`)."""

    frames_captured: int = 0
    frames_shown: int = 0
    dropped: int = 0
    seconds: float = 0.0
    end: str = ""
    source_fps: float = 0.0  # nominal (file/stream header), else measured
    latency_ms: list[float] = field(default_factory=list)  # capture → shown, per shown frame (last 10 000)
    restore_ms: list[float] = field(default_factory=list)
    detect_ms: list[float] = field(default_factory=list)
    restorations: int = 0
    recordings: list[Path] = field(default_factory=list)
    snapshots: list[Path] = field(default_factory=list)
    out_of_order: int = 0
    first_shown: float | None = None  # perf_counter of the first and last shown frame
    last_shown: float | None = None

    @property
    def shown_fps(self) -> float:
        """Shown frames per second between the first and the last shown frame."""
        if self.frames_shown < 2 or self.first_shown is None or self.last_shown is None:
            return 0.0
        span = self.last_shown - self.first_shown
        return (self.frames_shown - 1) / span if span > 0 else 0.0


class _Rate:
    """Frames per second over the last ~second of timestamps."""

    def __init__(self) -> None:
        self._t: deque = deque(maxlen=120)

    def tick(self, t: float | None = None) -> None:
        self._t.append(time.perf_counter() if t is None else t)

    def fps(self) -> float:
        if len(self._t) < 2:
            return 0.0
        now = self._t[-1]
        recent = [x for x in self._t if now - x <= 1.0] or list(self._t)[-2:]
        if len(recent) < 2:
            recent = list(self._t)[-2:]
        span = recent[-1] - recent[0]
        return (len(recent) - 1) / span if span > 0 else 0.0


def _load_models(options: LiveOptions, notice: Callable[[str], None]) -> tuple[Any, Any, Any]:
    from .options import MODELS

    if options.model == "none":
        return None, None, None
    is_file = Path(options.model).suffix.lower() in (".pth", ".pt")
    if options.model not in MODELS and not is_file:
        raise UsageError(f"unknown --model {options.model!r}; choose one of {', '.join(MODELS)} or give a .pth file")
    from .faces.detect import load_detector
    from .restore import load_restorer, resolve_run_weights

    # every weight file found before any model is built; all missing ones named in one message
    resolve_run_weights(options.weights_dir, model=options.model, detector=options.detector, parse=options.parse)
    restorer = load_restorer(options.model, device=options.device, precision=options.precision,
                             batch_size=4, weights_dir=options.weights_dir)
    device = restorer.device
    detector = load_detector(options.detector, device=device, weights_dir=options.weights_dir)
    parser = None
    if options.parse:
        from .faces.parse import load_parser

        parser = load_parser("parsenet", device=device, weights_dir=options.weights_dir)
    return detector, restorer, parser


def _unique(path: Path) -> Path:
    if not path.exists():
        return path
    for k in range(2, 10_000):
        cand = path.with_name(f"{path.stem}-{k}{path.suffix}")
        if not cand.exists():
            return cand
    raise OutputError(f"no free name beside {path}")


def run_live(
    options: LiveOptions,
    *,
    detector: Any | None = None,
    restorer: Any | None = None,
    parser: Any | None = None,
    notice: Callable[[str], None] | None = None,
    on_shown: Callable[[Frame, np.ndarray], None] | None = None,
    on_start: Callable[[Any], None] | None = None,
    stop: threading.Event | None = None,
    window_factory: Callable[[], Any] | None = None,
) -> LiveStats:
    """Run a live session until the source ends, ``q``/Esc, ``stop`` is set, ``--duration`` or Ctrl-C.

    ``detector``/``restorer``/``parser`` may be given as objects (else loaded from ``options``; a given
    ``restorer`` with no ``detector`` shows frames as they are). ``on_shown(frame, shown)`` is called for
    every shown frame; ``on_start(server_or_None)`` once everything is running. Raises
    :class:`~vidrestore.errors.VidrestoreError` (one line) for a source that cannot be opened or is lost;
    a recording under way is finished and kept in every case.
    """
    from .live_window import PreviewWindow, display_problem

    say = notice or (lambda m: print(m, file=sys.stderr, flush=True))
    use_window = options.window
    headless = None
    if use_window and window_factory is None:
        problem = display_problem()  # never reach cv2.namedWindow without a display: it aborts the process
        if problem is not None:
            if not (options.serve or options.record):
                raise UsageError(f"{problem}: add --serve [HOST:]PORT to watch the preview in a browser "
                                 "(or --record OUT.mp4 to only record)")
            use_window = False
            headless = f"notice: {problem}: no window; " + ("the preview is served over HTTP" if options.serve
                                                            else f"recording to {options.record} only")
    spec = parse_source(options.source, options.format, options.source_options)
    if options.record:
        from .media.sink import container_for

        container_for(Path(options.record))
        if Path(options.record).exists() and not options.overwrite:
            raise OutputError(f"{options.record} already exists; pass --overwrite to replace it")
    save_dir = Path(options.save_dir)
    if restorer is None and detector is None and parser is None:
        detector, restorer, parser = _load_models(options, say)
    source = LiveSource(spec, loop=options.loop).open()
    preview = LivePreview(detector, restorer, parser,
                          PreviewOptions(min_face=options.min_face, temporal=options.temporal))
    preview.split = options.split
    stats = LiveStats()
    if source.rate:
        stats.source_fps = float(source.rate)
    stop = stop or threading.Event()
    display = Mailbox()
    src_rate, shown_rate = _Rate(), _Rate()
    audio_backlog: deque = deque()
    rec_lock = threading.Lock()
    state: dict[str, Any] = {"recorder": None, "record_used": False, "end": None, "error": None}

    def on_frame(frame: Frame) -> None:
        src_rate.tick(frame.meta["captured"])
        preview.submit(frame)
        display.put(frame)

    def on_audio(packet: Any, t: float) -> None:
        audio_backlog.append((packet, t))
        while audio_backlog and t - audio_backlog[0][1] > _AUDIO_BACKLOG_S:
            audio_backlog.popleft()
        with rec_lock:
            rec = state["recorder"]
        if rec is not None:
            rec.add_audio(packet, t)

    def capture() -> None:
        try:
            end = source.run(on_frame, on_audio, stop)
            state["end"] = state["end"] or end
        except BaseException as exc:  # noqa: BLE001 - reported by the display loop
            state["error"] = exc
        finally:
            display.close()

    def start_recording(path: Path | None = None) -> None:
        if path is None:
            if options.record and not state["record_used"]:
                path = Path(options.record)
            else:
                base = Path(options.record) if options.record else save_dir / time.strftime("vidrestore-live-%Y%m%d-%H%M%S.mp4")
                path = _unique(base)
        with source.lock:
            template = source.audio_template
            rec = LiveRecorder(path, (source.width, source.height), source.rate, audio_template=template,
                               backlog=list(audio_backlog), notice=say,
                               overwrite=options.overwrite and path == Path(options.record or ""))
        state["record_used"] = True
        with rec_lock:
            state["recorder"] = rec
        say(f"recording to {path}" + ("" if rec.has_audio or template is None else " (without audio)"))

    def stop_recording() -> None:
        with rec_lock:
            rec, state["recorder"] = state["recorder"], None
        if rec is not None:
            done = rec.close()
            if done is not None:
                stats.recordings.append(done)
                say(f"recording saved: {done} ({rec.frames} frames)")

    def status() -> dict[str, Any]:
        last = preview.stats.last_restore_ms
        return {"source_fps": round(src_rate.fps(), 2), "shown_fps": round(shown_rate.fps(), 2),
                "restore_ms": None if last is None else round(last, 1), "faces": preview.stats.faces_shown,
                "split": preview.split, "recording": state["recorder"] is not None}

    server = None
    window = None
    capture_thread = threading.Thread(target=capture, name="vidrestore-live-capture", daemon=True)
    started = time.perf_counter()
    last_index = -1
    view: np.ndarray | None = None
    try:
        if headless is not None:
            say(headless)
        if options.serve:
            from .live_server import PreviewServer, parse_address

            host, port = parse_address(options.serve)
            server = PreviewServer(host, port, on_toggle=preview.toggle_split, status=status).start()
            say(f"serving the preview at {server.url} (Ctrl-C to stop)")
        if use_window:
            window = window_factory() if window_factory is not None else PreviewWindow(f"vidrestore live: {spec.target}")
        if options.record:
            start_recording()
        preview.start()
        capture_thread.start()
        if on_start is not None:
            on_start(server)
        while not stop.is_set():
            if options.duration is not None and time.perf_counter() - started >= options.duration:
                state["end"] = "duration"
                break
            frame = display.get(timeout=0.02 if window is not None else 0.1)
            action = None
            if frame is None:
                if display.finished:
                    break
                if window is not None:
                    action = window.poll(1)
            else:
                if frame.index <= last_index:
                    stats.out_of_order += 1
                    continue
                last_index = frame.index
                shown = preview.render(frame)
                now = time.perf_counter()
                shown_rate.tick(now)
                stats.frames_shown += 1
                if stats.first_shown is None:
                    stats.first_shown = now
                stats.last_shown = now
                if len(stats.latency_ms) < 10_000:
                    stats.latency_ms.append(1000 * (now - frame.meta["captured"]))
                with rec_lock:
                    rec = state["recorder"]
                if rec is not None:
                    rec.write(shown, frame.time)
                view = shown
                if options.hud and (window is not None or server is not None):
                    view = draw_hud(shown.copy(), _hud_lines(status()))
                if server is not None:
                    server.publish(view)
                if window is not None:
                    action = window.show(view)
                if on_shown is not None:
                    on_shown(frame, shown)
            if action == "quit":
                state["end"] = "quit"
                break
            if action == "split":
                preview.toggle_split()
            elif action == "snapshot" and view is not None:
                stats.snapshots.append(_snapshot(view, save_dir))
                say(f"snapshot saved: {stats.snapshots[-1]}")
            elif action == "record":
                if state["recorder"] is None:
                    start_recording()
                else:
                    stop_recording()
    except KeyboardInterrupt:
        state["end"] = "interrupted"
    finally:
        stop.set()
        if capture_thread.is_alive():
            capture_thread.join(timeout=10)
        if window is not None:
            window.close()
        if server is not None:
            server.stop()
        try:
            stop_recording()
        finally:
            source.close()
        preview.close(timeout=1.0)
        if preview.busy:  # a daemon thread still inside torch at exit would abort the interpreter
            say("waiting for the restoration under way to finish...")
            preview.close(timeout=300.0)
        stats.seconds = time.perf_counter() - started
        stats.frames_captured = source.frames
        stats.dropped = display.dropped
        stats.restore_ms = list(preview.stats.restore_ms)
        stats.detect_ms = list(preview.stats.detect_ms)
        stats.restorations = preview.stats.restorations
    if state["error"] is not None:
        raise state["error"]
    stats.end = state["end"] or "end"
    return stats


def _hud_lines(s: dict[str, Any]) -> list[str]:
    restore = "-" if s["restore_ms"] is None else f"{s['restore_ms']:.0f} ms"
    flags = (" SPLIT" if s["split"] else "") + (" REC" if s["recording"] else "")
    return [f"src {s['source_fps']:.1f} fps  shown {s['shown_fps']:.1f} fps",
            f"restore {restore}  faces {s['faces']}{flags}"]


def _snapshot(rgb: np.ndarray, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = _unique(folder / time.strftime("vidrestore-live-%Y%m%d-%H%M%S.png"))
    tmp = path.with_name(f".{path.name}.partial.png")
    if not cv2.imwrite(str(tmp), np.ascontiguousarray(rgb[..., ::-1])):
        raise OutputError(f"cannot write the snapshot {path}")
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------------------------ command line


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(prog: str = "vidrestore live") -> argparse.ArgumentParser:
    d = LiveOptions()
    p = _Parser(
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
        model=args.model, device=args.device, precision=args.precision, detector=args.detector,
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


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m vidrestore.live``), with the CLI's one-line errors."""
    try:
        return run(build_parser().parse_args(argv))
    except VidrestoreError as exc:
        print(f"vidrestore live: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
