"""The fixed-lag smoother for files: each frame's faces come out ``lag`` frames late, RTS-smoothed over what
the tracker learnt since.

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
  (normalized innovation squared above the gate) widens that step's process noise (:func:`~vidrestore.faces.motion.maneuver_noise`),
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

from .face import Face
from .motion import TrackerOptions
from .track import FaceTracker, Record

__all__ = ["FixedLagSmoother"]


def _supported(records: list[Record], i: int) -> bool:
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
        for t in self.tracker.history_tracks():
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
