"""Face tracking: association and a Kalman filter per track (the motion model is :mod:`.motion`; the fixed-lag
smoother for files, :class:`~vidrestore.faces.smooth.FixedLagSmoother`, runs the filters' RTS pass).

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
2 px landmark noise; jitter as defined in :func:`~vidrestore.faces.report.landmark_jitter` against the true path): the causal
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
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from filterpy.kalman import KalmanFilter
from scipy.optimize import linear_sum_assignment

from .face import Face
from .motion import NDIM, TrackerOptions, gate, motion_matrices, state_order

__all__ = ["FaceTracker", "Record", "TrackerOptions", "box_iou"]


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



# --------------------------------------------------------------------------------------------- tracks


@dataclass
class Record:
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
    seen: Face  # the last detection matched to it: association also tries it (the prediction drifts when coasting)
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
        return self.kf.x[:NDIM].reshape(5, 2)

    def face(
        self, x: np.ndarray | None = None, box_rel: np.ndarray | None = None, score: float | None = None
    ) -> Face:
        lm = (self.kf.x if x is None else x)[:NDIM].reshape(5, 2)
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
        sizes = np.array([t.size for t in self._tracks])
        det_lm = np.stack([d.landmarks for d in dets]).astype(np.float64)
        det_box = np.stack([d.box for d in dets]).astype(np.float64)
        # against the prediction and against the last matched detection, whichever is closer: with --detect-every
        # > 1 a track coasts between detections and a turn makes its extrapolation miss by more than the gate
        pred_lm = np.stack([t.landmarks for t in self._tracks])  # (N, 5, 2)
        pred_box = np.stack([_box_absolute(t.box_rel, t.landmarks) for t in self._tracks])
        seen_lm = np.stack([t.seen.landmarks for t in self._tracks]).astype(np.float64)
        seen_box = np.stack([t.seen.box for t in self._tracks]).astype(np.float64)

        def mean_distance(lm: np.ndarray) -> np.ndarray:
            return np.linalg.norm(lm[:, None] - det_lm[None], axis=-1).mean(axis=-1) / sizes[:, None]

        dist = np.minimum(mean_distance(pred_lm), mean_distance(seen_lm))
        iou = np.maximum(box_iou(pred_box, det_box), box_iou(seen_box, det_box))
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
        measured = det.landmarks.astype(np.float64).reshape(NDIM)
        if opts.maneuver_gate is not None and t.step is not None:
            t.step = gate(t.kf, t.step, measured, r, opts)
        t.kf.update(measured, R=np.eye(NDIM) * r)
        t.box_rel = 0.5 * t.box_rel + 0.5 * _box_relative(det.box, det.landmarks)
        t.score = det.score
        t.seen = det
        t.hits += 1
        t.misses = 0
        t.last_hit = t.last_frame
        if not t.confirmed and t.hits >= opts.min_hits:
            t.track_id = self._take_id()

    def _take_id(self) -> int:
        tid = self._next_id
        self._next_id += 1
        return tid

    def _new_track(self, det: Face, frame_index: int) -> _Track:
        opts = self.options
        size = max(det.size, 1.0)
        order = state_order(opts)
        kf = KalmanFilter(dim_x=order * NDIM, dim_z=NDIM)
        kf.H = np.hstack([np.eye(NDIM)] + [np.zeros((NDIM, NDIM))] * (order - 1))
        kf.R = np.eye(NDIM) * (opts.measurement_noise * size) ** 2
        kf.F, kf.Q = motion_matrices(size, opts)
        kf.x = np.concatenate([det.landmarks.astype(np.float64).reshape(NDIM)] + [np.zeros(NDIM)] * (order - 1))
        pos_var = (opts.measurement_noise * size) ** 2
        vel_var = (opts.initial_velocity * size) ** 2
        acc_var = (opts.initial_velocity * size / 4) ** 2
        kf.P = np.diag(np.concatenate(
            [np.full(NDIM, pos_var), np.full(NDIM, vel_var)] + [np.full(NDIM, acc_var)] * (order - 2)
        ))
        t = _Track(
            kf=kf,
            size=size,
            box_rel=_box_relative(det.box, det.landmarks),
            score=det.score,
            last_frame=frame_index,
            last_hit=frame_index,
            history=deque(maxlen=opts.effective_lag + 1),
            seen=det,
        )
        if opts.min_hits <= 1:
            t.track_id = self._take_id()
        self._record(t, frame_index, hit=True, miss=False)
        return t

    def _record(self, t: _Track, frame_index: int, hit: bool, miss: bool) -> None:
        f, q = t.step if t.step is not None else motion_matrices(t.size, self.options)
        t.history.append(
            Record(frame_index, t.kf.x.copy(), t.kf.P.copy(), f, q, hit, miss, t.misses, t.box_rel.copy(), t.score)
        )

    def _prune_ended(self) -> None:
        # an ended track's last record stays needed while it is among the smoother's last `lag` frames
        keep = self.options.effective_lag
        self._ended = [t for t in self._ended if t.confirmed and self._updates - t.ended_at <= keep]

    def history_tracks(self) -> list[_Track]:
        """Confirmed tracks, alive or recently ended, whose history the smoother may still need."""
        return [t for t in self._ended + self._tracks if t.confirmed and t.history]
