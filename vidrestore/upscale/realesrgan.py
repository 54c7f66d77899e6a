"""Real-ESRGAN upscaling: RRDBNet on whole frames, untiled or tiled (the package docs: :mod:`vidrestore.upscale`).

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
* ``fp16``/``bf16`` run under CUDA autocast (official: ``model.half()``); ``bf16`` also on a CPU that has it
  (torch autocast, or the OpenVINO network compiled with the bf16 hint: ``backend="openvino"``).

Options, scales and tiles: :mod:`vidrestore.upscale.options`.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..device import autocast
from ..device import check_precision as _check_precision
from ..errors import UsageError
from .lanczos import lanczos_resize_tensor
from .options import CPU_TILE, UpscaleOptions, check_frame, choose_tile, output_size, to_dtype

__all__ = ["RealESRGANUpscaler"]


class RealESRGANUpscaler:
    """A loaded RRDBNet with its tiling and precision settings (see the module docstring)."""

    method = "realesrgan"

    def __init__(
        self,
        model: torch.nn.Module,
        options: UpscaleOptions,
        channels_last: bool | None = None,
        backend: str = "torch",
    ) -> None:
        if options.method != "realesrgan":
            raise UsageError(f"RealESRGANUpscaler needs method 'realesrgan', got {options.method!r}")
        model_scale = getattr(model, "scale", None)
        if model_scale != options.model_scale:
            raise UsageError(f"options want an x{options.model_scale} model, got x{model_scale}")
        self.device = next(model.parameters()).device
        self.backend = backend  # "openvino": ``model`` is the converted network, its precision compiled in
        self._auto_tiles: dict[tuple[int, int], int] = {}  # CUDA: the tile chosen per frame size, kept for the run
        if backend == "torch":
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
            f"tile={o.tile}, tile_pad={o.tile_pad}, pre_pad={o.pre_pad}, precision={o.precision!r}, "
            f"backend={self.backend!r})"
        )

    def with_options(self, **changes: object) -> RealESRGANUpscaler:
        """The same model with other options (tile, pads, outscale, …; not another model scale)."""
        return RealESRGANUpscaler(self.model, replace(self.options, **changes), self.channels_last, self.backend)

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        return output_size(height, width, self.scale)

    def tile_for(self, height: int, width: int) -> int:
        """The tile side used for a padded model input of ``height``×``width`` (0 = untiled).

        Automatic on CUDA: chosen from the free memory the first time a frame size is seen, then kept for the run
        (recomputed per frame, the tile would change with the allocator's state, and the seams would move and
        flicker; it also saves a memory query per frame)."""
        tile = self.options.tile
        if tile is None:
            if self.device.type == "cuda":
                tile = self._auto_tiles.get((height, width))
                if tile is None:
                    free, _ = torch.cuda.mem_get_info(self.device)
                    free += torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
                    tile = choose_tile(height, width, self.model_scale, free, self.options.tile_pad)
                    self._auto_tiles[(height, width)] = tile
            else:
                tile = CPU_TILE
        if tile >= height and tile >= width:
            return 0  # one tile covering everything is exactly the untiled forward
        return tile

    # -- core ----------------------------------------------------------------------------------------------

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.precision if self.backend == "torch" else "fp32", self.device.type):
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
        frame, max_range = check_frame(frame)
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
            return to_dtype(grey, max_range)
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
        return to_dtype(rgba, max_range)



def _pad_reflect_br(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """Reflect padding on the bottom/right; a 1-pixel-high/wide image is replicated (reflect is undefined)."""
    mode = "reflect" if (x.shape[2] > ph and x.shape[3] > pw) else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)

