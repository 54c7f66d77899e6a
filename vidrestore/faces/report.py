"""What the face stage measures for ``--report``, as running sums per track (constant size however long the video):
landmark jitter of the raw detections and of the smoothed landmarks (:func:`landmark_jitter`), and face flicker,
the change between consecutive aligned crops of the input and of the output (:class:`FlickerMeter`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .face import Face
from .temporal import face_region_mask

__all__ = ["FaceReport", "FlickerMeter", "RunningJitter", "TrackReport", "landmark_jitter", "mean_offset",
           "output_affine"]

FLICKER_SIZE = 128  # the flicker figures are measured on aligned crops at this size (cheap, and enough)


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



@dataclass
class TrackReport:
    """A track's figures, as running sums (constant size however long the track)."""

    frames: int = 0
    raw: RunningJitter = field(default_factory=RunningJitter)
    smooth: RunningJitter = field(default_factory=RunningJitter)
    diff_in: float = 0.0
    diff_out: float = 0.0
    pairs: int = 0


@dataclass
class FaceReport:
    """Per-track figures for ``--report``: frames, landmark jitter before/after smoothing, flicker in/out.

    Jitter is :func:`landmark_jitter` (mean second difference of the landmarks, px)
    of the raw detections matched to the track and of the smoothed landmarks that drove alignment. The
    temporal difference is the mean absolute difference of consecutive aligned crops inside the face
    ellipse, for the input crops and the pasted output crops (0-255 levels).
    """

    tracks: dict[int, TrackReport] = field(default_factory=dict)
    faces: int = 0
    frames_with_faces: int = 0
    cuts: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = {}
        for tid, t in sorted(self.tracks.items()):
            out[str(tid)] = {
                "frames": t.frames,
                "jitter_raw_px": t.raw.value,
                "jitter_smoothed_px": t.smooth.value,
                "temporal_diff_input": t.diff_in / t.pairs if t.pairs else None,
                "temporal_diff_output": t.diff_out / t.pairs if t.pairs else None,
            }
        return {"faces": self.faces, "frames_with_faces": self.frames_with_faces, "scene_cuts": self.cuts,
                "tracks": out}

    def summary(self) -> str:
        d = self.as_dict()["tracks"]
        if not d:
            return "no face tracks"
        raw = [v["jitter_raw_px"] for v in d.values() if v["jitter_raw_px"] is not None]
        smo = [v["jitter_smoothed_px"] for v in d.values() if v["jitter_smoothed_px"] is not None]
        fin = [v["temporal_diff_input"] for v in d.values() if v["temporal_diff_input"] is not None]
        fout = [v["temporal_diff_output"] for v in d.values() if v["temporal_diff_output"] is not None]
        parts = [f"{len(d)} tracks"]
        if raw and smo:
            parts.append(f"landmark jitter {np.mean(raw):.2f} -> {np.mean(smo):.2f} px")
        if fin and fout:
            parts.append(f"face flicker {np.mean(fin):.2f} -> {np.mean(fout):.2f} levels")
        return ", ".join(parts)

    def record_landmarks(self, faces: list[Face], raw: list[Face] | None) -> None:
        """One output frame's tracked faces (the smoothed landmarks that drove alignment) and the raw detections
        of that frame (each track takes the nearest)."""
        for face in faces:
            t = self.tracks.setdefault(face.track_id, TrackReport())
            t.frames += 1
            t.smooth.push(face.landmarks)
            if raw:
                nearest = min(raw, key=lambda r: float(np.abs(r.landmarks - face.landmarks).mean()))
                t.raw.push(nearest.landmarks)
        if faces:
            self.frames_with_faces += 1
            self.faces += len(faces)


def output_affine(affine: np.ndarray, s: int) -> np.ndarray:
    """The image → crop affine on a frame upscaled ``s`` times: pixel centres map exactly,
    ``x_up = s·x + (s − 1)/2``."""
    if s == 1:
        return affine
    up = np.array([[s, 0.0, (s - 1) / 2], [0.0, s, (s - 1) / 2], [0.0, 0.0, 1.0]])
    return (np.vstack([affine, [0.0, 0.0, 1.0]]) @ np.linalg.inv(up))[:2]


def flicker_crop(frame: np.ndarray, affine: np.ndarray, size: int = FLICKER_SIZE) -> np.ndarray:
    """The aligned face at ``size`` px (the 512 crop's affine scaled down), area-averaged."""
    scaled = affine * (size / 512.0)
    return cv2.warpAffine(frame, scaled, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT)


@dataclass
class LastCrops:
    """What the flicker figure needs of a track's previous frame; dropped when the track ends."""

    frame: int
    prev_in: np.ndarray
    prev_out: np.ndarray


class FlickerMeter:
    """Face flicker: the mean absolute change inside the face ellipse between a track's consecutive aligned crops,
    of the input and of the pasted output (0-255 levels). Keeps only each live track's previous crops."""

    def __init__(self) -> None:
        self.mask = face_region_mask(FLICKER_SIZE, FLICKER_SIZE)
        self.live: dict[int, LastCrops] = {}

    def record(self, report: FaceReport, faces: list[Face], crops: np.ndarray, frame: np.ndarray,
               affines: np.ndarray, scale: int, index: int) -> None:
        """Frame ``index``'s faces: their aligned input ``crops`` (512 px) and the pasted ``frame`` (upscaled
        ``scale`` times), whose crops are cut with ``affines``."""
        mask = self.mask
        for k, face in enumerate(faces):
            t = report.tracks[face.track_id]
            cur_in = cv2.resize(crops[k], (FLICKER_SIZE, FLICKER_SIZE), interpolation=cv2.INTER_AREA)
            cur_in = cur_in.astype(np.float32)
            cur_out = flicker_crop(frame, output_affine(affines[k], scale)).astype(np.float32)
            live = self.live.get(face.track_id)
            if live is not None and live.frame == index - 1:
                t.diff_in += float(np.abs(cur_in - live.prev_in)[mask].mean())
                t.diff_out += float(np.abs(cur_out - live.prev_out)[mask].mean())
                t.pairs += 1
            self.live[face.track_id] = LastCrops(index, cur_in, cur_out)
