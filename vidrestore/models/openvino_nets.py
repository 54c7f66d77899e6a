"""OpenVINO twins of the auxiliary networks: ParseNet (the face mask) and RRDBNet (Real-ESRGAN).

Both are converted from our own modules by :func:`vidrestore.models.openvino.load_network` (cached beside the
weights, keyed by checkpoint hash, configuration and OpenVINO version) and wrapped in small modules with the torch
network's interface, so :class:`~vidrestore.faces.parse.FaceParser` and
:class:`~vidrestore.upscale.RealESRGANUpscaler` run them unchanged. Each wrapper holds an empty parameter
(``anchor``): the callers read their device from the model's parameters, and the tensors around an OpenVINO
network live on the CPU.

* ParseNet: converted at the parse size in use (static ``(1, 3, s, s)``; crops run one by one: measured on this
  CPU at 256 px, 0.85 s per crop against 0.82 s in a dynamic batch of 4, within the noise), only the 19-class logits traced (the image head is dropped).
* RRDBNet: converted once with a dynamic batch, height and width (tiles differ in size at the frame's borders,
  and ``tile=0`` runs whole frames of any size); measured within 2 % of a static tile shape (124 px, x2).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .openvino import OVModule, load_network

__all__ = ["OVParseNet", "OVRRDBNet", "parsenet_openvino", "rrdbnet_openvino"]


class _Logits(nn.Module):
    """ParseNet returning only its parsing logits (what the converter traces)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


class OVParseNet(nn.Module):
    """ParseNet's call (``model(x)[0]`` = logits ``(N, 19, s, s)``) on a network converted at ``(1, 3, s, s)``."""

    def __init__(self, net: OVModule, size: int) -> None:
        super().__init__()
        self.net = net
        self.size = size
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        if tuple(x.shape[1:]) != (3, self.size, self.size):
            raise ValueError(f"this OpenVINO ParseNet was converted for 3x{self.size}x{self.size} crops, "
                             f"not {tuple(x.shape[1:])}; load it again with that parse_size")
        return (torch.cat([self.net(x[i : i + 1])[0] for i in range(x.shape[0])]).to(x.device),)


def parsenet_openvino(model: nn.Module, checkpoint: str | Path, parse_size: int, device: str = "CPU",
                      precision: str = "fp32") -> OVParseNet:
    """The OpenVINO twin of a loaded ParseNet at ``parse_size`` (part of the graph and of the cache key)."""
    example = [torch.zeros(1, 3, parse_size, parse_size)]
    net = load_network(lambda: _Logits(model), example, checkpoint, {"network": "parsenet"}, device, precision)
    return OVParseNet(net, parse_size)


class OVRRDBNet(nn.Module):
    """RRDBNet's interface (``forward(x) -> (N, 3, H*s, W*s)``, ``scale``) on a network converted with a dynamic
    batch, height and width."""

    def __init__(self, net: OVModule, scale: int) -> None:
        super().__init__()
        self.net = net
        self.scale = scale
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = {1: 4, 2: 2, 4: 1}[self.scale]
        if x.shape[-2] % r or x.shape[-1] % r:
            raise ValueError(f"RRDBNet x{self.scale} needs height and width divisible by {r}, got {tuple(x.shape[-2:])}")
        return self.net(x)[0].to(x.device)


def rrdbnet_openvino(model: nn.Module, checkpoint: str | Path, device: str = "CPU",
                     precision: str = "fp32") -> OVRRDBNet:
    """The OpenVINO twin of a loaded RRDBNet (any frame or tile size)."""
    example = [torch.zeros(1, 3, 64, 64)]
    config = {"network": "rrdbnet", "scale": model.scale}
    net = load_network(lambda: model, example, checkpoint, config, device, precision, shapes=[[-1, 3, -1, -1]])
    return OVRRDBNet(net, model.scale)
