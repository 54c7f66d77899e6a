"""Scene cuts: motion-tolerant differences of small grey thumbnails of consecutive frames.

A cut ends every face track (new ids, fresh smoothing): :class:`~vidrestore.faces.stage.FaceStage` and the live
preview check each frame against the previous one with :func:`is_scene_cut`.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["DEFAULT_CUT_THRESHOLD", "is_scene_cut", "motion_compensated_score", "scene_cut_score", "small_grey"]

#: Default for :func:`is_scene_cut`: :func:`scene_cut_score` of 64×36 grey thumbnails in [0, 1] above which (and
#: :func:`motion_compensated_score` above ``MOTION_FRACTION`` of it) two frames are of different shots.
DEFAULT_CUT_THRESHOLD = 0.03
#: :func:`is_scene_cut`'s second test fires above this fraction of the threshold (0.02 by default).
MOTION_FRACTION = 2 / 3
#: Largest block shift (thumbnail pixels) :func:`motion_compensated_score` searches, plus one for its 3×3 tolerance.
MOTION_RADIUS = 3

_GREY = np.array([0.299, 0.587, 0.114], np.float32)


def small_grey(frame: np.ndarray, size: tuple[int, int] = (64, 36)) -> np.ndarray:
    """Area-averaged grey thumbnail (h, w) float32 in [0, 1] of an RGB uint8 frame (H, W, 3); size = (w, h).

    Converted to grey one band of thumbnail rows at a time, so a 24-megapixel photo never becomes a full-size
    float image (the sums, and so the thumbnail, are exactly those of converting the whole frame at once)."""
    img = np.asarray(frame)
    w, h = size
    rows = np.linspace(0, img.shape[0], h + 1).astype(int)
    cols = np.linspace(0, img.shape[1], w + 1).astype(int)
    if np.any(np.diff(rows) == 0) or np.any(np.diff(cols) == 0):
        raise ValueError(f"frame {img.shape[:2]} is smaller than the thumbnail {size[::-1]}")
    sums = np.empty((h, w), np.float32)
    for i in range(h):
        band = img[rows[i] : rows[i + 1]].astype(np.float32)
        if band.ndim == 3:
            band = band[..., :3] @ _GREY
        if img.dtype == np.uint8:
            band = band / 255.0
        sums[i] = np.add.reduceat(np.add.reduceat(band, [0], axis=0), cols[:-1], axis=1)[0]
    counts = np.diff(rows)[:, None] * np.diff(cols)[None, :]
    return (sums / counts).astype(np.float32)


def scene_cut_score(prev_small: np.ndarray, cur_small: np.ndarray) -> float:
    """Motion-tolerant difference of two grey thumbnails in [0, 1] (see :func:`small_grey`).

    For each pixel of ``cur_small``, the smallest absolute difference to the 3×3 neighbourhood of the same
    pixel in ``prev_small`` (edges repeated); the score is the mean of those. Motion of up to one thumbnail
    pixel per frame (10 px of a 640-wide frame) then costs little, while an unrelated shot still differs.
    """
    a, b = _pair(prev_small, cur_small)
    pa = np.pad(a, 1, mode="edge")
    h, w = b.shape
    best = np.abs(b - a)
    for dy in range(3):
        for dx in range(3):
            np.minimum(best, np.abs(b - pa[dy : dy + h, dx : dx + w]), out=best)
    return float(best.mean())


def motion_compensated_score(prev_small: np.ndarray, cur_small: np.ndarray, radius: int = MOTION_RADIUS) -> float:
    """How badly the best local translation of ``prev_small`` explains ``cur_small`` (grey thumbnails, [0, 1]).

    Both thumbnails lose their mean (a fade or a flash is not motion to explain). ``cur_small`` is cut into blocks
    of about 8×8 thumbnail pixels; each block takes the integer shift within ``±radius`` pixels of ``prev_small``
    that fits it best, where a pixel's misfit is its smallest absolute difference to the 3×3 neighbourhood of the
    shifted pixel (sub-pixel motion costs little, as in :func:`scene_cut_score`). The score is the mean block
    misfit: a face or a camera moving up to ``radius + 1`` thumbnail pixels a frame (40 px of a 640-wide frame,
    16 px of a 256-wide one) is explained; an unrelated shot is not.
    """
    a, b = _pair(prev_small, cur_small)
    a, b = a - a.mean(), b - b.mean()
    h, w = b.shape
    pad = radius + 1
    pa = np.pad(a, pad, mode="edge")
    n = 2 * pad + 1
    diff = np.empty((n, n, h, w), np.float32)
    for dy in range(n):
        for dx in range(n):
            diff[dy, dx] = np.abs(b - pa[dy : dy + h, dx : dx + w])
    # per pixel and shift: the best of the 3×3 shifts around it
    near = sliding_window_view(diff, (3, 3), axis=(0, 1)).min(axis=(-2, -1))  # (2r+1, 2r+1, h, w)
    rows = np.linspace(0, h, max(1, h // 8) + 1).astype(int)
    cols = np.linspace(0, w, max(1, w // 8) + 1).astype(int)
    sums = np.add.reduceat(np.add.reduceat(near, rows[:-1], axis=2), cols[:-1], axis=3)
    blocks = sums / (np.diff(rows)[:, None] * np.diff(cols)[None, :])
    return float(blocks.min(axis=(0, 1)).mean())


def is_scene_cut(prev_small: np.ndarray, cur_small: np.ndarray, threshold: float = DEFAULT_CUT_THRESHOLD) -> bool:
    """True when two consecutive 64×36 grey thumbnails are of different shots.

    Two tests, both needed: :func:`scene_cut_score` above ``threshold`` (cheap; motion of up to one thumbnail
    pixel a frame stays under it) and :func:`motion_compensated_score` above ``MOTION_FRACTION × threshold``
    (computed only when the first fires; a face or camera moving up to ~4 thumbnail pixels a frame stays under
    it). Default 0.03, set on synthetic scenes with natural (1/f) statistics, 0.22 contrast (tests/test_track.py):
    a cut between two such scenes (same mean and contrast, the hardest case) scores ≈ 0.044 and 0.027–0.030; cuts
    between different pictures score 0.17–0.23 and 0.10–0.14. A face moving 10–12 px/frame on a 256-px frame
    (bench/stability.py) scores up to 0.054 on the first test but ≤ 0.016 on the second; a 12-frame fade to black
    or cross-dissolve ≤ 0.037 and ≤ 0.016. Raising ``threshold`` raises both. Low-contrast dark shots may cut
    unnoticed; a cut only resets the tracks (new ids, fresh smoothing), so a missed one costs little.
    """
    if scene_cut_score(prev_small, cur_small) <= threshold:
        return False
    return motion_compensated_score(prev_small, cur_small) > MOTION_FRACTION * threshold


def _pair(prev_small: np.ndarray, cur_small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(prev_small, dtype=np.float32)
    b = np.asarray(cur_small, dtype=np.float32)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"thumbnails must be 2-D and of one shape: {a.shape} vs {b.shape}")
    return a, b
