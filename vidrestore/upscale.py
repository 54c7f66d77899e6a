"""Whole-frame upscaling: Real-ESRGAN (RRDBNet, tiled) or plain Lanczos.

Two upscalers with the same two entry points:

* ``upscale(frame)``: numpy **RGB** uint8 ``(H, W, 3)`` in, ``(round(H*s), round(W*s), 3)`` uint8 out (the
  pipeline's case). :class:`RealESRGANUpscaler` also takes what ``RealESRGANer.enhance`` takes, in RGB order:
  2-D grey, RGBA ``(H, W, 4)`` and uint16 (see below).
* ``upscale_tensor(x)``: float ``(N, 3, H, W)`` RGB in [0, 1] on the upscaler's device, ``(N, 3, H*s, W*s)``
  float32 in [0, 1] out, for a pipeline that keeps frames on the device.

:class:`RealESRGANUpscaler` reproduces ``RealESRGANer.enhance`` (Real-ESRGAN 0.3.0) step for step, on the model's
device: ``/255`` → reflect ``pre_pad`` on the bottom/right → reflect mod pad to even size (x2 model) → the model,
untiled or in ``tile``×``tile`` squares with ``tile_pad`` context each (context cut away before pasting, exactly
the official tiling, so results match the official tiled output, including its faint tile seams) → crop →
clamp to [0, 1] → ``×255`` → round half to even. The official code works in BGR and converts to RGB for the
model; here frames are RGB already, so the model sees the same tensor and the output channels are simply in RGB
order. With the official x2plus/x4plus weights, results equal ``RealESRGANer`` within ±1.

Deliberate differences from ``RealESRGANer``:

* 16-bit input is recognised by dtype (uint16 → ``/65535``, uint16 out), not by value (the official code
  treats any image with ``max > 256`` as 16-bit and a uint16 image with ``max <= 256`` as 8-bit).
* Odd ``tile``/``tile_pad`` with the x2 model are refused up front (:class:`UsageError`); the official code
  fails inside ``pixel_unshuffle`` on the border tiles. ``pre_pad`` is reduced to ``min(H, W) - 1`` on tiny
  images, where reflect padding cannot be wider than the image.
* No tile progress is printed, and an error inside a tile propagates (the official code prints it and pastes a
  stale tile).
* ``fp16``/``bf16`` run under CUDA autocast (official: ``model.half()``), CUDA only.

Scales: ``scale`` is the output factor. 4 uses ``RealESRGAN_x4plus.pth``; 2 uses ``RealESRGAN_x2plus.pth``;
1 runs the x2 model and resizes back to the input size with Lanczos, as GFPGAN's ``--upscale 1`` does with its
x2 background upsampler. ``outscale`` (any positive float) overrides the output size the way ``enhance``'s
``outscale`` does: ``cv2.resize(..., (int(W*outscale), int(H*outscale)), INTER_LANCZOS4)`` on the rounded
image. On the tensor path the same Lanczos-4 kernel is applied to the float tensor on the device
(:func:`lanczos_resize_tensor`; matches OpenCV's float resize to ~1e-6, its uint8 resize within ±1).

Tiles: ``tile=None`` picks the size from the device: on CUDA the largest square that fits half of the free
memory (``0``, untiled, whenever the whole frame fits: no seams at all); on the CPU :data:`CPU_TILE` (400,
GFPGAN's ``--bg_tile`` default), which bounds memory to ~0.6 GB per tile at x2. ``tile=0`` is always untiled.

Geometry: :func:`scale_affine` turns a face's image → crop affine into the one for the upscaled frame, with
GFPGAN's half-pixel convention, so faces can be pasted at the upscaled geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .device import PRECISIONS, resolve_device
from .device import autocast
from .device import check_precision as _check_precision
from .errors import DeviceError, UsageError

__all__ = [
    "METHODS",
    "SCALES",
    "PRECISIONS",
    "CPU_TILE",
    "BYTES_PER_OUTPUT_PIXEL",
    "UpscaleOptions",
    "RealESRGANUpscaler",
    "LanczosUpscaler",
    "load_upscaler",
    "scale_affine",
    "choose_tile",
    "output_size",
    "lanczos_resize_tensor",
]

METHODS = ("realesrgan", "lanczos")
SCALES = (1, 2, 4)
ALPHA_UPSAMPLERS = ("realesrgan", "linear")
#: Default tile on the CPU (input pixels; GFPGAN's ``--bg_tile`` default).
CPU_TILE = 400
#: Peak activation memory of RRDBNet per output pixel in float32: about three live 64-channel maps at output
#: resolution (the upsampled input of conv_up2 or conv_hr, its output, and the next one).
BYTES_PER_OUTPUT_PIXEL = 3 * 64 * 4
_MIN_AUTO_TILE = 32


# --------------------------------------------------------------------------------------------------------------
# Options and pure helpers


@dataclass(frozen=True)
class UpscaleOptions:
    """How to upscale whole frames.

    ``scale``: output factor 1, 2 or 4. ``method``: ``"realesrgan"`` or ``"lanczos"``. ``tile``: tile side in
    input pixels, ``0`` untiled, ``None`` automatic (see the module docstring). ``tile_pad``: context around each
    tile. ``pre_pad``: reflect padding on the bottom/right before the model (GFPGAN 0, ``RealESRGANer`` 10).
    ``precision``: ``"fp32"``, or ``"fp16"``/``"bf16"`` (CUDA autocast). ``outscale``: final factor when it is
    not ``scale`` (as ``enhance(outscale=...)``). ``alpha_upsampler``: RGBA frames' alpha through the model
    (``"realesrgan"``, the official default) or ``cv2.resize`` INTER_LINEAR (``"linear"``).
    """

    scale: int = 2
    method: str = "realesrgan"
    tile: int | None = None
    tile_pad: int = 10
    pre_pad: int = 0
    precision: str = "fp32"
    outscale: float | None = None
    alpha_upsampler: str = "realesrgan"

    def __post_init__(self) -> None:
        if self.scale not in SCALES or isinstance(self.scale, bool):
            raise UsageError(f"upscale factor must be one of {', '.join(map(str, SCALES))}, got {self.scale!r}")
        if self.method not in METHODS:
            raise UsageError(f"unknown upscale method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.tile is not None and (not isinstance(self.tile, int) or self.tile < 0):
            raise UsageError(f"tile must be a non-negative integer (0 = untiled) or None (automatic), got {self.tile!r}")
        if not isinstance(self.tile_pad, int) or self.tile_pad < 0:
            raise UsageError(f"tile_pad must be a non-negative integer, got {self.tile_pad!r}")
        if not isinstance(self.pre_pad, int) or self.pre_pad < 0:
            raise UsageError(f"pre_pad must be a non-negative integer, got {self.pre_pad!r}")
        if self.precision not in PRECISIONS:
            raise DeviceError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.outscale is not None and not (isinstance(self.outscale, (int, float)) and self.outscale > 0):
            raise UsageError(f"outscale must be a positive number, got {self.outscale!r}")
        if self.alpha_upsampler not in ALPHA_UPSAMPLERS:
            raise UsageError(
                f"unknown alpha upsampler {self.alpha_upsampler!r}; choose one of {', '.join(ALPHA_UPSAMPLERS)}"
            )
        if self.method == "realesrgan" and self.model_scale == 2:
            if (self.tile or 0) % 2 or self.tile_pad % 2:
                raise UsageError(
                    f"tile ({self.tile}) and tile_pad ({self.tile_pad}) must be even with the x2 model "
                    "(it pixel-unshuffles each tile by 2)"
                )

    @property
    def model_scale(self) -> int:
        """The network's own factor: 4 for scale 4, else 2 (scale 1 runs x2 and resizes back)."""
        return 4 if self.scale == 4 else 2

    @property
    def final_scale(self) -> float:
        """The factor of the returned frame: ``outscale`` when given, else ``scale``."""
        return float(self.outscale) if self.outscale is not None else float(self.scale)


def output_size(height: int, width: int, factor: float) -> tuple[int, int]:
    """(height, width) of a ``factor`` upscale, truncated as ``RealESRGANer`` does (``int(w * outscale)``)."""
    return int(height * factor), int(width * factor)


def choose_tile(
    height: int,
    width: int,
    model_scale: int,
    free_bytes: int,
    tile_pad: int = 10,
    bytes_per_output_pixel: int = BYTES_PER_OUTPUT_PIXEL,
    fraction: float = 0.5,
) -> int:
    """Tile side (input pixels, a multiple of 8) so one tile's activations fit ``fraction`` of ``free_bytes``.

    ``0`` (untiled) when the whole ``height``×``width`` frame fits. Never below 32.
    """
    budget_px = max(0.0, free_bytes * fraction / bytes_per_output_pixel)  # output pixels
    if height * width * model_scale**2 <= budget_px:
        return 0
    side_in = int(math.sqrt(budget_px) / model_scale) - 2 * tile_pad
    return max(_MIN_AUTO_TILE, side_in // 8 * 8)


def scale_affine(affine: np.ndarray, s: float) -> np.ndarray:
    """The image → crop affine for the frame upscaled by ``s``, given the one for the original frame.

    GFPGAN/facexlib paste a crop into an ``s``-times upscaled frame with ``invert(affine) * s`` plus a shift of
    ``0.5 * s`` when ``s > 1``: a crop point that came from original pixel ``(x, y)`` lands at
    ``(s*x + s/2, s*y + s/2)``. This returns the inverse of that crop → upscaled-frame matrix, so
    ``scale_affine(A, s) @ [s*x + s/2, s*y + s/2, 1] == A @ [x, y, 1]``; for ``s == 1`` it returns ``A``.
    (The pixel-centre-exact shift would be ``(s - 1)/2``; GFPGAN's is half an output pixel further, and we keep
    it so faces land where GFPGAN puts them.) Pure: the input is not modified.
    """
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (2, 3):
        raise ValueError(f"affine must have shape (2, 3), got {a.shape}")
    s = float(s)
    if s <= 0:
        raise ValueError(f"scale must be positive, got {s}")
    offset = 0.5 * s if s > 1 else 0.0
    lin = a[:, :2] / s
    out = np.empty((2, 3), dtype=np.float64)
    out[:, :2] = lin
    out[:, 2] = a[:, 2] - lin @ np.array([offset, offset])
    return out


# --------------------------------------------------------------------------------------------------------------
# Lanczos-4 on tensors (OpenCV's kernel and coordinate mapping)


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


# --------------------------------------------------------------------------------------------------------------
# Upscalers


def _as_frame(frame: np.ndarray) -> tuple[np.ndarray, float]:
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype == np.uint8:
        max_range = 255.0
    elif frame.dtype == np.uint16:
        max_range = 65535.0
    else:
        raise ValueError(f"frame must be uint8 or uint16, got {frame.dtype}")
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (3, 4))):
        raise ValueError(f"frame must be (H, W), (H, W, 3) or (H, W, 4), got {frame.shape}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"frame is empty: {frame.shape}")
    return frame, max_range


def _to_dtype(x: np.ndarray, max_range: float) -> np.ndarray:
    """[0, 1] float32 → uint8/uint16 as ``enhance``: ``(x * max).round()`` (half to even)."""
    y = np.round(x * np.float32(max_range))
    return y.astype(np.uint16 if max_range > 255 else np.uint8)


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
        frame, _ = _as_frame(frame)
        oh, ow = self.output_shape(*frame.shape[:2])
        if (oh, ow) == frame.shape[:2]:
            return frame.copy()
        return cv2.resize(frame, (ow, oh), interpolation=cv2.INTER_LANCZOS4)

    def upscale_tensor(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"x must be (N, C, H, W), got {tuple(x.shape)}")
        return lanczos_resize_tensor(x, self.output_shape(x.shape[2], x.shape[3])).clamp_(0.0, 1.0)


class RealESRGANUpscaler:
    """A loaded RRDBNet with its tiling and precision settings (see the module docstring)."""

    method = "realesrgan"

    def __init__(
        self,
        model: torch.nn.Module,
        options: UpscaleOptions,
        channels_last: bool | None = None,
    ) -> None:
        if options.method != "realesrgan":
            raise UsageError(f"RealESRGANUpscaler needs method 'realesrgan', got {options.method!r}")
        model_scale = getattr(model, "scale", None)
        if model_scale != options.model_scale:
            raise UsageError(f"options want an x{options.model_scale} model, got x{model_scale}")
        self.device = next(model.parameters()).device
        _check_precision(options.precision, self.device)
        self.model = model.eval()
        self.options = options
        self.channels_last = (self.device.type == "cuda") if channels_last is None else bool(channels_last)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    # -- properties ----------------------------------------------------------------------------------------

    @property
    def scale(self) -> float:
        return self.options.final_scale

    @property
    def model_scale(self) -> int:
        return self.options.model_scale

    @property
    def precision(self) -> str:
        return self.options.precision

    def __repr__(self) -> str:
        o = self.options
        return (
            f"RealESRGANUpscaler(scale={o.final_scale:g}, model=x{o.model_scale}, device={str(self.device)!r}, "
            f"tile={o.tile}, tile_pad={o.tile_pad}, pre_pad={o.pre_pad}, precision={o.precision!r})"
        )

    def with_options(self, **changes: object) -> RealESRGANUpscaler:
        """The same model with other options (tile, pads, outscale, …; not another model scale)."""
        return RealESRGANUpscaler(self.model, replace(self.options, **changes), self.channels_last)

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        return output_size(height, width, self.scale)

    def tile_for(self, height: int, width: int) -> int:
        """The tile side used for a padded model input of ``height``×``width`` (0 = untiled)."""
        tile = self.options.tile
        if tile is None:
            if self.device.type == "cuda":
                free, _ = torch.cuda.mem_get_info(self.device)
                free += torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
                tile = choose_tile(height, width, self.model_scale, free, self.options.tile_pad)
            else:
                tile = CPU_TILE
        if tile >= height and tile >= width:
            return 0  # one tile covering everything is exactly the untiled forward
        return tile

    # -- core ----------------------------------------------------------------------------------------------

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.precision):
            return self.model(x).float()

    def _tiled(self, img: torch.Tensor, tile: int) -> torch.Tensor:
        n, c, h, w = img.shape
        s, pad = self.model_scale, self.options.tile_pad
        out = img.new_zeros((n, c, h * s, w * s), dtype=torch.float32)
        for y0 in range(0, h, tile):
            y1 = min(y0 + tile, h)
            py0, py1 = max(y0 - pad, 0), min(y1 + pad, h)
            for x0 in range(0, w, tile):
                x1 = min(x0 + tile, w)
                px0, px1 = max(x0 - pad, 0), min(x1 + pad, w)
                res = self._run(img[:, :, py0:py1, px0:px1])
                oy, ox = (y0 - py0) * s, (x0 - px0) * s
                out[:, :, y0 * s : y1 * s, x0 * s : x1 * s] = res[:, :, oy : oy + (y1 - y0) * s, ox : ox + (x1 - x0) * s]
        return out

    @torch.inference_mode()
    def enhance_raw(self, x: torch.Tensor) -> torch.Tensor:
        """``pre_process`` → (tiled) model → ``post_process`` of ``RealESRGANer`` on a float (N, 3, H, W) tensor.

        Returns float32 (N, 3, H*model_scale, W*model_scale), unclamped.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be (N, 3, H, W), got {tuple(x.shape)}")
        x = x.to(self.device, torch.float32)
        h, w = x.shape[2], x.shape[3]
        pre = min(self.options.pre_pad, h - 1, w - 1)
        if pre > 0:
            x = F.pad(x, (0, pre, 0, pre), mode="reflect")
        mod = 2 if self.model_scale == 2 else 1
        mh, mw = (-x.shape[2]) % mod, (-x.shape[3]) % mod
        if mh or mw:
            x = _pad_reflect_br(x, mh, mw)
        tile = self.tile_for(x.shape[2], x.shape[3])
        out = self._run(x) if tile == 0 else self._tiled(x, tile)
        s = self.model_scale
        return out[:, :, : h * s, : w * s]

    @torch.inference_mode()
    def upscale_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Float (N, 3, H, W) RGB in [0, 1] on the device → float32 (N, 3, H*s, W*s) in [0, 1] on the device.

        With an output factor other than the model's (scale 1, ``outscale``), the model output is resized with
        :func:`lanczos_resize_tensor` (the numpy path resizes the rounded uint8 image with OpenCV instead).
        """
        out = self.enhance_raw(x).clamp_(0.0, 1.0)
        size = self.output_shape(x.shape[2], x.shape[3])
        if size != tuple(out.shape[2:]):
            out = lanczos_resize_tensor(out, size).clamp_(0.0, 1.0)
        return out

    def _enhance_u8(self, img: np.ndarray, max_range: float) -> torch.Tensor:
        """uint (H, W, 3) → clamped float32 (1, 3, Hs, Ws) on the device."""
        t = torch.from_numpy(np.ascontiguousarray(img)).to(self.device)
        if t.dtype == torch.uint16:
            t = t.to(torch.int32)
        t = t.permute(2, 0, 1).unsqueeze(0).to(torch.float32) / max_range
        return self.enhance_raw(t).clamp_(0.0, 1.0)

    @torch.inference_mode()
    def upscale(self, frame: np.ndarray) -> np.ndarray:
        """RGB uint8 (H, W, 3) → RGB uint8 (H*s, W*s, 3), as ``RealESRGANer.enhance`` (in RGB order).

        Also grey (H, W), RGBA (H, W, 4) and uint16 frames, returned in the same layout and dtype.
        """
        frame, max_range = _as_frame(frame)
        h, w = frame.shape[:2]
        if frame.ndim == 3 and frame.shape[2] == 3:
            out = self._enhance_u8(frame, max_range)
            out = (out * max_range).round_()
            out = out.to(torch.int32 if max_range > 255 else torch.uint8)[0].permute(1, 2, 0).cpu().numpy()
            result = out.astype(np.uint16) if max_range > 255 else out
        else:
            result = self._upscale_other(frame, max_range)
        oh, ow = self.output_shape(h, w)
        if (oh, ow) != result.shape[:2]:
            result = cv2.resize(result, (ow, oh), interpolation=cv2.INTER_LANCZOS4)
        return result

    def _upscale_other(self, frame: np.ndarray, max_range: float) -> np.ndarray:
        """Grey and RGBA, through the official float steps (OpenCV grey conversion on the CPU)."""
        if frame.ndim == 2:
            rgb = np.repeat(frame[:, :, None], 3, axis=2)
            out = self._enhance_u8(rgb, max_range)[0].permute(1, 2, 0).cpu().numpy()
            grey = cv2.cvtColor(np.ascontiguousarray(out[:, :, ::-1]), cv2.COLOR_BGR2GRAY)
            return _to_dtype(grey, max_range)
        colour = self._enhance_u8(frame[:, :, :3], max_range)[0].permute(1, 2, 0).cpu().numpy()
        alpha = frame[:, :, 3]
        if self.options.alpha_upsampler == "realesrgan":
            a = self._enhance_u8(np.repeat(alpha[:, :, None], 3, axis=2), max_range)[0].permute(1, 2, 0).cpu().numpy()
            a = cv2.cvtColor(np.ascontiguousarray(a[:, :, ::-1]), cv2.COLOR_BGR2GRAY)
        else:
            a = alpha.astype(np.float32) / np.float32(max_range)
            s = self.model_scale
            a = cv2.resize(a, (alpha.shape[1] * s, alpha.shape[0] * s), interpolation=cv2.INTER_LINEAR)
        rgba = np.concatenate([colour, a[:, :, None]], axis=2)
        return _to_dtype(rgba, max_range)


def _pad_reflect_br(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """Reflect padding on the bottom/right; a 1-pixel-high/wide image is replicated (reflect is undefined)."""
    mode = "reflect" if (x.shape[2] > ph and x.shape[3] > pw) else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


# --------------------------------------------------------------------------------------------------------------
# Loading


def load_upscaler(
    scale: int,
    method: str = "realesrgan",
    device: str | torch.device | None = None,
    weights_dir: str | Path | None = None,
    tile: int | None = None,
    tile_pad: int = 10,
    precision: str = "fp32",
    *,
    pre_pad: int = 0,
    outscale: float | None = None,
    weights: str | Path | None = None,
    channels_last: bool | None = None,
) -> RealESRGANUpscaler | LanczosUpscaler:
    """An upscaler by method and output factor.

    ``"realesrgan"`` resolves ``RealESRGAN_x2plus.pth`` (scale 1, 2) or ``RealESRGAN_x4plus.pth`` (scale 4)
    through :func:`vidrestore.weights.resolve_weights` (``weights`` overrides the file: a path or registry
    name). Options, device and precision are checked before any weights are read. Raises
    :class:`UsageError` (bad options), :class:`DeviceError`, :class:`WeightsError` (missing, cannot download)
    or :class:`CheckpointError` (not an RRDBNet checkpoint of that scale). ``"lanczos"`` needs no weights.
    """

    opts = UpscaleOptions(
        scale=scale, method=method, tile=tile, tile_pad=tile_pad, pre_pad=pre_pad, precision=precision,
        outscale=outscale,
    )
    dev = resolve_device(device)
    if method == "lanczos":
        return LanczosUpscaler(opts.final_scale, dev)
    _check_precision(precision, dev)
    from .models.rrdbnet import RRDBNET_FILES, build_rrdbnet
    from .weights import resolve_weights

    path = resolve_weights(weights if weights is not None else RRDBNET_FILES[opts.model_scale], weights_dir=weights_dir)
    model = build_rrdbnet(path, opts.model_scale, dev)
    return RealESRGANUpscaler(model, opts, channels_last)
