"""The two VQ-codebook face restorers: CodeFormer and RestoreFormer, with GFPGANRestorer's interface.

* ``restore(faces, noise=None)``: uint8 ``(N, 512, 512, 3)`` **RGB** in, the same out, any N (including 0), run
  in chunks of ``batch_size``. Pre- and post-processing are the official ones (``(u8 / 255. → float32 − 0.5) /
  0.5`` in; basicsr's ``tensor2img``: clamp to [-1, 1], ``(x + 1) / 2 · 255``, round half to even, out).
* ``restore_tensor(x, noise=None)``: float ``(N, 3, 512, 512)`` RGB in [-1, 1] → float32 clamped to [-1, 1] on
  the restorer's device.

``noise`` is accepted for interface compatibility and ignored: neither model injects noise, so the same face
always gives the same output (no per-track noise is needed, and the restorers have no ``noise_shapes``).

CodeFormer's **fidelity** ``w`` (constructor option ``fidelity``, 0..1, default **0.5** as the official
``inference_codeformer.py``) trades restoration against faithfulness: ``0`` decodes the predicted codebook face
alone (strongest restoration, may drift from the identity), ``1`` fuses the most of the input's own features
(closest to the input, keeps more degradation). Values outside [0, 1] are refused.

Precision: ``"fp32"`` everywhere; ``"fp16"``/``"bf16"`` run under CUDA autocast and are CUDA only (refused on the
CPU with :class:`DeviceError`, as for GFP-GAN). The vector-quantiser distances (RestoreFormer) and the AdaIN
statistics (CodeFormer) are computed in float32 even then.

Licences: ``codeformer.pth`` is NTU S-Lab License 1.0 (non-commercial use only, code and weights);
``RestoreFormer.pth`` is a GFPGAN release asset (see ``vidrestore weights list``).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np
import torch

from .errors import CheckpointError, UsageError, WeightsError
from .models.checkpoint import clean_state_dict, load_into, read_checkpoint
from .models.codeformer import CodeFormer
from .models.restoreformer import RestoreFormer
from .device import resolve_device
from .device import autocast
from .device import check_precision as _check_precision
from .restore import batch_slices, check_faces, faces_to_tensor, tensor_to_faces

__all__ = [
    "FACE_RESTORER_FILES",
    "DEFAULT_FIDELITY",
    "CodeFormerRestorer",
    "RestoreFormerRestorer",
    "build_codeformer",
    "build_restoreformer",
    "checkpoint_arch",
    "load_face_restorer",
]

#: restorer name → registry file name (resolved by :func:`vidrestore.weights.resolve_weights`)
FACE_RESTORER_FILES: Mapping[str, str] = MappingProxyType(
    {
        "codeformer": "codeformer.pth",
        "restoreformer": "RestoreFormer.pth",
    }
)
DEFAULT_FIDELITY = 0.5
CROP_SIZE = 512

# The checkpoint keys each official loader reads: inference_codeformer.py reads only 'params_ema'; GFPGANer
# (which loads RestoreFormer.pth) reads 'params_ema' if present, else 'params'.
_CKPT_KEYS = {"codeformer": ("params_ema",), "restoreformer": ("params_ema", "params")}
_ARCH_NAMES = {"codeformer": "CodeFormer", "restoreformer": "RestoreFormer"}


def _check_fidelity(fidelity: float) -> float:
    try:
        w = float(fidelity)
    except (TypeError, ValueError):
        raise UsageError(f"fidelity must be a number in [0, 1], got {fidelity!r}") from None
    if not 0.0 <= w <= 1.0:
        raise UsageError(f"fidelity must be in [0, 1] (0 = strongest restoration, 1 = closest to the input), got {w}")
    return w


class _VQRestorer:
    """Shared batching, precision and conversion; subclasses define ``_run(x) -> unclamped output``."""

    crop_size: int = CROP_SIZE

    def __init__(
        self, model: torch.nn.Module, name: str, device: torch.device, precision: str, batch_size: int
    ) -> None:
        device = torch.device(device)
        _check_precision(precision, device)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.name = name
        self.device = device
        self.precision = precision
        self.batch_size = int(batch_size)
        self.model = model.eval().requires_grad_(False).to(device)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.precision):
            y = self._run(x)
        return y.float().clamp_(-1.0, 1.0)

    @torch.inference_mode()
    def restore_tensor(self, x: torch.Tensor, noise: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """float (N, 3, 512, 512) RGB in [-1, 1] → float32 (N, 3, 512, 512) in [-1, 1] (clamped), on ``device``.

        Runs in chunks of ``batch_size``. ``noise`` is ignored (the model has none).
        """
        s = self.crop_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ValueError(f"expected a tensor (N, 3, {s}, {s}), got {tuple(x.shape)}")
        n = x.shape[0]
        if n == 0:
            return torch.empty((0, 3, s, s), dtype=torch.float32, device=self.device)
        x = x.to(self.device, torch.float32)
        outs = [self._forward(x[sl]) for sl in batch_slices(n, self.batch_size)]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    @torch.inference_mode()
    def restore(self, faces: np.ndarray, noise: Sequence[torch.Tensor] | None = None) -> np.ndarray:
        """uint8 (N, 512, 512, 3) RGB → uint8 (N, 512, 512, 3) RGB restored, N >= 0, in chunks of ``batch_size``.

        ``noise`` is ignored (the model has none; the output is deterministic).
        """
        check_faces(faces, self.crop_size)
        s = self.crop_size
        n = faces.shape[0]
        out = np.empty((n, s, s, 3), dtype=np.uint8)
        for sl in batch_slices(n, self.batch_size):
            out[sl] = tensor_to_faces(self._forward(faces_to_tensor(faces[sl], self.device)))
        return out


class CodeFormerRestorer(_VQRestorer):
    """A loaded CodeFormer with its configuration. ``fidelity`` is CodeFormer's ``w`` (see the module docs).

    Several restorers may share one model (e.g. two fidelities); the model is only read.
    """

    def __init__(
        self,
        model: CodeFormer,
        name: str = "codeformer",
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        batch_size: int = 8,
        fidelity: float = DEFAULT_FIDELITY,
    ) -> None:
        self.fidelity = _check_fidelity(fidelity)
        super().__init__(model, name, torch.device(device), precision, batch_size)

    def __repr__(self) -> str:
        return (
            f"CodeFormerRestorer(name={self.name!r}, device={str(self.device)!r}, precision={self.precision!r}, "
            f"batch_size={self.batch_size}, fidelity={self.fidelity}, crop_size={self.crop_size})"
        )

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, w=self.fidelity)


class RestoreFormerRestorer(_VQRestorer):
    """A loaded RestoreFormer with its configuration (it has no options of its own)."""

    def __init__(
        self,
        model: RestoreFormer,
        name: str = "restoreformer",
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        batch_size: int = 8,
    ) -> None:
        super().__init__(model, name, torch.device(device), precision, batch_size)

    def __repr__(self) -> str:
        return (
            f"RestoreFormerRestorer(name={self.name!r}, device={str(self.device)!r}, precision={self.precision!r}, "
            f"batch_size={self.batch_size}, crop_size={self.crop_size})"
        )

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# ----------------------------------------------------------------------------------------------------------------
# Loading


def _build(cls: type[torch.nn.Module], arch: str, path: str | Path, device: torch.device | str) -> torch.nn.Module:
    with torch.device("meta"):  # no wasted random init of ~80 M parameters
        model = cls()
    model = model.to_empty(device=torch.device(device))
    load_into(model, path, _ARCH_NAMES[arch], keys=_CKPT_KEYS[arch])
    return model


def build_codeformer(path: str | Path, device: torch.device | str = "cpu") -> CodeFormer:
    """A CodeFormer on ``device`` with the weights of ``path`` (``params_ema``, strict; :class:`CheckpointError`)."""
    return _build(CodeFormer, "codeformer", path, device)  # type: ignore[return-value]


def build_restoreformer(path: str | Path, device: torch.device | str = "cpu") -> RestoreFormer:
    """A RestoreFormer on ``device`` with the weights of ``path`` (``params_ema`` else ``params``, strict)."""
    return _build(RestoreFormer, "restoreformer", path, device)  # type: ignore[return-value]


def checkpoint_arch(path: str | Path) -> str:
    """Guess which face restorer a checkpoint file is for: ``"codeformer"``, ``"restoreformer"`` or ``"gfpgan"``.

    Only a guess from marker keys (the strict load still checks every key); :class:`CheckpointError` when no
    marker matches.
    """
    keys = set(clean_state_dict(read_checkpoint(path), path))
    if "position_emb" in keys and "quantize.embedding.weight" in keys:
        return "codeformer"
    if "quantize.embedding.weight" in keys and "post_quant_conv.weight" in keys:
        return "restoreformer"
    if any(k.startswith("stylegan_decoder.") for k in keys):
        return "gfpgan"
    raise CheckpointError(f"{path}: not a GFPGAN, CodeFormer or RestoreFormer checkpoint (no known key layout)")


def _resolve(name_or_path: str | Path, arch: str | None, weights_dir: str | Path | None) -> tuple[str, str, Path]:
    """→ (arch, restorer name, checkpoint path)."""
    text = str(name_or_path)
    key = text.lower()
    if not isinstance(name_or_path, Path) and key in FACE_RESTORER_FILES:
        if arch is not None and arch != key:
            raise UsageError(f"restorer {text!r} is a {key} model, not {arch}")
        from .weights import resolve_weights  # lazy: downloading is only needed for named weights

        return key, key, Path(resolve_weights(FACE_RESTORER_FILES[key], weights_dir=weights_dir))
    path = Path(text).expanduser()
    if isinstance(name_or_path, Path) or path.exists() or text.endswith((".pth", ".pt")):
        if not path.is_file():
            raise CheckpointError(f"{path}: no such checkpoint file")
        if arch is None:
            arch = checkpoint_arch(path)
            if arch not in FACE_RESTORER_FILES:
                raise CheckpointError(
                    f"{path}: a {arch} checkpoint, not CodeFormer or RestoreFormer; load it with load_restorer"
                )
        return arch, f"{arch}:{path.name}", path
    raise WeightsError(
        f"unknown restorer {text!r}; known names: {', '.join(FACE_RESTORER_FILES)} (or give a path to a .pth file)"
    )


def load_face_restorer(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    batch_size: int = 8,
    weights_dir: str | Path | None = None,
    fidelity: float = DEFAULT_FIDELITY,
    arch: str | None = None,
) -> CodeFormerRestorer | RestoreFormerRestorer:
    """Load CodeFormer or RestoreFormer by name (``"codeformer"``, ``"restoreformer"``) or from a checkpoint path.

    For a path, ``arch`` (``"codeformer"``/``"restoreformer"``) says which model it must be; ``None`` guesses it
    from the keys. ``fidelity`` is CodeFormer's ``w`` (ignored by RestoreFormer). The device, precision and
    fidelity are checked before any weights are read. Raises :class:`WeightsError` (unknown name, missing
    download), :class:`CheckpointError` (missing or unreadable file, or not a checkpoint of that model),
    :class:`DeviceError` or :class:`UsageError` (fidelity outside [0, 1], conflicting ``arch``).
    """
    if arch is not None and arch not in FACE_RESTORER_FILES:
        raise UsageError(f"unknown arch {arch!r}; choose one of {', '.join(FACE_RESTORER_FILES)}")
    dev = resolve_device(device)
    _check_precision(precision, dev)
    w = _check_fidelity(fidelity)
    arch, name, path = _resolve(name_or_path, arch, weights_dir)
    if arch == "codeformer":
        return CodeFormerRestorer(build_codeformer(path, dev), name, dev, precision, batch_size, fidelity=w)
    return RestoreFormerRestorer(build_restoreformer(path, dev), name, dev, precision, batch_size)
