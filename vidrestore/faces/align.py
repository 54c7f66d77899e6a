"""Face alignment to the FFHQ-512 template: the image → crop similarity and the crop warp.

Alignment follows facexlib's ``FaceRestoreHelper`` (face_size 512, crop_ratio (1, 1)): the 4-DOF similarity
from the five landmarks to the template is estimated with ``cv2.estimateAffinePartial2D(method=cv2.LMEDS)``
and the crop is ``cv2.warpAffine`` (bilinear, constant border of facexlib's gray). Matrices are (2, 3)
float64 and map *image* pixels to *crop* pixels, OpenCV's convention (integer coordinates are pixel
centres).

Anamorphic video (sample aspect ratio ``sar`` != 1): landmarks are in stored pixels; the similarity is
estimated in square-pixel (display) space, on the landmarks mapped by ``x -> sar*x + (sar-1)/2`` (i.e.
``diag(sar, 1)`` with cv2.resize's pixel centres), and composed with that map, so the returned affine
takes stored pixels straight to the crop and the face is not squashed; its inverse pastes back into the
stored geometry.

``fit="lstsq"`` (every function that estimates) takes the closed-form least-squares similarity instead of LMEDS:
the tracked video stage uses it on its smoothed landmarks, where LMEDS's choice of inlier landmarks changing from
frame to frame would add jitter the smoothing removed (bench/stability.py: rotation jitter 0.63× → ~0.4× of raw).
The default stays facexlib's LMEDS (photos, ``--aligned``, parity tests).

Paste-back of restored faces is :mod:`vidrestore.faces.paste`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "BORDER_VALUE_RGB",
    "FITS",
    "FACE_SIZE",
    "FFHQ_TEMPLATE_512",
    "align_face",
    "align_faces",
    "compose_sar",
    "estimate_affine",
    "invert_affine",
    "paste_affine",
    "sar_affine",
    "similarity_lstsq",
]

FACE_SIZE = 512

#: Similarity fits: facexlib's ``"lmeds"`` (OpenCV LMEDS, the default) or ``"lstsq"`` (closed-form least squares).
FITS = ("lmeds", "lstsq")


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


#: facexlib's FFHQ five-point template for a 512 px crop, (x, y): left eye, right eye, nose, mouth corners.
FFHQ_TEMPLATE_512: np.ndarray = _readonly(
    np.array(
        [
            [192.98138, 239.94708],
            [318.90277, 240.1936],
            [256.63416, 314.01935],
            [201.26117, 371.41043],
            [313.08905, 371.15118],
        ],
        dtype=np.float64,
    )
)

#: facexlib's crop border (135, 133, 132) is BGR; our frames are RGB.
BORDER_VALUE_RGB: tuple[int, int, int] = (132, 133, 135)


# ----------------------------------------------------------------------------------------------------------
# Geometry: small pure functions on (2, 3) float64 matrices
# ----------------------------------------------------------------------------------------------------------


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine, computed with the same double-precision formula as OpenCV.

    ``cv2.invertAffineTransform`` and the inversion inside ``cv2.warpAffine`` both use this formula, so
    inverting twice reproduces OpenCV's sampling matrix bit for bit. A singular matrix gives zeros in the
    linear part (as OpenCV does).
    """
    m = np.asarray(m, dtype=np.float64).reshape(2, 3)
    d = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    d = 1.0 / d if d != 0 else 0.0
    a11 = m[1, 1] * d
    a22 = m[0, 0] * d
    a12 = -m[0, 1] * d
    a21 = -m[1, 0] * d
    b1 = -a11 * m[0, 2] - a12 * m[1, 2]
    b2 = -a21 * m[0, 2] - a22 * m[1, 2]
    return np.array([[a11, a12, b1], [a21, a22, b2]], dtype=np.float64)


def similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Closed-form least-squares 4-DOF similarity (rotation, uniform scale, translation) src -> dst.

    The tracked video stage's fit on smoothed landmarks (``fit="lstsq"``), and the fallback when OpenCV's LMEDS
    estimate fails; on the astronaut's reference landmarks it differs from LMEDS by < 2e-5.
    Raises ``ValueError`` when the source points are all identical.
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var = float((s**2).sum())
    if var <= 0:
        raise ValueError("landmarks are degenerate (all points coincide): cannot estimate an alignment")
    a = float((s * d).sum()) / var  # s*cos
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / var  # s*sin
    lin = np.array([[a, -b], [b, a]])
    t = mu_d - lin @ mu_s
    return np.concatenate([lin, t[:, None]], axis=1)


def estimate_affine(landmarks5: np.ndarray, template: np.ndarray = FFHQ_TEMPLATE_512, fit: str = "lmeds") -> np.ndarray:
    """The (2, 3) float64 similarity taking ``landmarks5`` onto ``template``, exactly as facexlib.

    ``cv2.estimateAffinePartial2D(landmarks, template, method=cv2.LMEDS)`` (OpenCV converts both point
    sets to float32 and seeds its RNG, so this is deterministic). Falls back to the least-squares
    similarity if OpenCV returns no model. ``fit="lstsq"``: the least-squares similarity (of the float64
    landmarks) always.
    """
    if fit not in FITS:
        raise ValueError(f"unknown similarity fit {fit!r} (expected one of {FITS})")
    lm = np.asarray(landmarks5, dtype=np.float32).reshape(-1, 2)
    tp = np.asarray(template, dtype=np.float64).reshape(-1, 2)
    if lm.shape != tp.shape:
        raise ValueError(f"landmarks shape {lm.shape} does not match template shape {tp.shape}")
    if not np.isfinite(lm).all():
        raise ValueError("landmarks contain NaN or infinity")
    if fit == "lstsq":
        return similarity_lstsq(np.asarray(landmarks5, dtype=np.float64).reshape(-1, 2), tp)
    m, _ = cv2.estimateAffinePartial2D(lm, tp, method=cv2.LMEDS)
    if m is None:
        return similarity_lstsq(lm, tp)
    return np.asarray(m, dtype=np.float64)


def compose_sar(m_display: np.ndarray, sar: float) -> np.ndarray:
    """Compose a display-space (square pixel) affine with the stored -> display map.

    Stored pixel x maps to display ``sar * x + 0.5 * (sar - 1)``: ``diag(sar, 1)`` with pixel centres kept
    where ``cv2.resize`` puts them (the shift is 0.06 px at SAR 8:9). The result takes stored pixels.
    """
    m = np.asarray(m_display, dtype=np.float64).reshape(2, 3)
    sar = float(sar)
    to_display = np.array([[sar, 0.0, 0.5 * (sar - 1.0)], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return m @ to_display


def sar_affine(landmarks: np.ndarray, sar: float = 1.0, template: np.ndarray = FFHQ_TEMPLATE_512,
               fit: str = "lmeds") -> np.ndarray:
    """The image → crop similarity for five landmarks in stored pixels of a frame with sample aspect ratio
    ``sar`` (estimated in display space, see the module docstring); what :func:`align_face` warps with."""
    if not (math.isfinite(sar) and sar > 0):
        raise ValueError(f"sample aspect ratio must be a positive number, got {sar!r}")
    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    if sar == 1.0:
        return estimate_affine(lm, template, fit)
    display = lm.copy()
    display[:, 0] = sar * lm[:, 0] + 0.5 * (sar - 1.0)
    return compose_sar(estimate_affine(display, template, fit), sar)


def paste_affine(affine: np.ndarray, upscale: int = 1) -> np.ndarray:
    """The crop -> (upscaled) image matrix facexlib pastes with.

    ``invert(affine) * upscale`` (translation included), plus facexlib's extra ``0.5 * upscale`` shift
    when ``upscale > 1``. Unlike facexlib this never modifies its input.
    """
    inv = invert_affine(affine) * float(upscale)
    if upscale > 1:
        inv[:, 2] += 0.5 * upscale
    return inv


# ----------------------------------------------------------------------------------------------------------
# Alignment (CPU, OpenCV)
# ----------------------------------------------------------------------------------------------------------


def align_face(
    frame: np.ndarray,
    landmarks: np.ndarray,
    sar: float = 1.0,
    *,
    template: np.ndarray = FFHQ_TEMPLATE_512,
    face_size: int = FACE_SIZE,
    fit: str = "lmeds",
) -> tuple[np.ndarray, np.ndarray]:
    """Warp one face of an RGB frame (H, W, 3) to the FFHQ crop.

    Returns ``(crop (face_size, face_size, 3) of frame's dtype, affine (2, 3) float64 stored -> crop)``.
    ``landmarks`` (5, 2) are in stored pixels; ``sar`` is the sample aspect ratio (num/den); ``fit``: the
    similarity fit (see :data:`FITS`; facexlib's LMEDS by default).
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame of shape (H, W, 3), got {frame.shape}")
    m = sar_affine(landmarks, sar, template, fit)
    crop = cv2.warpAffine(
        frame,
        m,
        (face_size, face_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=BORDER_VALUE_RGB,
    )
    return crop, m


def align_faces(
    frame: np.ndarray,
    landmarks_list: Sequence[np.ndarray] | np.ndarray,
    sar: float = 1.0,
    *,
    template: np.ndarray = FFHQ_TEMPLATE_512,
    face_size: int = FACE_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """All faces of one frame: ``(crops (N, S, S, 3), affines (N, 2, 3) float64)``; N may be 0."""
    frame = np.asarray(frame)
    n = len(landmarks_list)
    crops = np.empty((n, face_size, face_size, 3), dtype=frame.dtype)
    affines = np.empty((n, 2, 3), dtype=np.float64)
    for i, lm in enumerate(landmarks_list):
        crops[i], affines[i] = align_face(frame, lm, sar, template=template, face_size=face_size)
    return crops, affines
