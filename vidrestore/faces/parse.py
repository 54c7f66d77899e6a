"""The soft face mask from ParseNet, as facexlib's FaceRestoreHelper builds it with ``use_parse=True``.

For each 512x512 face crop (RGB), on the model's device:

1. input ``(rgb/255 − 0.5) / 0.5`` (float32), ParseNet, argmax over the 19 classes;
2. class → value: classes 0 (background), 14, 16, 17, 18 → 0, every other class → 255 (:data:`MASK_COLORMAP`);
3. Gaussian blur 101x101, σ = 11, **twice**, with OpenCV's kernel and reflect-101 borders (separable, in torch);
4. the outer 10 pixels set to 0, then ``/255`` → a mask in [0, 1] in crop coordinates.

Warping that mask back into the frame is the paste-back's job. Differences from facexlib: the blur runs in
float32 on the device (facexlib: float64 on the CPU; the difference is ~1e-6 of the mask range), and the crops
of a batch go through the network together.

``parse_size`` (default 512 = parity) runs ParseNet on crops downsized to that many pixels and upsamples its
logits (bilinear) back to 512 before the argmax. ParseNet at 512 costs ~469 GFLOP per face, more than
GFP-GAN itself; at 256 it is a quarter of that, and the 101-px blur hides most of the difference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import UsageError, WeightsError
from ..models.checkpoint import load_into
from ..models.parsenet import ParseNet
from .blur import gaussian_blur
from .detect import fill_bn_counters, options_from, resolve_device

__all__ = [
    "MASK_COLORMAP",
    "PARSER_FILES",
    "ParserOptions",
    "FaceParser",
    "load_parser",
]

#: Value given to each of ParseNet's 19 classes in the face mask (facexlib's table).
MASK_COLORMAP: Final = (0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 255, 0, 0, 0)
PARSER_FILES: Final = (("parsenet", "parsing_parsenet.pth"),)
_MASK_SIZE: Final = 512


@dataclass(frozen=True)
class ParserOptions:
    """parse_size: ParseNet's input side (512 = parity; 256 is ~4x cheaper). blur_size/blur_sigma/blur_passes
    and border: the mask smoothing (facexlib: 101, 11, 2, 10 px at 512). batch_size: crops per forward pass."""

    parse_size: int = 512
    blur_size: int = 101
    blur_sigma: float = 11.0
    blur_passes: int = 2
    border: int = 10
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.parse_size < 32 or self.parse_size % 16:
            raise UsageError(f"parse_size must be a multiple of 16 and at least 32, not {self.parse_size}")
        if self.blur_size < 1 or self.blur_size % 2 == 0:
            raise UsageError(f"blur_size must be odd and positive, not {self.blur_size}")
        if self.batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, not {self.batch_size}")


class FaceParser:
    """ParseNet face masks for aligned crops; see the module docstring for the steps."""

    backend: str = "torch"  # "openvino" when load_parser put the converted network in ``model``

    def __init__(self, model: ParseNet, options: ParserOptions | None = None, **overrides: object) -> None:
        self.model = model.eval()
        self.options = replace(options or ParserOptions(), **overrides)  # type: ignore[arg-type]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> FaceParser:
        self.model.to(resolve_device(device))
        return self

    def _as_input(self, crops: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Crops → ``(N, 3, H, W)`` float32 RGB in [0, 1] on the device."""
        if isinstance(crops, np.ndarray):
            if crops.ndim == 3:
                crops = crops[None]
            if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
                raise ValueError(
                    f"crops array has shape {crops.shape}, dtype {crops.dtype}; expected (N,H,W,3) uint8 RGB"
                )
            t = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device).permute(0, 3, 1, 2)
            return t.float() / 255.0
        if not isinstance(crops, torch.Tensor):
            raise TypeError(f"crops must be a torch.Tensor or a numpy array, not {type(crops).__name__}")
        t = crops[None] if crops.ndim == 3 else crops
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"crops tensor has shape {tuple(crops.shape)}; expected (N,3,H,W) RGB")
        t = t.to(self.device)
        return t.float() / 255.0 if t.dtype == torch.uint8 else t.float()

    @torch.inference_mode()
    def logits(self, crops: torch.Tensor | np.ndarray) -> torch.Tensor:
        """ParseNet's 19-class logits ``(N, 19, 512, 512)`` for the crops (resized to 512 first if needed)."""
        x = self._as_input(crops)
        if x.shape[-2:] != (_MASK_SIZE, _MASK_SIZE):
            x = F.interpolate(x, size=(_MASK_SIZE, _MASK_SIZE), mode="bilinear", align_corners=False, antialias=True)
        ps = self.options.parse_size
        outs = []
        for start in range(0, x.shape[0], self.options.batch_size):
            xb = (x[start:start + self.options.batch_size] - 0.5) / 0.5
            if ps != _MASK_SIZE:
                xb = F.interpolate(xb, size=(ps, ps), mode="bilinear", align_corners=False, antialias=True)
            lg = self.model(xb)[0]
            if ps != _MASK_SIZE:
                lg = F.interpolate(lg, size=(_MASK_SIZE, _MASK_SIZE), mode="bilinear", align_corners=False)
            outs.append(lg)
        return torch.cat(outs, dim=0)

    @torch.inference_mode()
    def masks_from_classes(self, classes: torch.Tensor) -> torch.Tensor:
        """The smoothing half: class map ``(N, 512, 512)`` → soft mask in [0, 1] (float32)."""
        o = self.options
        table = torch.tensor(MASK_COLORMAP, dtype=torch.float32, device=classes.device)
        m = table[classes.long()]
        m = m[:, None]
        for _ in range(o.blur_passes):
            m = gaussian_blur(m, o.blur_size, o.blur_sigma)
        m = m[:, 0]
        if o.border > 0:
            b = o.border
            m[:, :b, :] = 0
            m[:, -b:, :] = 0
            m[:, :, :b] = 0
            m[:, :, -b:] = 0
        return m / 255.0

    @torch.inference_mode()
    def face_masks(self, crops: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Soft face masks ``(N, H, W)`` float32 in [0, 1] on the device.

        ``crops``: ``(N, 3, H, W)`` float RGB in [0, 1] (or uint8) tensor, or ``(N, H, W, 3)`` uint8 RGB array;
        normally H = W = 512. Other sizes are resized to 512 for parsing and the mask resized back (bilinear).
        """
        x = self._as_input(crops)
        size = tuple(x.shape[-2:])
        masks = self.masks_from_classes(self.logits(x).argmax(dim=1))
        if size != (_MASK_SIZE, _MASK_SIZE):
            masks = F.interpolate(masks[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        return masks

    def __call__(self, crops: torch.Tensor | np.ndarray) -> torch.Tensor:
        return self.face_masks(crops)


def load_parser(
    name_or_path: str | os.PathLike[str] = "parsenet",
    device: str | torch.device | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    backend: str = "auto",
    precision: str = "fp32",
    **options: object,
) -> FaceParser:
    """Build a :class:`FaceParser` from ``"parsenet"`` (``parsing_parsenet.pth``, found or downloaded by
    :func:`vidrestore.weights.resolve_weights`) or a checkpoint path. ``options`` are :class:`ParserOptions` fields.

    ``backend``: ``"torch"``, ``"openvino"`` or ``"auto"`` (OpenVINO on the CPU when the extra is installed;
    converted once at ``parse_size``, cached beside the weights). ``precision`` applies to the OpenVINO network
    (``bf16`` where the CPU has it: the mask moves by a few levels of 255 at most); the torch network runs fp32."""
    from ..models.openvino import choose_backend

    opts = options_from(ParserOptions, "parser", options)
    chosen = choose_backend(backend, device, precision)
    dev = resolve_device(device)
    text = os.fspath(name_or_path)
    files = dict(PARSER_FILES)
    if text in files:
        from ..weights import resolve_weights

        path = Path(resolve_weights(files[text], weights_dir=weights_dir))
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise WeightsError(f"unknown parser {text!r}: not a file, and not one of {', '.join(files)}")
    model = ParseNet()
    load_into(model, path, "ParseNet", remap=fill_bn_counters(model))
    if chosen == "openvino":
        from ..device import openvino_device
        from ..models.openvino_nets import parsenet_openvino

        ov = parsenet_openvino(model.eval().requires_grad_(False), path, opts.parse_size, openvino_device(device),
                               precision)
        parser = FaceParser(ov, opts)  # type: ignore[arg-type]
    else:
        parser = FaceParser(model.to(dev), opts)
    parser.backend = chosen
    return parser
