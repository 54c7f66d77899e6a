"""What the display draws onto a shown frame: restored faces warped back (:func:`reproject` with the
feathered :func:`box_mask`), the before/after :func:`split_view` and the HUD (:func:`draw_hud`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from ..faces.align import invert_affine

__all__ = ["box_mask", "draw_hud", "hud_lines", "reproject", "split_view"]


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


def hud_lines(s: dict[str, Any]) -> list[str]:
    """The two HUD lines for a status dict (``source_fps``, ``shown_fps``, ``restore_ms``, ``faces``, ``split``,
    ``recording``), as the session serves it on ``/status``."""
    restore = "-" if s["restore_ms"] is None else f"{s['restore_ms']:.0f} ms"
    flags = (" SPLIT" if s["split"] else "") + (" REC" if s["recording"] else "")
    return [f"src {s['source_fps']:.1f} fps  shown {s['shown_fps']:.1f} fps",
            f"restore {restore}  faces {s['faces']}{flags}"]
