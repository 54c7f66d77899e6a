"""CodeFormer: a from-scratch PyTorch definition, state-dict compatible with ``codeformer.pth`` (v0.1.0).

Written from the architecture description in ``shared/reference/codeformer/README.md`` (the official model is
``CodeFormer(dim_embd=512, codebook_size=1024, n_head=8, n_layers=9, connect_list=['32','64','128','256'])``
on a ``VQAutoEncoder(512, 64, [1,2,2,4,4,8], 'nearest', 2, [16], 1024)``); no code was taken from the official
repository. The state dict has the official 515 keys, names, shapes and order (94,112,707 parameters).

How it restores a 512x512 face (RGB in [-1, 1]):

1. A VQGAN encoder reduces it to ``lq_feat`` (B, 256, 16, 16) and keeps four skip features (at 256, 128, 64 and
   32 px, taken just before each of those resolutions is downsampled).
2. A 9-layer pre-norm transformer over the 256 tokens predicts a codebook index per token (``logits`` over
   1024 codes, argmax). Neither step depends on the fidelity weight ``w``.
3. The chosen codebook rows are re-normalised to ``lq_feat``'s per-channel mean and (unbiased) std (AdaIN), then
   decoded by the VQGAN generator. After the first residual block at 32, 64, 128 and 256 px a controllable
   feature transform mixes the encoder's skip feature in: ``dec + w * (dec * scale + shift)``. ``w = 0`` gives
   the pure codebook face (most "restored"); ``w = 1`` stays closest to the input (most faithful). The fusion is
   skipped for ``w <= 0``, as in the official code (no negative extrapolation).

The forward pass is split into :meth:`CodeFormer.encode` and :meth:`CodeFormer.decode` so several ``w`` can share
one encoding. The output is not clamped (about 2 % of values fall outside [-1, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .vqgan import Downsample, ResBlock, SelfAttention, Upsample, group_norm

__all__ = ["CodeFormer", "CodeFormerEncoding", "TransformerSALayer", "FuseSFTBlock", "adain"]

_CH_MULT = (1, 2, 2, 4, 4, 8)
_ATTN_RES = (16,)


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance norm with CodeFormer's statistics: per (b, c) mean and **unbiased** variance + ``eps``."""
    b, c = content.shape[:2]
    cf = content.reshape(b, c, -1)
    sf = style.reshape(b, c, -1)
    c_mean, c_std = cf.mean(dim=2), (cf.var(dim=2) + eps).sqrt()
    s_mean, s_std = sf.mean(dim=2), (sf.var(dim=2) + eps).sqrt()
    c_mean, c_std, s_mean, s_std = (t[:, :, None, None] for t in (c_mean, c_std, s_mean, s_std))
    return (content - c_mean) / c_std * s_std + s_mean


class _Blocks(nn.Module):
    """A flat ``blocks`` list (the official ``encoder.blocks.N`` / ``generator.blocks.N`` names)."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)


def _encoder(nf: int, emb_dim: int, img_size: int) -> tuple[_Blocks, dict[int, int]]:
    """VQGAN encoder blocks and ``{resolution: index of the block whose output is that skip}``."""
    blocks: list[nn.Module] = [nn.Conv2d(3, nf, 3, padding=1)]
    skips: dict[int, int] = {}
    res, ch_in = img_size, nf
    for level, mult in enumerate(_CH_MULT):
        ch_out = nf * mult
        for _ in range(2):
            blocks.append(ResBlock(ch_in, ch_out))
            ch_in = ch_out
            if res in _ATTN_RES:
                blocks.append(SelfAttention(ch_in))
        if level != len(_CH_MULT) - 1:
            skips[res] = len(blocks) - 1  # the last block at this resolution
            blocks.append(Downsample(ch_in))
            res //= 2
    blocks += [ResBlock(ch_in), SelfAttention(ch_in), ResBlock(ch_in)]  # the non-local middle
    blocks += [group_norm(ch_in), nn.Conv2d(ch_in, emb_dim, 3, padding=1)]
    return _Blocks(blocks), skips


def _generator(nf: int, emb_dim: int, img_size: int) -> tuple[_Blocks, dict[int, int]]:
    """VQGAN generator blocks and ``{resolution: index of the first ResBlock at that resolution}``."""
    ch_in = nf * _CH_MULT[-1]
    res = img_size // 2 ** (len(_CH_MULT) - 1)
    blocks: list[nn.Module] = [nn.Conv2d(emb_dim, ch_in, 3, padding=1)]
    blocks += [ResBlock(ch_in), SelfAttention(ch_in), ResBlock(ch_in)]  # the non-local middle
    fuse: dict[int, int] = {}
    for level in reversed(range(len(_CH_MULT))):
        ch_out = nf * _CH_MULT[level]
        for _ in range(2):
            blocks.append(ResBlock(ch_in, ch_out))
            fuse.setdefault(res, len(blocks) - 1)
            ch_in = ch_out
            if res in _ATTN_RES:
                blocks.append(SelfAttention(ch_in))
        if level != 0:
            blocks.append(Upsample(ch_in))
            res *= 2
    blocks += [group_norm(ch_in), nn.Conv2d(ch_in, 3, 3, padding=1)]
    return _Blocks(blocks), fuse


class _Codebook(nn.Module):
    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(size, dim)


class TransformerSALayer(nn.Module):
    """Pre-norm transformer layer: ``t += MHA(q=k=LN1(t)+pos, v=LN1(t))``; ``t += W2 gelu(W1 LN2(t))``.

    Tokens are batch-first here (B, L, C); the parameters are those of the official sequence-first layer.
    """

    def __init__(self, dim: int, heads: int, dim_mlp: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=0.0, batch_first=True)
        self.linear1 = nn.Linear(dim, dim_mlp)
        self.linear2 = nn.Linear(dim_mlp, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, t: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        h = self.norm1(t)
        qk = h + pos
        t = t + self.self_attn(qk, qk, h, need_weights=False)[0]
        return t + self.linear2(F.gelu(self.linear1(self.norm2(t))))


class FuseSFTBlock(nn.Module):
    """Controllable feature transform: ``dec + w * (dec * scale(e) + shift(e))``, ``e = ResBlock([enc, dec])``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.encode_enc = ResBlock(2 * channels, channels)
        self.scale = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(channels, channels, 3, padding=1)
        )
        self.shift = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(channels, channels, 3, padding=1)
        )

    def forward(self, enc: torch.Tensor, dec: torch.Tensor, w: float) -> torch.Tensor:
        e = self.encode_enc(torch.cat([enc, dec], dim=1))
        return dec + w * (dec * self.scale(e) + self.shift(e))


@dataclass(frozen=True)
class CodeFormerEncoding:
    """What :meth:`CodeFormer.encode` computes (independent of ``w``)."""

    lq_feat: torch.Tensor  # (B, 256, 16, 16) encoder output
    logits: torch.Tensor  # (B, 256, 1024) code logits per token (token = 16 * row + col)
    codes: torch.Tensor  # (B, 256) int64, argmax of the logits
    skips: dict[int, torch.Tensor]  # resolution -> encoder feature fused into the generator


class CodeFormer(nn.Module):
    """CodeFormer with the official inference configuration (512 px faces; the only supported size).

    ``forward(x, w)``: (B, 3, 512, 512) RGB in [-1, 1] → (B, 3, 512, 512), not clamped.
    """

    def __init__(
        self,
        dim_embd: int = 512,
        n_head: int = 8,
        n_layers: int = 9,
        codebook_size: int = 1024,
        latent_size: int = 256,
        connect_list: tuple[str, ...] = ("32", "64", "128", "256"),
        img_size: int = 512,
        nf: int = 64,
        emb_dim: int = 256,
    ) -> None:
        super().__init__()
        self.img_size = img_size
        self.emb_dim = emb_dim
        self.latent_hw = img_size // 2 ** (len(_CH_MULT) - 1)
        if self.latent_hw**2 != latent_size:
            raise ValueError(f"latent_size {latent_size} does not match a {img_size} px input")
        self.connect = tuple(int(s) for s in connect_list)
        # Registration order = the official state-dict order (position_emb comes first either way).
        self.position_emb = nn.Parameter(torch.zeros(latent_size, dim_embd))
        self.encoder, self._enc_skip = _encoder(nf, emb_dim, img_size)
        self.quantize = _Codebook(codebook_size, emb_dim)
        self.generator, self._gen_fuse = _generator(nf, emb_dim, img_size)
        self.feat_emb = nn.Linear(emb_dim, dim_embd)
        self.ft_layers = nn.ModuleList(TransformerSALayer(dim_embd, n_head, 2 * dim_embd) for _ in range(n_layers))
        self.idx_pred_layer = nn.Sequential(nn.LayerNorm(dim_embd), nn.Linear(dim_embd, codebook_size, bias=False))
        gen_channels = {res: self.generator.blocks[i].out_channels for res, i in self._gen_fuse.items()}
        self.fuse_convs_dict = nn.ModuleDict({str(r): FuseSFTBlock(gen_channels[r]) for r in self.connect})
        # block index -> resolution, for the two loops in encode/decode
        self._enc_take = {self._enc_skip[r]: r for r in self.connect}
        self._gen_take = {self._gen_fuse[r]: r for r in self.connect}

    def encode(self, x: torch.Tensor) -> CodeFormerEncoding:
        size = self.img_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, size, size):
            raise ValueError(f"CodeFormer needs (B, 3, {size}, {size}) input, got {tuple(x.shape)}")
        skips: dict[int, torch.Tensor] = {}
        h = x
        for i, block in enumerate(self.encoder.blocks):
            h = block(h)
            if i in self._enc_take:
                skips[self._enc_take[i]] = h
        lq_feat = h
        tokens = self.feat_emb(lq_feat.flatten(2).transpose(1, 2))  # (B, 256, 512), token = 16*row + col
        pos = self.position_emb.to(tokens.dtype)
        for layer in self.ft_layers:
            tokens = layer(tokens, pos)
        logits = self.idx_pred_layer(tokens)  # (B, 256, 1024)
        codes = logits.argmax(dim=2)
        return CodeFormerEncoding(lq_feat, logits, codes, skips)

    def quant_feat(self, enc: CodeFormerEncoding, adain_style: bool = True) -> torch.Tensor:
        """The generator input: the codebook rows of ``enc.codes`` as (B, 256, 16, 16), AdaIN'd to ``lq_feat``.

        Computed in float32 (also under autocast): the statistics are sums over 256 positions.
        """
        b, hw = enc.codes.shape[0], self.latent_hw
        feat = self.quantize.embedding.weight.float()[enc.codes]  # (B, 256, C)
        feat = feat.transpose(1, 2).reshape(b, self.emb_dim, hw, hw)
        if adain_style:
            feat = adain(feat, enc.lq_feat.float())
        return feat

    def decode(self, enc: CodeFormerEncoding, w: float = 0.5) -> torch.Tensor:
        w = float(w)
        h = self.quant_feat(enc)
        for i, block in enumerate(self.generator.blocks):
            h = block(h)
            if w > 0 and i in self._gen_take:
                res = self._gen_take[i]
                h = self.fuse_convs_dict[str(res)](enc.skips[res], h, w)
        return h

    def forward(self, x: torch.Tensor, w: float = 0.5) -> torch.Tensor:
        return self.decode(self.encode(x), w)
