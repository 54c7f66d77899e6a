"""What every face restorer shares: uint8 ↔ tensor conversion, batching, and the ONE ``restore`` /
``restore_tensor`` implementation.

A restorer takes aligned square face crops (``crop_size``, 512 for the shipped models) and returns restored
crops of the same size. Two entry points:

* ``restore(faces, noise=None)``: numpy uint8 ``(N, S, S, 3)`` **RGB** in, the same out, for any N (including
  0), run in chunks of ``batch_size``. Pre- and post-processing reproduce the official code (GFPGANer,
  ``inference_codeformer.py``) exactly: ``(u8 / 255. -> float32 - 0.5) / 0.5`` in, and basicsr's
  ``tensor2img`` out (clamp to [-1, 1], ``(x + 1) / 2 * 255``, round half to even, uint8).
* ``restore_tensor(x, noise=None)``: float ``(N, 3, S, S)`` RGB in [-1, 1] on the restorer's device, for a
  pipeline that keeps frames on the device; returns the clamped output in [-1, 1] (float32).

A subclass defines ``_run(x, noise)`` (the model call, unclamped) and sets ``takes_noise``: when it is false,
``noise`` is accepted for interface compatibility and ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..device import autocast
from ..device import check_precision as _check_precision
from ..models.checkpoint import load_into

__all__ = [
    "CROP_SIZE",
    "Restorer",
    "batch_slices",
    "build_model",
    "check_faces",
    "faces_to_tensor",
    "slice_noise",
    "tensor_to_faces",
]

CROP_SIZE = 512


def _u8_to_unit_lut() -> np.ndarray:
    # GFPGANer: img2tensor(face / 255.) casts the float64 quotient to float32, then normalize((t - 0.5) / 0.5).
    t = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)
    return (t - np.float32(0.5)) / np.float32(0.5)


def check_faces(faces: np.ndarray, size: int) -> None:
    if not isinstance(faces, np.ndarray) or faces.dtype != np.uint8:
        raise ValueError(f"faces must be a uint8 numpy array, got {type(faces).__name__} {getattr(faces, 'dtype', '')}")
    if faces.ndim != 4 or faces.shape[1:] != (size, size, 3):
        raise ValueError(f"faces must have shape (N, {size}, {size}, 3), got {faces.shape}")


def check_tensor(x: torch.Tensor, size: int) -> None:
    if x.ndim != 4 or tuple(x.shape[1:]) != (3, size, size):
        raise ValueError(f"expected a tensor (N, 3, {size}, {size}), got {tuple(x.shape)}")


def faces_to_tensor(faces: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, H, W, 3) RGB → float32 (N, 3, H, W) in [-1, 1] on ``device``, bit-exact to GFPGANer's input."""
    lut = torch.from_numpy(_u8_to_unit_lut()).to(device)
    u8 = torch.from_numpy(np.ascontiguousarray(faces)).to(device)
    return lut[u8.long()].permute(0, 3, 1, 2).contiguous()


def tensor_to_faces(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] → uint8 (N, H, W, 3) RGB, exactly as basicsr's ``tensor2img(min_max=(-1, 1))``."""
    x = x.float().clamp(-1.0, 1.0)
    x = ((x + 1.0) / 2.0 * 255.0).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def batch_slices(n: int, size: int) -> Iterator[slice]:
    """``slice``s of at most ``size`` covering ``range(n)``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def slice_noise(noise: Sequence[torch.Tensor] | None, sl: slice, n: int, device: torch.device) -> list[torch.Tensor] | None:
    """The rows of a per-call noise set that belong to the chunk ``sl`` of ``n`` faces (shared rows as they are)."""
    if noise is None:
        return None
    out = []
    for i, t in enumerate(noise):
        if t.ndim != 4 or t.shape[0] not in (1, n):
            raise ValueError(f"noise[{i}] must be shaped (1 or {n}, 1, h, w), got {tuple(t.shape)}")
        out.append((t if t.shape[0] == 1 else t[sl]).to(device))
    return out


def build_model(
    cls: type[torch.nn.Module], arch: str, path: str | Path, device: torch.device | str,
    keys: tuple[str, ...] = ("params_ema", "params"),
) -> torch.nn.Module:
    """``cls()`` on ``device`` with the weights of ``path`` (strict; :class:`CheckpointError` naming ``arch``).

    The model is made on the meta device first: no wasted random init of ~80 M parameters."""
    with torch.device("meta"):
        model = cls()
    model = model.to_empty(device=torch.device(device))
    load_into(model, path, arch, keys=keys)
    return model


class Restorer:
    """A loaded face model with its configuration (name, device, precision, batch size), the shared base.

    The model is put in eval mode, frozen and moved to ``device``. Subclasses define ``_run(x, noise)``;
    ``takes_noise`` says whether ``noise`` is used.
    """

    crop_size: int = CROP_SIZE
    takes_noise: bool = False

    def __init__(
        self, model: torch.nn.Module, name: str, device: torch.device | str, precision: str, batch_size: int,
        backend: str = "torch",
    ) -> None:
        device = torch.device(device)
        if backend == "torch":  # an OpenVINO network was compiled for its precision by the loader, which checked it
            _check_precision(precision, device)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.name = name
        self.device = device
        self.precision = precision
        #: what runs the network: "torch", or "openvino" (a compiled network: precision is baked in, no autocast)
        self.backend = backend
        self.batch_size = int(batch_size)
        self.model = model.eval().requires_grad_(False).to(device)

    def _repr_options(self) -> str:
        """Extra ``key=value, `` text a subclass shows in its repr, before ``crop_size``."""
        return ""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, device={str(self.device)!r}, precision={self.precision!r}, "
            f"backend={self.backend!r}, "
            f"batch_size={self.batch_size}, {self._repr_options()}crop_size={self.crop_size})"
        )

    def _run(self, x: torch.Tensor, noise: list[torch.Tensor] | None) -> torch.Tensor:
        raise NotImplementedError

    def _forward(self, x: torch.Tensor, noise: list[torch.Tensor] | None) -> torch.Tensor:
        with autocast(self.precision if self.backend == "torch" else "fp32", self.device.type):
            y = self._run(x, noise)
        return y.float().clamp_(-1.0, 1.0)

    def _chunk_noise(self, noise: Sequence[torch.Tensor] | None, sl: slice, n: int) -> list[torch.Tensor] | None:
        return slice_noise(noise, sl, n, self.device) if self.takes_noise else None

    @torch.inference_mode()
    def restore_tensor(self, x: torch.Tensor, noise: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """float (N, 3, S, S) RGB in [-1, 1] on ``device`` → float32 (N, 3, S, S) in [-1, 1] (clamped).

        Runs in chunks of ``batch_size``. ``noise``: ``None`` (the model's stored noise, if it has any) or one
        tensor per noise input shaped ``(1 or N, 1, h, w)``; ignored by models without noise.
        """
        s = self.crop_size
        check_tensor(x, s)
        n = x.shape[0]
        if n == 0:
            return torch.empty((0, 3, s, s), dtype=torch.float32, device=self.device)
        x = x.to(self.device, torch.float32)
        outs = [self._forward(x[sl], self._chunk_noise(noise, sl, n)) for sl in batch_slices(n, self.batch_size)]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    @torch.inference_mode()
    def restore(self, faces: np.ndarray, noise: Sequence[torch.Tensor] | None = None) -> np.ndarray:
        """uint8 (N, S, S, 3) RGB → uint8 (N, S, S, 3) RGB restored, N >= 0, in chunks of ``batch_size``."""
        s = self.crop_size
        check_faces(faces, s)
        n = faces.shape[0]
        out = np.empty((n, s, s, 3), dtype=np.uint8)
        for sl in batch_slices(n, self.batch_size):
            x = faces_to_tensor(faces[sl], self.device)
            out[sl] = tensor_to_faces(self._forward(x, self._chunk_noise(noise, sl, n)))
        return out
