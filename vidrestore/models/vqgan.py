"""Building blocks shared by the two VQGAN-style face restorers (CodeFormer and RestoreFormer).

Both networks descend from the taming-transformers VQGAN: GroupNorm(32 groups, **eps 1e-6**) and swish
(``x * sigmoid(x)``), residual blocks ``GN → swish → conv3x3 → GN → swish → conv3x3`` plus a 1x1 shortcut when
the channel count changes, a downsampler that pads one zero column/row on the right/bottom before a stride-2
conv with no padding, and a nearest-neighbour x2 upsampler followed by a 3x3 conv. The two official code bases
name the same things differently (``conv_out`` vs ``nin_shortcut`` for the shortcut, ``norm`` vs ``norm1``/``norm2``
in attention), so the blocks take the names they need for state-dict compatibility.

Written from the architecture descriptions in ``shared/reference/codeformer/README.md`` and
``shared/reference/gfpgan/README.md``; no code was taken from the official repositories.

Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention`: the same softmax(q kᵀ / √d) v as
the official explicit matmuls (differences are float32 rounding, ~1e-6), and the fused kernels on CUDA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "GN_EPS",
    "group_norm",
    "swish",
    "ResBlock",
    "Downsample",
    "Upsample",
    "SelfAttention",
    "attend",
]

GN_EPS = 1e-6


def group_norm(channels: int) -> nn.GroupNorm:
    """The VQGAN normalisation: 32 groups, eps 1e-6, affine."""
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=GN_EPS, affine=True)


def swish(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x)


class ResBlock(nn.Module):
    """``x' = conv2(swish(GN(conv1(swish(GN(x)))))) + shortcut(x)``; the shortcut is a 1x1 conv iff in != out.

    ``shortcut_name`` is the state-dict name of that 1x1 conv (CodeFormer ``conv_out``, RestoreFormer
    ``nin_shortcut``).
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, shortcut_name: str = "conv_out") -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self._shortcut_name = shortcut_name if in_channels != out_channels else None
        if self._shortcut_name is not None:
            self.add_module(shortcut_name, nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        if self._shortcut_name is not None:
            x = getattr(self, self._shortcut_name)(x)
        return x + h


class Downsample(nn.Module):
    """Halve the size: zero-pad one column on the right and one row at the bottom, then conv3x3 stride 2, pad 0."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Double the size: nearest-neighbour x2, then conv3x3 pad 1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Spatial multi-head attention over feature maps (B, C, H, W): every query position attends to all key
    positions. Channel ``c`` belongs to head ``c // (C // heads)``; the scale is ``(C // heads) ** -0.5``."""
    b, c, h, w = q.shape
    d = c // heads

    def split(t: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, heads, HW, d)
        return t.reshape(b, heads, d, h * w).transpose(2, 3)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))  # (B, heads, HW, d)
    return out.transpose(2, 3).reshape(b, c, h, w)


class SelfAttention(nn.Module):
    """VQGAN's single-head non-local block: ``x + proj_out(attn(q, k, v of GN(x)))`` (CodeFormer's AttnBlock)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        return x + self.proj_out(attend(self.q(h), self.k(h), self.v(h), heads=1))
