"""The ONE Gaussian blur of the face stage: OpenCV's ``GaussianBlur`` (separable, BORDER_REFLECT_101) in torch.

Used by the paste-back's feathered box mask (:mod:`.paste`, ``sigma = 0`` with OpenCV's small-kernel tables)
and by the parse mask's smoothing (:mod:`.parse`, 101 px at σ = 11).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["gaussian_blur", "gaussian_kernel"]

# OpenCV's hard-coded kernels for small ksize and sigma <= 0 (read-only).
_SMALL_GAUSS: Mapping[int, tuple[float, ...]] = MappingProxyType(
    {
        1: (1.0,),
        3: (0.25, 0.5, 0.25),
        5: (0.0625, 0.25, 0.375, 0.25, 0.0625),
        7: (0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125),
        9: tuple(v / 256 for v in (4, 13, 30, 51, 60, 51, 30, 13, 4)),  # OpenCV 5 (not in 4.x)
    }
)


def gaussian_kernel(ksize: int, sigma: float = 0.0) -> np.ndarray:
    """``cv2.getGaussianKernel(ksize, sigma)`` as float64: for ``sigma <= 0`` OpenCV 5's fixed tables up to 9,
    else ``sigma = 0.3((k-1)/2 - 1) + 0.8``; then ``exp(-x²/2σ²)`` normalised."""
    if sigma <= 0:
        if ksize in _SMALL_GAUSS:
            return np.array(_SMALL_GAUSS[ksize], dtype=np.float64)
        sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    x = np.arange(ksize, dtype=np.float64) - (ksize - 1) * 0.5
    g = np.exp(-(x**2) / (2 * sigma * sigma))
    return g / g.sum()


def _pad_reflect101(x: torch.Tensor, p: int, dim: int) -> torch.Tensor:
    """BORDER_REFLECT_101 padding of ``p`` on both sides of ``dim`` (3 = width, 2 = height), any size."""
    n = x.shape[dim]
    if n == 1:
        return x.repeat_interleave(2 * p + 1, dim=dim)
    period = 2 * (n - 1)
    idx = torch.arange(-p, n + p, device=x.device) % period
    idx = torch.where(idx >= n, period - idx, idx)
    return x.index_select(dim, idx)


def gaussian_blur(x: torch.Tensor, ksize: int, sigma: float = 0.0) -> torch.Tensor:
    """``cv2.GaussianBlur(x, (k, k), sigma)`` on (N, 1, H, W) in ``x``'s dtype: rows, then columns, reflect-101."""
    if ksize <= 1:
        return x
    p = ksize // 2
    g = torch.as_tensor(gaussian_kernel(ksize, sigma), dtype=x.dtype, device=x.device)
    y = F.conv2d(_pad_reflect101(x, p, 3), g.view(1, 1, 1, ksize))
    return F.conv2d(_pad_reflect101(y, p, 2), g.view(1, 1, ksize, 1))
