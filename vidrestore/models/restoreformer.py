"""RestoreFormer: a from-scratch PyTorch definition, state-dict compatible with GFPGAN's ``RestoreFormer.pth``.

Written from the description in ``shared/reference/gfpgan/README.md`` (the official model is GFPGAN's
``RestoreFormer()`` with its defaults: ``n_embed=1024, embed_dim=256, ch=64, ch_mult=(1,2,2,4,4,8),
num_res_blocks=2, attn_resolutions=(16,), z_channels=256, head_size=8``); no code was taken from the official
repository. The state dict has the official 405 keys, names, shapes and order (72,680,003 parameters).

How it restores a 512x512 face (RGB in [-1, 1]):

1. A VQGAN encoder (two residual blocks per level, channels 64…512, 8-head self-attention at 16 px) keeps two
   features: ``feat_attn`` after the middle's first residual block and ``feat_mid`` after its second.
2. ``quant_conv`` then nearest-codebook quantisation (squared Euclidean distance over 1024 codes of size 256;
   computed in float32, also under autocast) and ``post_quant_conv``.
3. A decoder with three residual blocks per level whose attention is *cross* attention: the queries come from
   the (GroupNorm'ed) encoder feature, the keys and values from the decoder's own feature — ``feat_mid`` in the
   middle, ``feat_attn`` in the three blocks at 16 px. Output not clamped.

The quantiser's argmin is discontinuous: a near-tie between two codes can flip under a different float32
summation order and change the output locally by O(1). Compare code indices first (:meth:`encode` returns them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .vqgan import Downsample, ResBlock, Upsample, attend, group_norm, swish

__all__ = ["RestoreFormer", "RestoreFormerEncoding", "MultiHeadAttnBlock", "nearest_code"]

_SHORTCUT = "nin_shortcut"


class MultiHeadAttnBlock(nn.Module):
    """``x + proj_out(MHA(q = q(GN2(y)), k = k(GN1(x)), v = v(GN1(x))))``; self-attention (q from GN1(x)) when
    ``y`` is None. ``norm2`` exists (and is loaded) in every block but is used only for cross attention."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels do not split into {heads} heads")
        self.heads = heads
        self.norm1 = group_norm(channels)
        self.norm2 = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        query = h if y is None else self.norm2(y)
        return x + self.proj_out(attend(self.q(query), self.k(h), self.v(h), self.heads))


class _Level(nn.Module):
    """One resolution level: ``block`` (residual blocks), ``attn`` (empty or one per block), and a resampler
    registered as ``downsample`` / ``upsample`` (the official names) when the level has one."""

    def __init__(self, blocks: list[nn.Module], attn: list[nn.Module], resample: tuple[str, nn.Module] | None) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attn)
        self.resample_name = None if resample is None else resample[0]
        if resample is not None:
            self.add_module(*resample)

    def resample(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.resample_name is None else getattr(self, self.resample_name)(x)


class _Mid(nn.Module):
    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.block_1 = ResBlock(channels, channels, _SHORTCUT)
        self.attn_1 = MultiHeadAttnBlock(channels, heads)
        self.block_2 = ResBlock(channels, channels, _SHORTCUT)


class _Encoder(nn.Module):
    def __init__(self, ch: int, ch_mult: tuple[int, ...], n_res: int, attn_res: tuple[int, ...], resolution: int,
                 z_channels: int, heads: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        levels = []
        res, ch_in = resolution, ch
        for i, mult in enumerate(ch_mult):
            blocks, attn = [], []
            for _ in range(n_res):
                blocks.append(ResBlock(ch_in, ch * mult, _SHORTCUT))
                ch_in = ch * mult
                if res in attn_res:
                    attn.append(MultiHeadAttnBlock(ch_in, heads))
            last = i == len(ch_mult) - 1
            levels.append(_Level(blocks, attn, None if last else ("downsample", Downsample(ch_in))))
            if not last:
                res //= 2
        self.down = nn.ModuleList(levels)
        self.mid = _Mid(ch_in, heads)
        self.norm_out = group_norm(ch_in)
        self.conv_out = nn.Conv2d(ch_in, z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """→ (z, feat_attn, feat_mid)."""
        h = self.conv_in(x)
        for level in self.down:
            for i, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[i](h)
            h = level.resample(h)
        h = self.mid.block_1(h)
        feat_attn = h
        h = self.mid.block_2(self.mid.attn_1(h))
        feat_mid = h
        return self.conv_out(swish(self.norm_out(h))), feat_attn, feat_mid


class _Decoder(nn.Module):
    def __init__(self, ch: int, ch_mult: tuple[int, ...], n_res: int, attn_res: tuple[int, ...], resolution: int,
                 z_channels: int, heads: int) -> None:
        super().__init__()
        ch_in = ch * ch_mult[-1]
        res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, ch_in, 3, padding=1)
        self.mid = _Mid(ch_in, heads)
        levels: list[_Level] = []
        for i in reversed(range(len(ch_mult))):
            blocks, attn = [], []
            for _ in range(n_res + 1):
                blocks.append(ResBlock(ch_in, ch * ch_mult[i], _SHORTCUT))
                ch_in = ch * ch_mult[i]
                if res in attn_res:
                    attn.append(MultiHeadAttnBlock(ch_in, heads))
            levels.insert(0, _Level(blocks, attn, None if i == 0 else ("upsample", Upsample(ch_in))))
            if i != 0:
                res *= 2
        self.up = nn.ModuleList(levels)  # up[0] is the finest level, as in the official state dict
        self.norm_out = group_norm(ch_in)
        self.conv_out = nn.Conv2d(ch_in, 3, 3, padding=1)

    def forward(self, z: torch.Tensor, feat_attn: torch.Tensor, feat_mid: torch.Tensor) -> torch.Tensor:
        h = self.mid.block_1(self.conv_in(z))
        h = self.mid.block_2(self.mid.attn_1(h, feat_mid))
        for level in reversed(self.up):
            for i, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[i](h, feat_attn)
            h = level.resample(h)
        return self.conv_out(swish(self.norm_out(h)))


class _Codebook(nn.Module):
    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(size, dim)


def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise (B, C, H, W) to the nearest codebook rows → (z_q (B, C, H, W) float32, indices (B, H*W)).

    Float32 throughout, distances as ``|z|² + |e|² − 2 z·e`` (the official formula, so near-ties resolve the
    same way), and ``z + (e − z)`` for the output as the official straight-through form computes it.
    """
    b, c, h, w = z.shape
    with torch.autocast(device_type=z.device.type, enabled=False):
        flat = z.float().permute(0, 2, 3, 1).reshape(-1, c)
        e = codebook.float()
        d = flat.pow(2).sum(dim=1, keepdim=True) + e.pow(2).sum(dim=1) - 2 * flat @ e.t()
        idx = d.argmin(dim=1)
        zq = flat + (e[idx] - flat)
        zq = zq.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
    return zq, idx.reshape(b, h * w)


@dataclass(frozen=True)
class RestoreFormerEncoding:
    """What :meth:`RestoreFormer.encode` computes."""

    quant: torch.Tensor  # (B, 256, 16, 16) quantised latent (codebook rows), float32
    indices: torch.Tensor  # (B, 256) int64 code per position (row-major)
    feat_attn: torch.Tensor  # encoder feature after mid.block_1 (queries of the 16 px decoder attention)
    feat_mid: torch.Tensor  # encoder feature after mid.block_2 (queries of the decoder's middle attention)


class RestoreFormer(nn.Module):
    """RestoreFormer as GFPGAN builds it (``arch='RestoreFormer'``). ``forward(x)``: (B, 3, 512, 512) RGB in
    [-1, 1] → the restored face, same shape, not clamped."""

    def __init__(
        self,
        n_embed: int = 1024,
        embed_dim: int = 256,
        ch: int = 64,
        ch_mult: tuple[int, ...] = (1, 2, 2, 4, 4, 8),
        num_res_blocks: int = 2,
        attn_resolutions: tuple[int, ...] = (16,),
        resolution: int = 512,
        z_channels: int = 256,
        head_size: int = 8,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        args = (ch, tuple(ch_mult), num_res_blocks, tuple(attn_resolutions), resolution, z_channels, head_size)
        self.encoder = _Encoder(*args)
        self.decoder = _Decoder(*args)
        self.quantize = _Codebook(n_embed, embed_dim)
        self.quant_conv = nn.Conv2d(z_channels, embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)

    def encode(self, x: torch.Tensor) -> RestoreFormerEncoding:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"RestoreFormer needs (B, 3, H, W) input, got {tuple(x.shape)}")
        z, feat_attn, feat_mid = self.encoder(x)
        quant, idx = nearest_code(self.quant_conv(z), self.quantize.embedding.weight)
        return RestoreFormerEncoding(quant, idx, feat_attn, feat_mid)

    def decode(self, enc: RestoreFormerEncoding) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(enc.quant), enc.feat_attn, enc.feat_mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
