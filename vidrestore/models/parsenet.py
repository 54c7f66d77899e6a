"""ParseNet (facexlib's face parser, 19 classes) with facexlib's state-dict layout.

Written from the description in ``shared/reference/facexlib/README.md`` (section 4). A reflection-padded conv
encoder (4 strided residual blocks), 10 residual blocks at the bottleneck, a nearest-upsampling decoder (4
residual blocks) and two 3x3 output convs. ``forward`` returns ``(mask_logits (N,19,H,W), image (N,3,H,W))``;
the first element is the parsing map. Input is RGB in [-1, 1]. The net is fully convolutional, so any size
divisible by 16 works (the checkpoint was trained at 512).
"""

from __future__ import annotations

from torch import nn
from torch.nn import functional as F

import torch

__all__ = ["ParseNet", "PARSENET_CLASSES"]

PARSENET_CLASSES = 19


class _BatchNorm(nn.Module):
    """A wrapper holding the BatchNorm as ``.norm`` (the checkpoint's ``norm.norm.*`` keys)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class _ConvLayer(nn.Module):
    """[nearest x2 if 'up'] → reflection pad 1 → 3x3 conv (stride 2 if 'down') [→ BN] [→ LeakyReLU(0.2)]."""

    def __init__(self, cin: int, cout: int, scale: str = "none", norm: bool = False, act: bool = False) -> None:
        super().__init__()
        if scale not in ("none", "up", "down"):
            raise ValueError(f"scale must be 'none', 'up' or 'down', not {scale!r}")
        self.scale = scale
        self.conv2d = nn.Conv2d(cin, cout, 3, stride=2 if scale == "down" else 1, bias=not norm)
        self.norm: nn.Module = _BatchNorm(cout) if norm else nn.Identity()
        self.act: nn.Module = nn.LeakyReLU(0.2, inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == "up":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return self.act(self.norm(self.conv2d(x)))


class _ResidualBlock(nn.Module):
    """``shortcut(x) + conv2(conv1(x))``; the shortcut is a plain conv unless the shape is unchanged."""

    def __init__(self, cin: int, cout: int, scale: str = "none") -> None:
        super().__init__()
        self.shortcut_func: nn.Module
        if scale == "none" and cin == cout:
            self.shortcut_func = nn.Identity()
        else:
            self.shortcut_func = _ConvLayer(cin, cout, scale)
        first, second = {"down": ("none", "down"), "up": ("up", "none"), "none": ("none", "none")}[scale]
        self.conv1 = _ConvLayer(cin, cout, first, norm=True, act=True)
        self.conv2 = _ConvLayer(cout, cout, second, norm=True, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut_func(x) + self.conv2(self.conv1(x))


class ParseNet(nn.Module):
    """facexlib's ``ParseNet(in_size=512, out_size=512, parsing_ch=19)`` with its defaults
    (min_feat_size 32, base_ch 64, res_depth 10, channels clipped to [32, 256])."""

    def __init__(self, in_size: int = 512, out_size: int = 512, parsing_ch: int = PARSENET_CLASSES,
                 min_feat_size: int = 32, base_ch: int = 64, res_depth: int = 10,
                 ch_range: tuple[int, int] = (32, 256)) -> None:
        super().__init__()
        lo, hi = ch_range

        def clip(c: int) -> int:
            return max(lo, min(c, hi))

        down_steps = (in_size // min_feat_size).bit_length() - 1
        up_steps = (out_size // min_feat_size).bit_length() - 1
        enc: list[nn.Module] = [_ConvLayer(3, base_ch)]
        ch = base_ch
        for _ in range(down_steps):
            enc.append(_ResidualBlock(clip(ch), clip(ch * 2), "down"))
            ch *= 2
        self.encoder = nn.Sequential(*enc)
        self.body = nn.Sequential(*[_ResidualBlock(clip(ch), clip(ch)) for _ in range(res_depth)])
        dec: list[nn.Module] = []
        for _ in range(up_steps):
            dec.append(_ResidualBlock(clip(ch), clip(ch // 2), "up"))
            ch //= 2
        self.decoder = nn.Sequential(*dec)
        self.out_img_conv = _ConvLayer(clip(ch), 3)
        self.out_mask_conv = _ConvLayer(clip(ch), parsing_ch)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.encoder(x)
        x = feat + self.body(feat)
        x = self.decoder(x)
        return self.out_mask_conv(x), self.out_img_conv(x)
