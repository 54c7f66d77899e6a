"""RRDBNet: the ESRGAN generator used by Real-ESRGAN (``RealESRGAN_x2plus.pth`` / ``RealESRGAN_x4plus.pth``).

Written from the architecture description in ``shared/reference/realesrgan/README.md``; its state dict has the
official 702 keys, names, order and shapes (``conv_first``, ``body.{0..22}.rdb{1,2,3}.conv{1..5}``,
``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``; weight and bias each).

Shape of the network (``s`` = scale)::

    s == 2: pixel_unshuffle(x, 2) (channel order c*4 + dy*2 + dx), H and W must be even
    s == 1: pixel_unshuffle(x, 4), H and W divisible by 4
    feat = conv_first(x); feat = feat + conv_body(body(feat))      body: 23 RRDBs
    feat = lrelu(conv_up1(nearest_x2(feat))); feat = lrelu(conv_up2(nearest_x2(feat)))
    out  = conv_last(lrelu(conv_hr(feat)))                           no clamp

so every scale runs the same x4 trunk and produces 16 output pixels per trunk pixel. LeakyReLU slope 0.2;
residual scaling 0.2 inside each RDB and around each RRDB.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_into

__all__ = ["RRDBNet", "RRDB", "ResidualDenseBlock", "build_rrdbnet", "RRDBNET_FILES"]

_SLOPE = 0.2
_RES_SCALE = 0.2

#: Official weight file per scale (the registry names in :mod:`vidrestore.weights`).
RRDBNET_FILES = {2: "RealESRGAN_x2plus.pth", 4: "RealESRGAN_x4plus.pth"}


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; ``conv5(...) * 0.2 + x``."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        f, g = num_feat, num_grow_ch
        self.conv1 = _conv(f, g)
        self.conv2 = _conv(f + g, g)
        self.conv3 = _conv(f + 2 * g, g)
        self.conv4 = _conv(f + 3 * g, g)
        self.conv5 = _conv(f + 4 * g, f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            inp = feats[0] if len(feats) == 1 else torch.cat(feats, 1)
            feats.append(F.leaky_relu(conv(inp), _SLOPE, inplace=True))
        return self.conv5(torch.cat(feats, 1)) * _RES_SCALE + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three RDBs, ``out * 0.2 + x``."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * _RES_SCALE + x


class RRDBNet(nn.Module):
    """The Real-ESRGAN generator. Input RGB float (N, 3, H, W) in [0, 1]; output (N, 3, H*scale, W*scale), unclamped.

    ``scale`` 2 expects H and W even, ``scale`` 1 divisible by 4 (they are pixel-unshuffled first).
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet scale must be 1, 2 or 4, got {scale}")
        self.scale = scale
        self.unshuffle = {1: 4, 2: 2, 4: 1}[scale]
        self.conv_first = _conv(num_in_ch * self.unshuffle**2, num_feat)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = _conv(num_feat, num_feat)
        self.conv_up1 = _conv(num_feat, num_feat)
        self.conv_up2 = _conv(num_feat, num_feat)
        self.conv_hr = _conv(num_feat, num_feat)
        self.conv_last = _conv(num_feat, num_out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            r = self.unshuffle
            if x.shape[-2] % r or x.shape[-1] % r:
                raise ValueError(
                    f"RRDBNet x{self.scale} needs height and width divisible by {r}, got {tuple(x.shape[-2:])}"
                )
            x = F.pixel_unshuffle(x, r)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), _SLOPE, inplace=True)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), _SLOPE, inplace=True)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), _SLOPE, inplace=True))


def build_rrdbnet(path: str | Path, scale: int, device: torch.device | str = "cpu") -> RRDBNet:
    """An RRDBNet (Real-ESRGAN x``scale``plus layout) on ``device`` with the weights of ``path``, in eval mode.

    Loading is strict and reads ``params_ema`` (else ``params``, else a bare state dict), as ``RealESRGANer``
    does; anything else is a one-line :class:`~vidrestore.errors.CheckpointError`.
    """
    with torch.device("meta"):  # skip the random init of 16.7 M parameters
        model = RRDBNet(scale=scale)
    model = model.to_empty(device=torch.device(device))
    load_into(model, path, f"RRDBNet x{scale} (Real-ESRGAN x{scale}plus)", keys=("params_ema", "params"))
    return model.eval().requires_grad_(False)
