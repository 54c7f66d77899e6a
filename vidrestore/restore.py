"""Face restorers: GFP-GAN (GFPGANv1Clean weights v1.3 / v1.4) and an identity fake for tests.

A restorer takes aligned 512x512 face crops and returns restored crops of the same size. Two entry points:

* ``restore(faces, noise=None)``: numpy uint8 ``(N, 512, 512, 3)`` **RGB** in, the same out, for any N
  (including 0), run in chunks of ``batch_size``. Pre- and post-processing reproduce GFPGANer exactly:
  ``(u8 / 255. -> float32 - 0.5) / 0.5`` in, and basicsr's ``tensor2img`` out (clamp to [-1, 1],
  ``(x + 1) / 2 * 255``, round half to even, uint8).
* ``restore_tensor(x, noise=None)``: float ``(N, 3, 512, 512)`` RGB in [-1, 1] on the restorer's device, for a
  pipeline that keeps frames on the device; returns the clamped output in [-1, 1] (float32).

Noise: unlike GFPGANer, which draws fresh noise on every call and so makes video flicker, the model uses its
15 stored noise buffers unless a ``noise`` list is passed (see :meth:`GFPGANRestorer.make_noise`), so the same
face gives the same output every time.

Precision: ``"fp32"`` everywhere; ``"fp16"`` and ``"bf16"`` run under CUDA autocast and are **CUDA only**. On
the CPU both are refused with :class:`DeviceError`: fp16 CPU kernels are slow or missing, and bf16 autocast on
a CPU without AMX is slower than fp32 while less accurate, so there is nothing to gain.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .device import PRECISIONS, resolve_device
from .device import autocast
from .device import check_precision as _check_precision
from .errors import CheckpointError, WeightsError
from .models.checkpoint import load_into
from .models.gfpgan import GFPGANv1Clean

__all__ = [
    "RESTORER_FILES",
    "PRECISIONS",
    "GFPGANRestorer",
    "IdentityRestorer",
    "load_restorer",
    "run_weight_files",
    "resolve_run_weights",
    "resolve_device",
    "faces_to_tensor",
    "tensor_to_faces",
]

RESTORER_FILES: Mapping[str, str] = MappingProxyType(
    {
        "gfpgan-1.4": "GFPGANv1.4.pth",
        "gfpgan-1.3": "GFPGANv1.3.pth",
    }
)
CROP_SIZE = 512
_ARCH = "GFPGANv1Clean"


def _u8_to_unit_lut() -> np.ndarray:
    # GFPGANer: img2tensor(face / 255.) casts the float64 quotient to float32, then normalize((t - 0.5) / 0.5).
    t = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)
    return (t - np.float32(0.5)) / np.float32(0.5)


def check_faces(faces: np.ndarray, size: int) -> None:
    if not isinstance(faces, np.ndarray) or faces.dtype != np.uint8:
        raise ValueError(f"faces must be a uint8 numpy array, got {type(faces).__name__} {getattr(faces, 'dtype', '')}")
    if faces.ndim != 4 or faces.shape[1:] != (size, size, 3):
        raise ValueError(f"faces must have shape (N, {size}, {size}, 3), got {faces.shape}")


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


def _slice_noise(noise: Sequence[torch.Tensor] | None, sl: slice, n: int, device: torch.device) -> list[torch.Tensor] | None:
    if noise is None:
        return None
    out = []
    for i, t in enumerate(noise):
        if t.ndim != 4 or t.shape[0] not in (1, n):
            raise ValueError(f"noise[{i}] must be shaped (1 or {n}, 1, h, w), got {tuple(t.shape)}")
        out.append((t if t.shape[0] == 1 else t[sl]).to(device))
    return out


class GFPGANRestorer:
    """A loaded GFP-GAN model with its configuration (device, precision, crop size, batch size).

    Build one with :func:`load_restorer`. The crop it expects is ``crop_size`` square, aligned to the FFHQ
    512 template (the aligner's job).
    """

    crop_size: int = CROP_SIZE

    def __init__(
        self,
        model: GFPGANv1Clean,
        name: str,
        device: torch.device,
        precision: str = "fp32",
        batch_size: int = 8,
        channels_last: bool | None = None,
    ) -> None:
        _check_precision(precision, device)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.name = name
        self.device = device
        self.precision = precision
        self.batch_size = int(batch_size)
        # channels_last: default on CUDA (tensor cores want NHWC), off on the CPU: on the shared 2-core test
        # machine bench/restorer.py found no gain at batch 1 and results within the noise at batch 2-4.
        self.channels_last = (device.type == "cuda") if channels_last is None else bool(channels_last)
        model = model.eval().requires_grad_(False).to(device)
        # Set the conv weights' layout either way (a model shared by two restorers takes the last one's; both
        # layouts give the same results, only the speed differs).
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        model.apply(lambda m: m.to(memory_format=fmt) if isinstance(m, nn.Conv2d) else None)
        self.model = model
        self.crop_size = model.out_size

    def __repr__(self) -> str:
        return (
            f"GFPGANRestorer(name={self.name!r}, device={str(self.device)!r}, precision={self.precision!r}, "
            f"batch_size={self.batch_size}, crop_size={self.crop_size})"
        )

    @property
    def num_noise(self) -> int:
        return self.model.num_noise

    def noise_shapes(self) -> list[tuple[int, int, int, int]]:
        return self.model.noise_shapes()

    def make_noise(self, seed: int, batch: int = 1) -> list[torch.Tensor]:
        """A fixed noise set (15 tensors ``(batch, 1, h, w)``, CPU, float32) drawn from its own seeded generator.

        Draw one per face track and pass it to every call for that track: the output is then repeatable and
        does not flicker. Uses a private ``torch.Generator``, never the global RNG.
        """
        gen = torch.Generator().manual_seed(int(seed))
        return [torch.randn((batch, *shape[1:]), generator=gen) for shape in self.noise_shapes()]

    def _forward(self, x: torch.Tensor, noise: list[torch.Tensor] | None) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.precision):
            y = self.model(x, noise)
        return y.float().clamp_(-1.0, 1.0)

    @torch.inference_mode()
    def restore_tensor(self, x: torch.Tensor, noise: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """float (N, 3, S, S) RGB in [-1, 1] on ``device`` → float32 (N, 3, S, S) in [-1, 1] (clamped).

        Runs in chunks of ``batch_size``. ``noise``: ``None`` (the model's stored noise) or 15 tensors shaped
        ``(1 or N, 1, h, w)``.
        """
        s = self.crop_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ValueError(f"expected a tensor (N, 3, {s}, {s}), got {tuple(x.shape)}")
        n = x.shape[0]
        if n == 0:
            return torch.empty((0, 3, s, s), dtype=torch.float32, device=self.device)
        x = x.to(self.device, torch.float32)
        outs = [self._forward(x[sl], _slice_noise(noise, sl, n, self.device)) for sl in batch_slices(n, self.batch_size)]
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
            out[sl] = tensor_to_faces(self._forward(x, _slice_noise(noise, sl, n, self.device)))
        return out


class IdentityRestorer:
    """The fake backend: same interface as :class:`GFPGANRestorer`, returns the faces unchanged."""

    name = "identity"
    precision = "fp32"
    crop_size: int = CROP_SIZE

    def __init__(self, device: str | torch.device | None = "cpu", batch_size: int = 8, crop_size: int = CROP_SIZE) -> None:
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.crop_size = crop_size

    def __repr__(self) -> str:
        return f"IdentityRestorer(device={str(self.device)!r}, crop_size={self.crop_size})"

    def restore_tensor(self, x: torch.Tensor, noise: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        s = self.crop_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ValueError(f"expected a tensor (N, 3, {s}, {s}), got {tuple(x.shape)}")
        return x.to(self.device, torch.float32).clamp(-1.0, 1.0)

    def restore(self, faces: np.ndarray, noise: Sequence[torch.Tensor] | None = None) -> np.ndarray:
        check_faces(faces, self.crop_size)
        return faces.copy()


def _weights_path(name_or_path: str | Path, weights_dir: str | Path | None) -> tuple[str, Path]:
    text = str(name_or_path)
    path = Path(text).expanduser()
    if isinstance(name_or_path, Path) or path.exists() or text.endswith((".pth", ".pt")):
        if not path.is_file():
            raise CheckpointError(f"{path}: no such checkpoint file")
        return f"gfpgan:{path.name}", path
    key = text.lower()
    if key not in RESTORER_FILES:
        raise WeightsError(
            f"unknown restorer {text!r}; known names: {', '.join(sorted(RESTORER_FILES))} (or give a path to a .pth file)"
        )
    from .weights import resolve_weights  # lazy: downloading is only needed for named weights

    return key, Path(resolve_weights(RESTORER_FILES[key], weights_dir=weights_dir))


def build_gfpgan(path: str | Path, device: torch.device | str = "cpu") -> GFPGANv1Clean:
    """A GFPGANv1Clean on ``device`` with the weights of ``path`` (strict; :class:`CheckpointError` if not)."""
    with torch.device("meta"):  # no wasted random init of 86 M parameters
        model = GFPGANv1Clean()
    model = model.to_empty(device=torch.device(device))
    load_into(model, path, _ARCH)
    return model


def load_restorer(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    batch_size: int = 8,
    weights_dir: str | Path | None = None,
    channels_last: bool | None = None,
    fidelity: float = 0.5,
) -> GFPGANRestorer:
    """Load a face restorer by name (``"gfpgan-1.4"``, ``"gfpgan-1.3"``, ``"codeformer"``, ``"restoreformer"``)
    or from a checkpoint path (GFP-GAN, or a CodeFormer/RestoreFormer file recognised by its keys).
    ``fidelity`` is CodeFormer's ``w`` (0–1; ignored by the others).

    The device and precision are checked before any weights are read. Raises :class:`WeightsError` (unknown
    name, missing download), :class:`CheckpointError` (missing or unreadable file, wrong architecture) or
    :class:`DeviceError` (device or precision this machine lacks).
    """
    if str(name_or_path).lower() in ("codeformer", "restoreformer"):
        from .restorers import load_face_restorer

        return load_face_restorer(str(name_or_path).lower(), device, precision, batch_size, weights_dir,
                                  fidelity=fidelity)
    dev = resolve_device(device)
    _check_precision(precision, dev)
    name, path = _weights_path(name_or_path, weights_dir)
    try:
        model = build_gfpgan(path, dev)
    except CheckpointError:
        # a CodeFormer or RestoreFormer file given by path: load it as what it is
        from .restorers import checkpoint_arch, load_face_restorer

        arch = checkpoint_arch(path)
        if arch == "gfpgan":
            raise
        return load_face_restorer(path, device, precision, batch_size, weights_dir, fidelity=fidelity, arch=arch)
    return GFPGANRestorer(model, name, dev, precision, batch_size, channels_last)


def run_weight_files(
    model: str | None,
    detector: str | None = None,
    parse: bool = False,
    upscale: int = 1,
    bg_upsampler: str = "realesrgan",
) -> list[str]:
    """The registry files a run with these options loads, in load order (no duplicates).

    ``model``/``detector`` may be registry names or checkpoint paths; paths, unknown names, ``"none"`` and
    ``None`` (not loaded, e.g. an object passed in) need no registry file and are left to their loaders, which
    check them. ``parse``: the ParseNet mask is loaded. ``upscale``/``bg_upsampler``: the background upscaler.
    """
    from .faces.detect import DETECTOR_FILES
    from .faces.parse import PARSER_FILES
    from .models.rrdbnet import RRDBNET_FILES
    from .restorers import FACE_RESTORER_FILES

    files: list[str] = []
    if upscale > 1 and bg_upsampler == "realesrgan":
        files.append(RRDBNET_FILES[4 if upscale == 4 else 2])
    key = (model or "none").lower()
    named = RESTORER_FILES.get(key) or FACE_RESTORER_FILES.get(key)
    if named is not None:
        files.append(named)
    if detector is not None and detector in DETECTOR_FILES:
        files.append(DETECTOR_FILES[detector])
    elif detector is not None and detector in DETECTOR_FILES.values():  # a bare registry file name
        files.append(detector)
    if parse:
        files.append(dict(PARSER_FILES)["parsenet"])
    return list(dict.fromkeys(files))


def resolve_run_weights(
    weights_dir: str | Path | None = None,
    *,
    model: str | None,
    detector: str | None = None,
    parse: bool = False,
    upscale: int = 1,
    bg_upsampler: str = "realesrgan",
    download: bool = True,
) -> dict[str, Path]:
    """Find (or download) every weight file a run needs before any model is built or frame decoded.

    Every file is tried; when some are missing, one :class:`WeightsError` names them all, each with its URL and
    the folder to put it in. Returns registry name → local path. The loaders then find the files in place.
    """
    from .weights import resolve_many

    return resolve_many(
        run_weight_files(model, detector, parse, upscale, bg_upsampler), weights_dir, download=download
    )
