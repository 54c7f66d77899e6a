"""Scene cuts: a motion-tolerant difference of small grey thumbnails of consecutive frames.

A cut ends every face track (new ids, fresh smoothing): :class:`~vidrestore.faces.stage.FaceStage` and the live
preview check each frame against the previous one with :func:`is_scene_cut`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_CUT_THRESHOLD", "is_scene_cut", "scene_cut_score", "small_grey"]

#: Default for :func:`is_scene_cut`: motion-tolerant mean absolute difference of 64×36 grey thumbnails in [0, 1].
DEFAULT_CUT_THRESHOLD = 0.03

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
