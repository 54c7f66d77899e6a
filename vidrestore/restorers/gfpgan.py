"""GFP-GAN (GFPGANv1Clean weights v1.3 / v1.4) as a restorer (interface: :mod:`vidrestore.restorers.base`).

Noise: unlike GFPGANer, which draws fresh noise on every call and so makes video flicker, the model uses its
15 stored noise buffers unless a ``noise`` list is passed (see :meth:`GFPGANRestorer.make_noise`), so the same
face gives the same output every time.

Precision: ``"fp32"`` everywhere (the exact default); ``"fp16"``/``"bf16"`` under autocast on CUDA (fp16 also on
MPS); ``"bf16"`` on a CPU with native bf16 (:func:`vidrestore.device.check_precision` refuses the rest in one line).

Backend: ``load_restorer(..., backend=...)`` may swap the torch model for its OpenVINO twin
(:func:`vidrestore.models.openvino.gfpgan_openvino`, same interface); ``restorer.backend`` says which runs.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import torch
from torch import nn

from ..models.gfpgan import GFPGANv1Clean
from .base import Restorer, build_model

__all__ = ["RESTORER_FILES", "GFPGANRestorer", "build_gfpgan"]

#: restorer name → registry file name
RESTORER_FILES: Mapping[str, str] = MappingProxyType(
    {
        "gfpgan-1.4": "GFPGANv1.4.pth",
        "gfpgan-1.3": "GFPGANv1.3.pth",
    }
)
_ARCH = "GFPGANv1Clean"


class GFPGANRestorer(Restorer):
    """A loaded GFP-GAN model with its configuration (device, precision, crop size, batch size).

    Build one with :func:`vidrestore.restorers.load_restorer`. The crop it expects is ``crop_size`` square,
    aligned to the FFHQ 512 template (the aligner's job).
    """

    takes_noise = True

    def __init__(
        self,
        model: GFPGANv1Clean,
        name: str,
        device: torch.device,
        precision: str = "fp32",
        batch_size: int = 8,
        channels_last: bool | None = None,
        backend: str = "torch",
    ) -> None:
        super().__init__(model, name, device, precision, batch_size, backend)
        # channels_last: default on CUDA (tensor cores want NHWC), off on the CPU: on the shared 2-core test
        # machine bench/restorer.py found no gain at batch 1 and results within the noise at batch 2-4.
        self.channels_last = (self.device.type == "cuda") if channels_last is None else bool(channels_last)
        # Set the conv weights' layout either way (a model shared by two restorers takes the last one's; both
        # layouts give the same results, only the speed differs).
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model.apply(lambda m: m.to(memory_format=fmt) if isinstance(m, nn.Conv2d) else None)
        self.crop_size = self.model.out_size

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

    def _run(self, x: torch.Tensor, noise: list[torch.Tensor] | None) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x, noise)


def build_gfpgan(path: str | Path, device: torch.device | str = "cpu") -> GFPGANv1Clean:
    """A GFPGANv1Clean on ``device`` with the weights of ``path`` (strict; :class:`CheckpointError` if not)."""
    return build_model(GFPGANv1Clean, _ARCH, path, device)  # type: ignore[return-value]
