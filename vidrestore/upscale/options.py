"""Upscaling options and the pure helpers both upscalers share (sizes, tiles, frame checks, geometry).

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
from dataclasses import dataclass

import numpy as np

from ..device import PRECISIONS
from ..errors import DeviceError, UsageError

__all__ = [
    "METHODS", "SCALES", "ALPHA_UPSAMPLERS", "PRECISIONS", "CPU_TILE", "BYTES_PER_OUTPUT_PIXEL", "UpscaleOptions",
    "output_size", "choose_tile", "scale_affine", "check_frame", "to_dtype",
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


@dataclass(frozen=True)
class UpscaleOptions:
    """How to upscale whole frames.

    ``scale``: output factor 1, 2 or 4. ``method``: ``"realesrgan"`` or ``"lanczos"``. ``tile``: tile side in
    input pixels, ``0`` untiled, ``None`` automatic (see the module docstring). ``tile_pad``: context around each
    tile. ``pre_pad``: reflect padding on the bottom/right before the model (GFPGAN 0, ``RealESRGANer`` 10).
    ``precision``: ``"fp32"``, or ``"fp16"``/``"bf16"`` (CUDA autocast; bf16 also on a CPU that has it).
    ``outscale``: final factor when it is not ``scale`` (as ``enhance(outscale=...)``). ``alpha_upsampler``:
    RGBA frames' alpha through the model (``"realesrgan"``, the official default) or ``cv2.resize``
    INTER_LINEAR (``"linear"``).
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



def check_frame(frame: np.ndarray) -> tuple[np.ndarray, float]:
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



def to_dtype(x: np.ndarray, max_range: float) -> np.ndarray:
    """[0, 1] float32 → uint8/uint16 as ``enhance``: ``(x * max).round()`` (half to even)."""
    y = np.round(x * np.float32(max_range))
    return y.astype(np.uint16 if max_range > 255 else np.uint8)

