"""Lanczos-4 upscaling: ``cv2.resize(..., INTER_LANCZOS4)`` on frames, and the same kernel on device tensors
(:func:`lanczos_resize_tensor`; matches OpenCV's float resize to ~1e-6, its uint8 resize within ±1)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from ..errors import UsageError
from .options import check_frame, output_size

__all__ = ["LanczosUpscaler", "lanczos_resize_tensor"]


def _lanczos4_matrix(src: int, dst: int, device: torch.device) -> torch.Tensor:
    """(dst, src) float64 weights of OpenCV's INTER_LANCZOS4 along one axis (replicated border)."""
    inv = src / dst
    fx = (np.arange(dst, dtype=np.float64) + 0.5) * inv - 0.5
    sx = np.floor(fx)
    frac = (fx - sx).astype(np.float32).astype(np.float64)  # OpenCV keeps the fraction as float
    taps = np.arange(8, dtype=np.float64)
    y = -(frac[:, None] + 3 - taps[None, :]) * (math.pi / 4)
    s45 = math.sqrt(0.5)
    cs = np.array([[1, 0], [-s45, -s45], [0, 1], [s45, -s45], [-1, 0], [s45, s45], [0, -1], [-s45, s45]])
    y0 = -(frac + 3) * (math.pi / 4)
    s0, c0 = np.sin(y0), np.cos(y0)
    with np.errstate(divide="ignore", invalid="ignore"):
        coeffs = (cs[None, :, 0] * s0[:, None] + cs[None, :, 1] * c0[:, None]) / (y * y)
    exact = frac < np.finfo(np.float32).eps
    coeffs[exact] = 0.0
    coeffs[exact, 3] = 1.0
    coeffs = coeffs.astype(np.float32).astype(np.float64)
    coeffs /= coeffs.sum(axis=1, keepdims=True)
    idx = np.clip(sx[:, None].astype(np.int64) - 3 + taps[None, :].astype(np.int64), 0, src - 1)
    mat = np.zeros((dst, src), dtype=np.float64)
    np.add.at(mat, (np.repeat(np.arange(dst), 8), idx.ravel()), coeffs.ravel())
    return torch.from_numpy(mat).to(device)



def lanczos_resize_tensor(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize float ``(N, C, H, W)`` to ``size`` = (height, width) with OpenCV's Lanczos-4, on ``x``'s device.

    Same kernel, coordinate mapping and replicated border as ``cv2.resize(..., INTER_LANCZOS4)`` (no
    antialiasing when shrinking, like OpenCV). Returns float32, not clamped.
    """
    n, c, h, w = x.shape
    oh, ow = size
    if (oh, ow) == (h, w):
        return x.float().clone()
    dtype = torch.float64 if x.device.type == "cpu" else torch.float32
    my = _lanczos4_matrix(h, oh, x.device).to(dtype)
    mx = _lanczos4_matrix(w, ow, x.device).to(dtype)
    y = torch.matmul(my, torch.matmul(x.to(dtype), mx.T))
    return y.float()



class LanczosUpscaler:
    """``cv2.resize(..., INTER_LANCZOS4)``; needs no weights. ``scale`` is the output factor."""

    method = "lanczos"
    precision = "fp32"

    def __init__(self, scale: float = 2, device: str | torch.device | None = "cpu") -> None:
        if not scale > 0:
            raise UsageError(f"upscale factor must be positive, got {scale!r}")
        self.scale = float(scale)
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    def __repr__(self) -> str:
        return f"LanczosUpscaler(scale={self.scale:g})"

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        return output_size(height, width, self.scale)

    def upscale(self, frame: np.ndarray) -> np.ndarray:
        frame, _ = check_frame(frame)
        oh, ow = self.output_shape(*frame.shape[:2])
        if (oh, ow) == frame.shape[:2]:
            return frame.copy()
        return cv2.resize(frame, (ow, oh), interpolation=cv2.INTER_LANCZOS4)

    def upscale_tensor(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"x must be (N, C, H, W), got {tuple(x.shape)}")
        return lanczos_resize_tensor(x, self.output_shape(x.shape[2], x.shape[3])).clamp_(0.0, 1.0)

