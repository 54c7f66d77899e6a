"""CodeFormer as a restorer (interface: :mod:`vidrestore.restorers.base`).

``noise`` is accepted for interface compatibility and ignored: the model injects no noise, so the same face
always gives the same output (no per-track noise is needed, and the restorer has no ``noise_shapes``).

CodeFormer's **fidelity** ``w`` (constructor option ``fidelity``, 0..1, default **0.5** as the official
``inference_codeformer.py``) trades restoration against faithfulness: ``0`` decodes the predicted codebook face
alone (strongest restoration, may drift from the identity), ``1`` fuses the most of the input's own features
(closest to the input, keeps more degradation). Values outside [0, 1] are refused.

Precision and backend as for GFP-GAN (:mod:`vidrestore.restorers.gfpgan`); the AdaIN statistics are computed in
float32 even under autocast. With OpenVINO the fidelity is part of the converted graph (and of its cache key).

Licence: ``codeformer.pth`` is NTU S-Lab License 1.0 (non-commercial use only, code and weights; see
``vidrestore weights list``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UsageError
from ..faces.temporal import TemporalProfile
from ..models.codeformer import CodeFormer
from .base import Restorer, build_model

__all__ = ["DEFAULT_FIDELITY", "CodeFormerRestorer", "build_codeformer", "check_fidelity"]

DEFAULT_FIDELITY = 0.5


def check_fidelity(fidelity: float) -> float:
    try:
        w = float(fidelity)
    except (TypeError, ValueError):
        raise UsageError(f"fidelity must be a number in [0, 1], got {fidelity!r}") from None
    if not 0.0 <= w <= 1.0:
        raise UsageError(f"fidelity must be in [0, 1] (0 = strongest restoration, 1 = closest to the input), got {w}")
    return w


class CodeFormerRestorer(Restorer):
    """A loaded CodeFormer with its configuration. ``fidelity`` is CodeFormer's ``w`` (see the module docs).

    Several restorers may share one model (e.g. two fidelities); the model is only read.

    ``temporal``: how the face stage holds CodeFormer's faces over time. A tiny change of the input redraws its
    codebook texture, so its output flickers several times more than GFP-GAN's: the stage blends it at 0.95 (gate
    0.02-0.05 of the range on the input's change) and low-passes the held crop before the paste so the held texture
    does not alias as the face moves (measured in faces/temporal.py).
    """

    temporal = TemporalProfile(strength=0.95, source_gate=(0.02, 0.05), paste_antialias=0.5)

    def __init__(
        self,
        model: CodeFormer,
        name: str = "codeformer",
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        batch_size: int = 8,
        fidelity: float = DEFAULT_FIDELITY,
        backend: str = "torch",
    ) -> None:
        self.fidelity = check_fidelity(fidelity)
        super().__init__(model, name, device, precision, batch_size, backend)

    def _repr_options(self) -> str:
        return f"fidelity={self.fidelity}, "

    def _run(self, x: torch.Tensor, noise: list[torch.Tensor] | None) -> torch.Tensor:
        return self.model(x, w=self.fidelity)


def build_codeformer(path: str | Path, device: torch.device | str = "cpu") -> CodeFormer:
    """A CodeFormer on ``device`` with the weights of ``path`` (``params_ema``, strict; :class:`CheckpointError`).

    ``inference_codeformer.py`` reads only ``params_ema``."""
    return build_model(CodeFormer, "CodeFormer", path, device, keys=("params_ema",))  # type: ignore[return-value]
