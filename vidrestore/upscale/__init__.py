"""Whole-frame upscaling: Real-ESRGAN (RRDBNet, tiled; :mod:`.realesrgan`) or plain Lanczos (:mod:`.lanczos`).

Two upscalers with the same two entry points:

* ``upscale(frame)``: numpy **RGB** uint8 ``(H, W, 3)`` in, ``(round(H*s), round(W*s), 3)`` uint8 out (the
  pipeline's case). :class:`RealESRGANUpscaler` also takes what ``RealESRGANer.enhance`` takes, in RGB order:
  2-D grey, RGBA ``(H, W, 4)`` and uint16.
* ``upscale_tensor(x)``: float ``(N, 3, H, W)`` RGB in [0, 1] on the upscaler's device, ``(N, 3, H*s, W*s)``
  float32 in [0, 1] out, for a pipeline that keeps frames on the device.

:func:`load_upscaler` builds one from a method and a factor; options and helpers are in :mod:`.options`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..device import check_precision as _check_precision
from ..device import resolve_device
from .lanczos import LanczosUpscaler, lanczos_resize_tensor
from .options import (
    BYTES_PER_OUTPUT_PIXEL,
    CPU_TILE,
    METHODS,
    PRECISIONS,
    SCALES,
    UpscaleOptions,
    choose_tile,
    output_size,
    scale_affine,
)
from .realesrgan import RealESRGANUpscaler

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
    backend: str = "auto",
) -> RealESRGANUpscaler | LanczosUpscaler:
    """An upscaler by method and output factor.

    ``"realesrgan"`` resolves ``RealESRGAN_x2plus.pth`` (scale 1, 2) or ``RealESRGAN_x4plus.pth`` (scale 4)
    through :func:`vidrestore.weights.resolve_weights` (``weights`` overrides the file: a path or registry
    name). Options, device and precision are checked before any weights are read. Raises
    :class:`UsageError` (bad options), :class:`DeviceError`, :class:`WeightsError` (missing, cannot download)
    or :class:`CheckpointError` (not an RRDBNet checkpoint of that scale). ``"lanczos"`` needs no weights.
    ``backend``: ``"torch"``, ``"openvino"`` or ``"auto"`` (OpenVINO on the CPU when the extra is installed:
    converted once with a dynamic frame size, cached beside the weights, compiled with ``precision``).
    """

    opts = UpscaleOptions(
        scale=scale, method=method, tile=tile, tile_pad=tile_pad, pre_pad=pre_pad, precision=precision,
        outscale=outscale,
    )
    dev = resolve_device(device)
    if method == "lanczos":
        return LanczosUpscaler(opts.final_scale, dev)
    from ..device import is_openvino_gpu
    from ..models.openvino import choose_backend

    chosen = choose_backend(backend, device)
    _check_precision(precision, device if chosen == "openvino" and is_openvino_gpu(device) else dev)
    from ..models.rrdbnet import RRDBNET_FILES, build_rrdbnet
    from ..weights import resolve_weights

    path = resolve_weights(weights if weights is not None else RRDBNET_FILES[opts.model_scale], weights_dir=weights_dir)
    model = build_rrdbnet(path, opts.model_scale, dev)
    if chosen == "openvino":
        from ..device import openvino_device
        from ..models.openvino_nets import rrdbnet_openvino

        model = rrdbnet_openvino(model, path, openvino_device(device), precision)  # type: ignore[assignment]
    return RealESRGANUpscaler(model, opts, channels_last, chosen)

