"""RestoreFormer as a restorer (interface: :mod:`vidrestore.restorers.base`).

``noise`` is accepted for interface compatibility and ignored: the model injects no noise. Precision and
backend as for GFP-GAN (:mod:`vidrestore.restorers.gfpgan`); the vector-quantiser distances are computed in
float32 even under autocast. ``RestoreFormer.pth`` is a GFPGAN release asset (see ``vidrestore weights list``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..models.restoreformer import RestoreFormer
from .base import Restorer, build_model

__all__ = ["RestoreFormerRestorer", "build_restoreformer"]


class RestoreFormerRestorer(Restorer):
    """A loaded RestoreFormer with its configuration (it has no options of its own)."""

    def __init__(
        self,
        model: RestoreFormer,
        name: str = "restoreformer",
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        batch_size: int = 8,
        backend: str = "torch",
    ) -> None:
        super().__init__(model, name, device, precision, batch_size, backend)

    def _run(self, x: torch.Tensor, noise: list[torch.Tensor] | None) -> torch.Tensor:
        return self.model(x)


def build_restoreformer(path: str | Path, device: torch.device | str = "cpu") -> RestoreFormer:
    """A RestoreFormer on ``device`` with the weights of ``path`` (``params_ema`` else ``params`` as GFPGANer
    reads them, strict)."""
    return build_model(RestoreFormer, "RestoreFormer", path, device)  # type: ignore[return-value]
