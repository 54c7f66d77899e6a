"""Face tracking: association, a Kalman filter per track, and a fixed-lag smoother for files.

Model
-----
Each track runs one ``filterpy.kalman.KalmanFilter`` over the 5 landmarks (10 coordinates) with a
constant-velocity model: state ``[x1, y1, …, x5, y5, vx1, vy1, …, vx5, vy5]`` (20), measurement the 10
coordinates, white-noise acceleration. Coordinates are independent, so this is exactly ten 1-D
constant-velocity filters sharing their matrices. Noise is expressed as a fraction of the face size
(``Face.size`` of the latest matched detection), so a close-up and a small face in the background are
smoothed alike: the defaults (``measurement_noise=0.02``, ``process_noise=0.0045``) are 2 px landmark
noise and 0.45 px/frame² acceleration noise at a 100 px face.

Measured with these defaults (tests/test_track.py, face of 100 px moving on a sinusoid at up to 7 px/frame,
2 px landmark noise; jitter as defined in :func:`landmark_jitter` against the true path): the causal
filter leaves ≈ 0.39× the raw frame-to-frame jitter with ≈ 2.1 px mean offset (mostly its lag on the
curve); the fixed-lag smoother (``lag=6``) leaves ≈ 0.08× with ≈ 1.0 px mean offset (Euclidean, per
landmark; mostly the residual low-frequency noise — the raw detections are 2.5 px off).

Association (each frame where detection ran): tracks are predicted to the frame; the cost of a
(track, detection) pair is ``d + (1 - IoU)`` where ``d`` is the mean landmark distance divided by the
track's face size and IoU is between the predicted and the detected box. Pairs with ``d >
landmark_gate`` or ``IoU < iou_gate`` are forbidden; the rest are assigned by
``scipy.optimize.linear_sum_assignment``. Unmatched detections start tentative tracks.

Track life
----------
* tentative → confirmed after ``min_hits`` matched detections; the public ``track_id`` is given at
  confirmation (so ids are 0, 1, 2, … in order of confirmation, never reused by the same tracker, not
  even after :meth:`FaceTracker.reset`). A tentative track that misses once is dropped.
* ``detections=None`` means "the detector did not run on this frame" (detect every k frames): tracks are
  predicted only, no miss is counted.
* A miss is a frame where detection ran and did not match the track. A confirmed track survives
  ``max_misses`` consecutive misses and ends on the next one; it also ends when ``max_age`` frames
  have passed since its last matched detection (whatever the detection schedule).
* Causal output (:meth:`FaceTracker.update`): confirmed tracks with at most ``coast`` consecutive misses,
  at their filtered (posterior) landmarks. The box is the detections' box (running mean) relative to the
  landmarks (centroid and RMS spread), moved with the filtered landmarks.

Streaming protocol for the pipeline (:class:`FixedLagSmoother`)
---------------------------------------------------------------
::

    smoother = FixedLagSmoother(TrackerOptions(lag=6))         # causal=True for live: lag 0
    for frame_index, frame in frames:                          # strictly increasing indices
        dets = detector(frame) if frame_index % k == 0 else None
        for idx, faces in smoother.push(frame_index, dets, is_cut=cut):
            ...                                                # faces of frame idx, sorted by track_id
    for idx, faces in smoother.flush():                        # end of stream
        ...

* ``push`` returns the frames that became ready, oldest first: normally exactly one, the frame pushed
  ``lag`` frames earlier; none during the first ``lag`` frames; at a cut (``is_cut=True``), every frame
  still pending before the cut (smoothed with what was known up to the cut) — the tracker is then reset
  (all tracks end, new ids) and the cut frame starts the new segment.
* ``flush`` returns every frame still pending and resets the tracker (``flush`` then ``push(…,
  is_cut=False)`` is the same as ``push(…, is_cut=True)``).
* Every pushed frame comes out exactly once, in order, also when it has no faces (an empty list). The
  pipeline therefore holds at most ``lag + 1`` frames (or their restored faces) in a queue.
* The faces of frame ``f`` carry RTS-smoothed landmarks: the Kalman posteriors of frames
  ``f … f+lag`` are run backward with ``KalmanFilter.rts_smoother`` (an exact fixed-lag smoother).
* Manoeuvres (``maneuver_gate``): a detection whose landmark centroid is too far from the prediction
  (normalized innovation squared above the gate) widens that step's process noise (:func:`maneuver_noise`),
  in the filter and in the step's ``Q`` the backward pass reads, so the smoothed path turns at that frame.
  Without it a constant-acceleration smoother overshoots a face that stops dead by most of its lag's worth
  of motion (9 px at 10 px/frame on real detections, bench/stability.py); with it ≤ 2 px.
* Which tracks appear in frame ``f``: tracks confirmed by the time ``f`` is output — so a track's
  tentative first frames get faces when it is confirmed within ``lag`` frames — and only where the
  track is supported: ``f`` lies before its latest matched detection (gaps of misses or of frames
  without detection are bridged by the smoother), or after it with no miss in between (frames
  without detection are coasted). Frames after a track's last detection that are followed only by misses
  are left out, since the future shows the face is gone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from filterpy.kalman import KalmanFilter
from scipy.optimize import linear_sum_assignment

from .face import Face

__all__ = [
    "DEFAULT_CUT_THRESHOLD",
    "FaceTracker",
    "FixedLagSmoother",
    "RunningJitter",
    "TrackerOptions",
    "box_iou",
    "is_scene_cut",
    "landmark_jitter",
    "mean_offset",
    "scene_cut_score",
    "small_grey",
]

#: Default for :func:`is_scene_cut`: motion-tolerant mean absolute difference of 64×36 grey thumbnails in [0, 1].
DEFAULT_CUT_THRESHOLD = 0.03

_NDIM = 10  # 5 landmarks × (x, y)


@dataclass(frozen=True)
class TrackerOptions:
    """Tracker and smoother settings.

    Noises are fractions of the face size (× 100 = pixels at a 100 px face): ``measurement_noise`` the
    landmark noise std, ``process_noise`` the std of the white acceleration per frame. Their ratio sets how
    hard the filter smooths (larger ``process_noise``: less lag, more jitter).
    ``iou_gate`` / ``landmark_gate``: a detection can match a track only if the IoU of the boxes is at
    least ``iou_gate`` and the mean landmark distance is at most ``landmark_gate`` face sizes.
    ``min_hits``: matched detections to confirm a track. ``max_misses``: consecutive misses (frames where
    detection ran and missed) a confirmed track survives. ``max_age``: frames since the last matched
    detection after which a track ends anyway. ``coast``: consecutive misses during which the causal
    output still shows the predicted face. ``lag``: look-ahead of :class:`FixedLagSmoother` in frames;
    ``causal=True`` makes the smoother pass the causal output straight through (lag 0, live preview).
    ``maneuver_gate``: normalized innovation squared of the landmarks' centroid (2 degrees of freedom; 13.8 is
    the 99.9 % point) above which a matched detection is taken as a manoeuvre (a stop, a start, a jerk): see
    :func:`maneuver_noise`.
    None: off.
    """

    measurement_noise: float = 0.02
    process_noise: float = 0.0045
    initial_velocity: float = 0.1
    iou_gate: float = 0.05
    landmark_gate: float = 0.5
    min_hits: int = 2
    max_misses: int = 5
    max_age: int = 30
    coast: int = 1
    lag: int = 6
    causal: bool = False
    motion: str = "velocity"
    jerk_noise: float = 0.0015
    maneuver_gate: float | None = None

    def __post_init__(self) -> None:
        if self.measurement_noise <= 0 or self.process_noise <= 0 or self.initial_velocity <= 0:
            raise ValueError("TrackerOptions: noises must be > 0")
        if self.min_hits < 1:
            raise ValueError("TrackerOptions: min_hits must be >= 1")
        if self.max_misses < 0 or self.max_age < 1 or self.coast < 0 or self.lag < 0:
            raise ValueError("TrackerOptions: max_misses, coast and lag must be >= 0, max_age >= 1")
        if self.motion not in ("velocity", "acceleration") or self.jerk_noise <= 0:
            raise ValueError("TrackerOptions: motion must be 'velocity' or 'acceleration', jerk_noise > 0")
        if self.maneuver_gate is not None and self.maneuver_gate <= 0:
            raise ValueError("TrackerOptions: maneuver_gate must be > 0 (or None: off)")
        if not 0.0 <= self.iou_gate <= 1.0 or self.landmark_gate <= 0:
            raise ValueError("TrackerOptions: iou_gate must be in [0, 1], landmark_gate > 0")

    @property
    def effective_lag(self) -> int:
        return 0 if self.causal else self.lag


# --------------------------------------------------------------------------------------------- maths


def _order(opts: TrackerOptions) -> int:
    return 3 if opts.motion == "acceleration" else 2


def motion_matrices(size: float, opts: TrackerOptions, steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(F, Q)`` of the chosen motion model (``opts.motion``) over ``steps`` frames."""
    if opts.motion != "acceleration":
        return constant_velocity_matrices(size, opts, steps)
    return constant_acceleration_matrices(size, opts, steps)


def constant_acceleration_matrices(size: float, opts: TrackerOptions, steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(F, Q)`` of the 30-state constant-acceleration model (positions, velocities, accelerations).

    ``Q`` is the continuous white-jerk covariance ``q² [[dt⁵/20, dt⁴/8, dt³/6], [dt⁴/8, dt³/3, dt²/2],
    [dt³/6, dt²/2, dt]]`` per coordinate, with ``q = jerk_noise * size``. On curved paths it follows the
    curvature that a constant-velocity model smooths away as lag.
    """
    dt = float(steps)
    eye = np.eye(_NDIM)
    zero = np.zeros_like(eye)
    f = np.block([[eye, dt * eye, 0.5 * dt * dt * eye], [zero, eye, dt * eye], [zero, zero, eye]])
    q = (opts.jerk_noise * size) ** 2
    q3 = q * np.array(
        [[dt**5 / 20, dt**4 / 8, dt**3 / 6], [dt**4 / 8, dt**3 / 3, dt**2 / 2], [dt**3 / 6, dt**2 / 2, dt]]
    )
    return f, np.kron(q3, eye)


def constant_velocity_matrices(size: float, opts: TrackerOptions, steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(F, Q)`` of the 20-state constant-velocity model over ``steps`` frames for a face of ``size`` px.

    State order: 10 positions then 10 velocities. ``Q`` is the discrete white-noise-acceleration
    covariance ``q² [[dt⁴/4, dt³/2], [dt³/2, dt²]]`` per coordinate, with ``q = process_noise * size``.
    """
    dt = float(steps)
    eye = np.eye(_NDIM)
    f = np.block([[eye, dt * eye], [np.zeros_like(eye), eye]])
    q = (opts.process_noise * size) ** 2
    q2 = q * np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]])
    return f, np.kron(q2, eye)


def maneuver_noise(innovation: np.ndarray, r: float, order: int) -> np.ndarray:
    """Extra process noise for one step where the innovation ``y`` (10,) failed the gate: per coordinate,
    the part of ``y²`` the measurement noise ``r`` does not explain, on the velocity (and acceleration) and a
    quarter of it on the position. Added to the predicted covariance and to the step's ``Q`` (the RTS pass
    reads it), it lets the state change course at this frame: a face that stops dead is followed within a
    frame or two instead of overshooting by its lag's worth of motion."""
    y2 = np.maximum(np.asarray(innovation, np.float64) ** 2 - r, 0.0)
    return np.diag(np.concatenate([0.25 * y2, y2] + [y2] * (order - 2)))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between boxes ``a`` (N, 4) and ``b`` (M, 4), (x1, y1, x2, y2)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _landmark_frame(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Centroid (2,) and RMS spread of (5, 2) landmarks."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    c = lm.mean(axis=0)
    s = float(np.sqrt(((lm - c) ** 2).sum(axis=1).mean()))
    return c, max(s, 1e-6)


def _box_relative(box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    c, s = _landmark_frame(landmarks)
    return (np.asarray(box, dtype=np.float64).reshape(2, 2) - c) / s


def _box_absolute(rel: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    c, s = _landmark_frame(landmarks)
    return (rel * s + c).reshape(4)


def landmark_jitter(landmarks_seq: np.ndarray, truth: np.ndarray | None = None) -> float:
    """Jitter of a landmark sequence (T, 5, 2), in pixels.

    Without ``truth``: the mean over frames ``1 … T-2`` and the 5 landmarks of the second-difference
    magnitude ``|x[t+1] - 2 x[t] + x[t-1]|`` — what is left after removing locally linear motion; a smooth
    path scores near 0, white noise of std σ per coordinate about 3.07 σ.
    With ``truth`` (T, 5, 2): the mean over frames ``1 … T-1`` and landmarks of the frame-to-frame change of
    the error, ``|(x[t] - g[t]) - (x[t-1] - g[t-1])|`` — how much the estimate wobbles around the true
    path from one frame to the next; white noise of std σ scores about 1.77 σ.
    Fewer frames than needed give 0.0.
    """
    x = np.asarray(landmarks_seq, dtype=np.float64).reshape(-1, 5, 2)
    if truth is None:
        if len(x) < 3:
            return 0.0
        d = x[2:] - 2 * x[1:-1] + x[:-2]
    else:
        g = np.asarray(truth, dtype=np.float64).reshape(x.shape)
        if len(x) < 2:
            return 0.0
        d = np.diff(x - g, axis=0)
    return float(np.linalg.norm(d, axis=-1).mean())


@dataclass
class RunningJitter:
    """:func:`landmark_jitter` (without truth) of a sequence fed one frame at a time, in constant memory.

    Keeps the last two landmark sets and a running sum of second-difference magnitudes: after pushing
    ``x[0] … x[T-1]``, :attr:`value` is ``landmark_jitter(np.stack(x))`` (``None`` below 3 frames).
    """

    total: float = 0.0
    count: int = 0
    _prev: np.ndarray | None = field(default=None, repr=False)
    _prev2: np.ndarray | None = field(default=None, repr=False)

    def push(self, landmarks: np.ndarray) -> None:
        x = np.asarray(landmarks, dtype=np.float64).reshape(5, 2).copy()
        if self._prev is not None and self._prev2 is not None:
            d = x - 2 * self._prev + self._prev2
            self.total += float(np.linalg.norm(d, axis=-1).sum())
            self.count += len(d)
        self._prev2, self._prev = self._prev, x

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None


def mean_offset(est: np.ndarray, truth: np.ndarray) -> float:
    """Mean Euclidean distance between estimated and true landmarks (…, 2), in pixels."""
    e = np.asarray(est, dtype=np.float64)
    g = np.asarray(truth, dtype=np.float64).reshape(e.shape)
    return float(np.linalg.norm(e - g, axis=-1).mean())


def small_grey(frame: np.ndarray, size: tuple[int, int] = (64, 36)) -> np.ndarray:
    """Area-averaged grey thumbnail (h, w) float32 in [0, 1] of an RGB uint8 frame (H, W, 3); size = (w, h)."""
    img = np.asarray(frame)
    grey = img.astype(np.float32)
    if grey.ndim == 3:
        grey = grey[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    if img.dtype == np.uint8:
        grey = grey / 255.0
    w, h = size
    rows = np.linspace(0, grey.shape[0], h + 1).astype(int)
    cols = np.linspace(0, grey.shape[1], w + 1).astype(int)
    if np.any(np.diff(rows) == 0) or np.any(np.diff(cols) == 0):
        raise ValueError(f"frame {grey.shape[:2]} is smaller than the thumbnail {size[::-1]}")
    sums = np.add.reduceat(np.add.reduceat(grey, rows[:-1], axis=0), cols[:-1], axis=1)
    counts = np.diff(rows)[:, None] * np.diff(cols)[None, :]
    return (sums / counts).astype(np.float32)


def scene_cut_score(prev_small: np.ndarray, cur_small: np.ndarray) -> float:
    """Motion-tolerant difference of two grey thumbnails in [0, 1] (see :func:`small_grey`).

    For each pixel of ``cur_small``, the smallest absolute difference to the 3×3 neighbourhood of the same
    pixel in ``prev_small`` (edges repeated); the score is the mean of those. Motion of up to one thumbnail
    pixel per frame (10 px of a 640-wide frame) then costs little, while an unrelated shot still differs.
    """
    a = np.asarray(prev_small, dtype=np.float32)
    b = np.asarray(cur_small, dtype=np.float32)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"thumbnails must be 2-D and of one shape: {a.shape} vs {b.shape}")
    pa = np.pad(a, 1, mode="edge")
    h, w = b.shape
    best = np.abs(b - a)
    for dy in range(3):
        for dx in range(3):
            np.minimum(best, np.abs(b - pa[dy : dy + h, dx : dx + w]), out=best)
    return float(best.mean())


def is_scene_cut(prev_small: np.ndarray, cur_small: np.ndarray, threshold: float = DEFAULT_CUT_THRESHOLD) -> bool:
    """True when :func:`scene_cut_score` of two consecutive 64×36 grey thumbnails exceeds ``threshold``.

    Default 0.03, set on synthetic scenes with natural (1/f) statistics, 0.22 contrast
    (tests/test_track.py): a pan at 7 px/frame of a 640×360 frame scores ≈ 0.01 and at 20 px/frame
    ≈ 0.02; a cut between two such scenes (same mean and contrast, the hardest case) ≈ 0.05; cuts between
    shots of different brightness or contrast score higher. A global flash or a whip pan can exceed it:
    that only resets the tracks (new ids, fresh smoothing). Low-contrast dark shots may cut unnoticed.
    """
    return scene_cut_score(prev_small, cur_small) > threshold


# --------------------------------------------------------------------------------------------- tracks


@dataclass
class _Record:
    """The filter's posterior at one frame; ``f``/``q`` are the transition that led into this frame."""

    frame: int
    x: np.ndarray
    p: np.ndarray
    f: np.ndarray
    q: np.ndarray
    hit: bool
    miss: bool
    misses: int
    box_rel: np.ndarray
    score: float


@dataclass
class _Track:
    kf: KalmanFilter
    size: float
    box_rel: np.ndarray
    score: float
    last_frame: int
    last_hit: int
    history: deque
    hits: int = 1
    misses: int = 0
    track_id: int | None = None
    step: tuple[np.ndarray, np.ndarray] | None = None  # (F, Q) of the last predict
    ended_at: int = -1  # the tracker's update count when the track ended

    @property
    def confirmed(self) -> bool:
        return self.track_id is not None

    @property
    def landmarks(self) -> np.ndarray:
        return self.kf.x[:_NDIM].reshape(5, 2)

    def face(
        self, x: np.ndarray | None = None, box_rel: np.ndarray | None = None, score: float | None = None
    ) -> Face:
        lm = (self.kf.x if x is None else x)[:_NDIM].reshape(5, 2)
        rel = self.box_rel if box_rel is None else box_rel
        return Face(
            box=_box_absolute(rel, lm),
            landmarks=lm,
            score=self.score if score is None else score,
            track_id=self.track_id,
        )


@dataclass
class FaceTracker:
    """Causal multi-face tracker; one per video (or per live stream). See the module docstring."""

    options: TrackerOptions = field(default_factory=TrackerOptions)
    _tracks: list[_Track] = field(default_factory=list, init=False, repr=False)
    _ended: list[_Track] = field(default_factory=list, init=False, repr=False)
    _next_id: int = field(default=0, init=False, repr=False)
    _last_frame: int | None = field(default=None, init=False, repr=False)
    _updates: int = field(default=0, init=False, repr=False)

    # ---- public

    def update(self, frame_index: int, detections: list[Face] | None) -> list[Face]:
        """Advance to ``frame_index`` with this frame's detections (``None``: detection did not run).

        Returns the confirmed tracks' causal faces (``track_id`` set), sorted by id.
        """
        frame_index = int(frame_index)
        if self._last_frame is not None and frame_index <= self._last_frame:
            raise ValueError(f"frame_index must increase: got {frame_index} after {self._last_frame}")
        steps = 1 if self._last_frame is None else frame_index - self._last_frame
        self._last_frame = frame_index
        self._updates += 1
        opts = self.options

        for t in self._tracks:
            t.step = motion_matrices(t.size, opts, steps)
            t.kf.predict(F=t.step[0], Q=t.step[1])
            t.last_frame = frame_index

        matched: set[int] = set()
        new_dets: list[Face] = []
        if detections is not None:
            dets = list(detections)
            matches, unmatched = self._associate(dets)
            for ti, di in matches:
                self._correct(self._tracks[ti], dets[di])
                matched.add(ti)
            new_dets = [dets[di] for di in unmatched]

        alive: list[_Track] = []
        for ti, t in enumerate(self._tracks):
            if detections is not None and ti not in matched:
                t.misses += 1
            self._record(t, frame_index, hit=ti in matched, miss=detections is not None and ti not in matched)
            if t.misses > 0 and not t.confirmed:
                continue  # a tentative track that misses is dropped
            if t.misses > opts.max_misses or frame_index - t.last_hit > opts.max_age:
                t.ended_at = self._updates
                self._ended.append(t)
                continue
            alive.append(t)
        self._tracks = alive
        for det in new_dets:
            self._tracks.append(self._new_track(det, frame_index))
        self._prune_ended()
        return self.current_faces()

    def current_faces(self) -> list[Face]:
        """The confirmed tracks' causal faces at the last frame (those with at most ``coast`` misses)."""
        faces = [t.face() for t in self._tracks if t.confirmed and t.misses <= self.options.coast]
        return sorted(faces, key=lambda f: f.track_id)

    def reset(self) -> None:
        """End every track (scene cut). Ids keep counting up; the next frame may have any index."""
        self._tracks = []
        self._ended = []
        self._last_frame = None

    @property
    def active_ids(self) -> list[int]:
        return sorted(t.track_id for t in self._tracks if t.confirmed)

    # ---- internals

    def _associate(self, dets: list[Face]) -> tuple[list[tuple[int, int]], list[int]]:
        if not dets:
            return [], []
        if not self._tracks:
            return [], list(range(len(dets)))
        opts = self.options
        pred_lm = np.stack([t.landmarks for t in self._tracks])  # (N, 5, 2)
        pred_box = np.stack([_box_absolute(t.box_rel, t.landmarks) for t in self._tracks])
        sizes = np.array([t.size for t in self._tracks])
        det_lm = np.stack([d.landmarks for d in dets]).astype(np.float64)
        det_box = np.stack([d.box for d in dets]).astype(np.float64)
        dist = np.linalg.norm(pred_lm[:, None] - det_lm[None], axis=-1).mean(axis=-1) / sizes[:, None]
        iou = box_iou(pred_box, det_box)
        allowed = (dist <= opts.landmark_gate) & (iou >= opts.iou_gate)
        cost = np.where(allowed, dist + (1.0 - iou), 1e6)
        rows, cols = linear_sum_assignment(cost)
        matches = [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]
        matched_dets = {c for _, c in matches}
        return matches, [i for i in range(len(dets)) if i not in matched_dets]

    def _correct(self, t: _Track, det: Face) -> None:
        opts = self.options
        t.size = max(det.size, 1.0)
        r = (opts.measurement_noise * t.size) ** 2
        if opts.maneuver_gate is not None:
            self._gate(t, det, r)
        t.kf.update(det.landmarks.astype(np.float64).reshape(_NDIM), R=np.eye(_NDIM) * r)
        t.box_rel = 0.5 * t.box_rel + 0.5 * _box_relative(det.box, det.landmarks)
        t.score = det.score
        t.hits += 1
        t.misses = 0
        t.last_hit = t.last_frame
        if not t.confirmed and t.hits >= opts.min_hits:
            t.track_id = self._take_id()

    def _gate(self, t: _Track, det: Face, r: float) -> None:
        """Innovation gate on the landmarks' common motion: a detection whose centroid is too far from the
        predicted one widens this step's process noise, so the filter follows it and the RTS pass puts the kink
        at this step instead of overshooting. (The centroid, not all ten coordinates: independent landmark noise
        averages out in it, a real change of motion does not.)"""
        kf = t.kf
        if t.step is None:
            return
        y = det.landmarks.astype(np.float64).reshape(_NDIM) - kf.H @ kf.x
        avg = np.kron(np.full((1, 5), 0.2), np.eye(2))  # (2, 10): the centroid of the five landmarks
        s = avg @ (kf.H @ kf.P @ kf.H.T + np.eye(_NDIM) * r) @ avg.T
        ybar = avg @ y
        if float(ybar @ np.linalg.solve(s, ybar)) <= self.options.maneuver_gate:
            return
        extra = maneuver_noise(np.tile(ybar, 5), r / 5, _order(self.options))
        kf.P = kf.P + extra
        t.step = (t.step[0], t.step[1] + extra)

    def _take_id(self) -> int:
        tid = self._next_id
        self._next_id += 1
        return tid

    def _new_track(self, det: Face, frame_index: int) -> _Track:
        opts = self.options
        size = max(det.size, 1.0)
        order = _order(opts)
        kf = KalmanFilter(dim_x=order * _NDIM, dim_z=_NDIM)
        kf.H = np.hstack([np.eye(_NDIM)] + [np.zeros((_NDIM, _NDIM))] * (order - 1))
        kf.R = np.eye(_NDIM) * (opts.measurement_noise * size) ** 2
        kf.F, kf.Q = motion_matrices(size, opts)
        kf.x = np.concatenate([det.landmarks.astype(np.float64).reshape(_NDIM)] + [np.zeros(_NDIM)] * (order - 1))
        pos_var = (opts.measurement_noise * size) ** 2
        vel_var = (opts.initial_velocity * size) ** 2
        acc_var = (opts.initial_velocity * size / 4) ** 2
        kf.P = np.diag(np.concatenate(
            [np.full(_NDIM, pos_var), np.full(_NDIM, vel_var)] + [np.full(_NDIM, acc_var)] * (order - 2)
        ))
        t = _Track(
            kf=kf,
            size=size,
            box_rel=_box_relative(det.box, det.landmarks),
            score=det.score,
            last_frame=frame_index,
            last_hit=frame_index,
            history=deque(maxlen=opts.effective_lag + 1),
        )
        if opts.min_hits <= 1:
            t.track_id = self._take_id()
        self._record(t, frame_index, hit=True, miss=False)
        return t

    def _record(self, t: _Track, frame_index: int, hit: bool, miss: bool) -> None:
        f, q = t.step if t.step is not None else motion_matrices(t.size, self.options)
        t.history.append(
            _Record(frame_index, t.kf.x.copy(), t.kf.P.copy(), f, q, hit, miss, t.misses, t.box_rel.copy(), t.score)
        )

    def _prune_ended(self) -> None:
        # an ended track's last record stays needed while it is among the smoother's last `lag` frames
        keep = self.options.effective_lag
        self._ended = [t for t in self._ended if t.confirmed and self._updates - t.ended_at <= keep]

    def _history_tracks(self) -> list[_Track]:
        """Confirmed tracks, alive or recently ended, whose history the smoother may still need."""
        return [t for t in self._ended + self._tracks if t.confirmed and t.history]


def _supported(records: list[_Record], i: int) -> bool:
    """Whether a track shows a face at ``records[i]``: a later detection bridges it, or no miss since the last."""
    return records[i].misses == 0 or any(r.hit for r in records[i + 1 :])


@dataclass
class FixedLagSmoother:
    """Streaming fixed-lag smoother around a :class:`FaceTracker`; see the module docstring for the protocol."""

    options: TrackerOptions = field(default_factory=TrackerOptions)
    tracker: FaceTracker = field(init=False)
    _pending: deque = field(default_factory=deque, init=False, repr=False)

    def __post_init__(self) -> None:
        self.tracker = FaceTracker(self.options)

    @property
    def lag(self) -> int:
        return self.options.effective_lag

    def push(
        self, frame_index: int, detections: list[Face] | None, is_cut: bool = False
    ) -> list[tuple[int, list[Face]]]:
        """Feed one frame; returns the frames that became ready, oldest first."""
        out: list[tuple[int, list[Face]]] = []
        if is_cut:
            out.extend(self.flush())
        causal = self.tracker.update(frame_index, detections)
        if self.lag == 0:
            out.append((int(frame_index), causal))
            return out
        self._pending.append(int(frame_index))
        while len(self._pending) > self.lag:
            out.append(self._emit(self._pending.popleft()))
        return out

    def flush(self) -> list[tuple[int, list[Face]]]:
        """Every pending frame, oldest first; then the tracker is reset (all tracks end)."""
        out = [self._emit(f) for f in list(self._pending)]
        self._pending.clear()
        self.tracker.reset()
        return out

    def _emit(self, frame: int) -> tuple[int, list[Face]]:
        faces: list[Face] = []
        for t in self.tracker._history_tracks():
            records = list(t.history)
            idx = next((i for i, r in enumerate(records) if r.frame == frame), None)
            if idx is None or not _supported(records, idx):
                continue
            window = records[idx:]
            if len(window) > 1:
                xs, _, _, _ = t.kf.rts_smoother(
                    np.stack([r.x for r in window]),
                    np.stack([r.p for r in window]),
                    Fs=np.stack([r.f for r in window]),
                    Qs=np.stack([r.q for r in window]),
                )
                x = xs[0]
            else:
                x = window[0].x
            faces.append(t.face(x=x, box_rel=records[idx].box_rel, score=records[idx].score))
        return frame, sorted(faces, key=lambda f: f.track_id)
