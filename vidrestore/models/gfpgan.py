"""GFPGANv1Clean: a from-scratch PyTorch definition, state-dict compatible with GFPGANv1.3 / v1.4.

Written from the architecture description in ``shared/reference/gfpgan/README.md`` (the official model is
``GFPGANv1Clean(out_size=512, channel_multiplier=2, input_is_latent=True, different_w=True, sft_half=True)``);
no code was taken from the official repository. The state dict has the official 285 keys, names and shapes.

Two deliberate differences from the official ``forward``:

* **No fresh random noise.** The official model draws new Gaussian noise at each of the 15 StyleConvs on every
  call (``randomize_noise=True``), which makes video flicker. Here ``forward(x)`` uses the 15 stored noise
  buffers (the official ``randomize_noise=False`` path) and ``forward(x, noise=[...])`` uses noise supplied by
  the caller, so a face track can carry its own fixed noise. Nothing in ``forward`` reads a random generator.
* ``forward`` returns the image tensor only (the official one returns ``(image, out_rgbs)``); the U-Net's
  auxiliary RGB outputs are a training aid and are not computed.

ModulatedConv2d is computed by modulating the *activations* (``conv(x * s, W) * demod``) instead of building a
per-sample weight and running a grouped convolution. It is mathematically the same layer (the reference
measured 2.1e-6 between the two forms) and it runs as one ordinary batched convolution, which is what CPUs and
GPUs are fastest at and what makes ``channels_last`` apply.

Outside the convolutions the forward works in place on fresh intermediates (leaky ReLU, as the official code;
``* sqrt(2) + noise + bias``; the SFT without split/cat), bit-identical to the out-of-place forms: on the CPU
every full-size temporary is fresh pages from the OS. ``bench/forward_gap.py`` measures it against the official
forward: same bits, 42 % less memory allocated per face.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GFPGANv1Clean", "ModulatedConv2d", "StyleConv", "ToRGB", "ResBlock", "StyleGAN2GeneratorCSFT"]

_SLOPE = 0.2


def _lrelu_(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU 0.2 in place, as the official code does: only ever applied to a fresh conv output, and it saves
    one full-size allocation per layer (on the CPU each large allocation is fresh pages from the OS)."""
    return F.leaky_relu_(x, _SLOPE)


def _add_(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``out + t``, into ``out`` (a fresh intermediate) when that keeps its dtype: always in fp32; under autocast a
    bf16/fp16 ``out`` plus an fp32 parameter is promoted to fp32, out of place, exactly as ``out + t`` is."""
    return out.add_(t) if torch.result_type(out, t) == out.dtype else out + t


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution (optionally demodulated), upsampling bilinearly x2 before the conv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_style_feat: int,
        demodulate: bool = True,
        upsample: bool = False,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.eps = eps
        self.padding = kernel_size // 2
        self.modulation = nn.Linear(num_style_feat, in_channels, bias=True)
        self.weight = nn.Parameter(torch.empty(1, out_channels, in_channels, kernel_size, kernel_size))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.modulation(style)  # (b, c_in)
        weight = self.weight[0]  # (c_out, c_in, k, k)
        if x.shape[0] == 1:
            # One face: fold modulation and demodulation into the (small) weights, as the official grouped conv
            # does, instead of scaling the (large) activations twice (~4 % faster per face on the 2-core CPU;
            # agrees with the batched path to ~1e-6).
            w = weight * s[0, None, :, None, None].to(weight.dtype)
            if self.demodulate:
                with torch.autocast(device_type=x.device.type, enabled=False):
                    demod = torch.rsqrt(w.float().pow(2).sum(dim=(1, 2, 3)) + self.eps)
                w = w * demod[:, None, None, None].to(w.dtype)
            if self.upsample:
                x = _resize(x, 2.0)
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
                w = w.contiguous(memory_format=torch.channels_last)
            return F.conv2d(x, w.to(x.dtype), padding=self.padding)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            weight = weight.contiguous(memory_format=torch.channels_last)
        # Scaling each input channel commutes with bilinear resizing, so modulate before upsampling (4x fewer
        # elements to scale).
        x = x * s[:, :, None, None].to(x.dtype)
        if self.upsample:
            x = _resize(x, 2.0)
        out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # sum over (c_in, k, k) of (W * s)^2 = (s^2) @ sum_k(W^2)^T
            # in float32 even under autocast: this is a 4608-term sum of small squares
            with torch.autocast(device_type=x.device.type, enabled=False):
                w2 = weight.float().pow(2).sum(dim=(2, 3))  # (c_out, c_in)
                demod = torch.rsqrt(s.float().pow(2) @ w2.t() + self.eps)  # (b, c_out)
            out = out * demod[:, :, None, None].to(out.dtype)
        return out


def _sft(out: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, half: bool) -> torch.Tensor:
    """Spatial feature transform ``x * scale + shift`` on the second half of the channels (``half``) or on all.

    Done in place on ``out`` (a fresh StyleConv output) where that gives the same values, which saves the
    official code's split, two full-size temporaries and a full-size ``cat``; out of place (the official form)
    when autograd records the graph, when tracing for OpenVINO, or when the result would need a wider dtype.
    """
    target = out[:, out.shape[1] // 2 :] if half else out
    dtype = out.dtype
    recorded = out.requires_grad or scale.requires_grad or shift.requires_grad
    if recorded or torch.jit.is_tracing() or torch.result_type(out, scale) != dtype \
            or torch.result_type(out, shift) != dtype:
        new = target * scale + shift
        return torch.cat([out[:, : out.shape[1] // 2], new], dim=1) if half else new
    target.mul_(scale).add_(shift)
    return out


class StyleConv(nn.Module):
    """Modulated conv x sqrt(2), plus scaled noise, plus bias, then leaky ReLU 0.2."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_style_feat: int, upsample: bool) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(
            in_channels, out_channels, kernel_size, num_style_feat, demodulate=True, upsample=upsample
        )
        self.weight = nn.Parameter(torch.empty(1))  # noise strength
        self.bias = nn.Parameter(torch.empty(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        # in place on the fresh conv output: the same values as ``conv * sqrt(2) + weight * noise + bias`` out of
        # place, with three fewer full-size tensors
        out = self.modulated_conv(x, style).mul_(math.sqrt(2.0))
        out = _add_(out, self.weight * noise.to(out.dtype))
        out = _add_(out, self.bias)
        return _lrelu_(out)


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation, plus bias, plus the (upsampled) previous RGB skip."""

    def __init__(self, in_channels: int, num_style_feat: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, num_style_feat, demodulate=False, upsample=False)
        self.bias = nn.Parameter(torch.empty(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            if self.upsample:
                skip = _resize(skip, 2.0)
            out = out + skip
        return out


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.weight.expand(batch, -1, -1, -1)


class _NormStyleCode(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class StyleGAN2GeneratorCSFT(nn.Module):
    """The StyleGAN2 decoder with spatial feature transforms (SFT) on half of the channels."""

    def __init__(
        self,
        out_size: int = 512,
        num_style_feat: int = 512,
        num_mlp: int = 8,
        channel_multiplier: int = 2,
        narrow: float = 1.0,
        sft_half: bool = True,
    ) -> None:
        super().__init__()
        self.sft_half = sft_half
        self.num_style_feat = num_style_feat
        # The style MLP maps z to w. With input_is_latent=True it is never used, but the official checkpoints
        # hold its weights, and the load is strict, so it has to exist (keys style_mlp.1, .3, ..., .15).
        layers: list[nn.Module] = [_NormStyleCode()]
        for _ in range(num_mlp):
            layers += [nn.Linear(num_style_feat, num_style_feat, bias=True), nn.LeakyReLU(_SLOPE)]
        self.style_mlp = nn.Sequential(*layers)

        ch = _decoder_channels(channel_multiplier, narrow)
        self.log_size = int(math.log2(out_size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2

        self.constant_input = ConstantInput(ch[4], 4)
        self.style_conv1 = StyleConv(ch[4], ch[4], 3, num_style_feat, upsample=False)
        self.to_rgb1 = ToRGB(ch[4], num_style_feat, upsample=False)

        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise{i}", torch.empty(1, 1, res, res))

        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_ch = ch[4]
        for level in range(3, self.log_size + 1):
            out_ch = ch[2**level]
            self.style_convs.append(StyleConv(in_ch, out_ch, 3, num_style_feat, upsample=True))
            self.style_convs.append(StyleConv(out_ch, out_ch, 3, num_style_feat, upsample=False))
            self.to_rgbs.append(ToRGB(out_ch, num_style_feat, upsample=True))
            in_ch = out_ch

    def noise_shapes(self) -> list[tuple[int, int, int, int]]:
        return [tuple(getattr(self.noises, f"noise{i}").shape) for i in range(self.num_layers)]  # type: ignore[misc]

    def stored_noise(self) -> list[torch.Tensor]:
        return [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]

    def forward(
        self,
        latent: torch.Tensor,
        conditions: Sequence[torch.Tensor],
        noise: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """``latent``: (b, num_latent, 512) per-layer w's; ``conditions``: [scale0, shift0, scale1, ...]."""
        out = self.constant_input(latent.shape[0])
        out = self.style_conv1(out, latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        for j, to_rgb in enumerate(self.to_rgbs):
            i = 2 * j + 1
            out = self.style_convs[2 * j](out, latent[:, i], noise[i])
            scale, shift = conditions[2 * j], conditions[2 * j + 1]
            out = _sft(out, scale, shift, self.sft_half)
            out = self.style_convs[2 * j + 1](out, latent[:, i + 1], noise[i + 1])
            skip = to_rgb(out, latent[:, i + 2], skip)
        return skip


class ResBlock(nn.Module):
    """U-Net residual block: conv3x3 -> lrelu -> resize x0.5/x2 -> conv3x3 -> lrelu, plus a resized 1x1 skip."""

    def __init__(self, in_channels: int, out_channels: int, mode: str) -> None:
        super().__init__()
        if mode not in ("down", "up"):
            raise ValueError(f"ResBlock mode must be 'down' or 'up', not {mode!r}")
        self.factor = 0.5 if mode == "down" else 2.0
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _lrelu_(self.conv1(x))
        out = _lrelu_(self.conv2(_resize(out, self.factor)))
        # into the skip conv's fresh output (autograd-safe: leaky_relu_'s backward needs its own result intact)
        return _add_(self.skip(_resize(x, self.factor)), out)


def _decoder_channels(channel_multiplier: int, narrow: float) -> dict[int, int]:
    cm = channel_multiplier
    return {
        4: int(512 * narrow),
        8: int(512 * narrow),
        16: int(512 * narrow),
        32: int(512 * narrow),
        64: int(256 * cm * narrow),
        128: int(128 * cm * narrow),
        256: int(64 * cm * narrow),
        512: int(32 * cm * narrow),
        1024: int(16 * cm * narrow),
    }


class GFPGANv1Clean(nn.Module):
    """GFPGAN v1 "clean" (no custom CUDA ops): a U-Net encoder whose features drive a StyleGAN2 decoder.

    Only the configuration of the published v1.2/v1.3/v1.4 weights is supported: ``input_is_latent=True``
    (the encoder's 16 style codes are used as w directly) and ``different_w=True`` (one w per layer).

    ``forward(x, noise=None)``: ``x`` is RGB, NCHW, in [-1, 1], ``out_size`` square. Returns the restored image,
    (N, 3, out_size, out_size), RGB, nominally [-1, 1] and **not clamped**. ``noise`` is ``None`` (use the
    stored noise buffers) or a sequence of ``num_noise`` tensors shaped ``(1 or N, 1, h, w)`` (see
    :meth:`noise_shapes`).
    """

    def __init__(
        self,
        out_size: int = 512,
        num_style_feat: int = 512,
        channel_multiplier: int = 2,
        num_mlp: int = 8,
        narrow: float = 1.0,
        sft_half: bool = True,
    ) -> None:
        super().__init__()
        log_size = int(math.log2(out_size))
        if 2**log_size != out_size or out_size < 8:
            raise ValueError(f"out_size must be a power of two >= 8, not {out_size}")
        self.out_size = out_size
        self.log_size = log_size
        self.num_style_feat = num_style_feat

        u = narrow * 0.5  # the U-Net has half the decoder's channels
        ch = {k: int(v * u) for k, v in _decoder_channels(channel_multiplier, 1.0).items()}

        self.conv_body_first = nn.Conv2d(3, ch[out_size], 1)
        self.conv_body_down = nn.ModuleList()
        in_ch = ch[out_size]
        for level in range(log_size, 2, -1):
            out_ch = ch[2 ** (level - 1)]
            self.conv_body_down.append(ResBlock(in_ch, out_ch, "down"))
            in_ch = out_ch
        self.final_conv = nn.Conv2d(in_ch, ch[4], 3, 1, 1)

        self.conv_body_up = nn.ModuleList()
        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        self.toRGB = nn.ModuleList()  # auxiliary training outputs; kept for the state dict, unused in forward
        in_ch = ch[4]
        for level in range(3, log_size + 1):
            out_ch = ch[2**level]
            self.conv_body_up.append(ResBlock(in_ch, out_ch, "up"))
            sft_ch = out_ch if sft_half else out_ch * 2
            for container in (self.condition_scale, self.condition_shift):
                container.append(
                    nn.Sequential(
                        nn.Conv2d(out_ch, out_ch, 3, 1, 1), nn.LeakyReLU(_SLOPE, inplace=True),
                        nn.Conv2d(out_ch, sft_ch, 3, 1, 1),
                    )
                )
            self.toRGB.append(nn.Conv2d(out_ch, 3, 1))
            in_ch = out_ch

        self.num_latent = log_size * 2 - 2
        self.final_linear = nn.Linear(ch[4] * 4 * 4, self.num_latent * num_style_feat)
        self.stylegan_decoder = StyleGAN2GeneratorCSFT(
            out_size, num_style_feat, num_mlp, channel_multiplier, narrow, sft_half
        )

    @property
    def num_noise(self) -> int:
        return self.stylegan_decoder.num_layers

    def noise_shapes(self) -> list[tuple[int, int, int, int]]:
        """Shapes ``(1, 1, h, w)`` of the 15 noise inputs, in StyleConv order (4, 8, 8, 16, 16, ..., 512, 512)."""
        return self.stylegan_decoder.noise_shapes()

    def _check_noise(self, noise: Sequence[torch.Tensor], batch: int) -> list[torch.Tensor]:
        shapes = self.noise_shapes()
        if len(noise) != len(shapes):
            raise ValueError(f"noise must be a list of {len(shapes)} tensors, got {len(noise)}")
        for i, (n, shape) in enumerate(zip(noise, shapes)):
            if n.ndim != 4 or tuple(n.shape[1:]) != shape[1:] or n.shape[0] not in (1, batch):
                raise ValueError(
                    f"noise[{i}] has shape {tuple(n.shape)}, expected (1 or {batch}, {', '.join(map(str, shape[1:]))})"
                )
        return list(noise)

    def forward(self, x: torch.Tensor, noise: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.out_size or x.shape[3] != self.out_size:
            raise ValueError(f"expected input (N, 3, {self.out_size}, {self.out_size}), got {tuple(x.shape)}")
        b = x.shape[0]
        noise_list = self.stylegan_decoder.stored_noise() if noise is None else self._check_noise(noise, b)

        skips: list[torch.Tensor] = []
        feat = _lrelu_(self.conv_body_first(x))
        for block in self.conv_body_down:
            feat = block(feat)
            skips.insert(0, feat)
        feat = _lrelu_(self.final_conv(feat))

        latent = self.final_linear(feat.reshape(b, -1)).view(b, self.num_latent, self.num_style_feat)

        conditions: list[torch.Tensor] = []
        for i, block in enumerate(self.conv_body_up):
            feat = block(feat + skips[i])
            conditions.append(self.condition_scale[i](feat))
            conditions.append(self.condition_shift[i](feat))

        return self.stylegan_decoder(latent, conditions, noise_list)
