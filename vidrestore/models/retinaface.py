"""RetinaFace (ResNet-50 and MobileNet-0.25 backbones) with facexlib's state-dict layout.

Written from the architecture description in ``shared/reference/facexlib/README.md`` (section 3): a backbone
returning three feature maps (strides 8, 16, 32), an FPN, one SSH context module per level and three 1x1-conv
heads with two anchors per cell. The module and parameter names reproduce facexlib's checkpoints
(``detection_Resnet50_Final.pth``, ``detection_mobilenet0.25_Final.pth``) key for key and in the same order,
so they load strictly.

The network takes BGR-minus-mean float input (see :func:`vidrestore.faces.detect`), and returns raw
``(loc, conf, landmarks)`` with ``conf`` already softmaxed, exactly as facexlib's model does in test phase.
Prior boxes and decoding are pure functions here too (:func:`prior_boxes`, :func:`decode_boxes`,
:func:`decode_landmarks`) so the detector and the tests share them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "RetinaFaceConfig",
    "RETINAFACE_CONFIGS",
    "RetinaFace",
    "backbone_from_keys",
    "prior_boxes",
    "decode_boxes",
    "decode_landmarks",
    "BGR_MEAN",
]

#: Per-channel mean subtracted from the BGR [0, 255] input (B, G, R).
BGR_MEAN = (104.0, 117.0, 123.0)


@dataclass(frozen=True)
class RetinaFaceConfig:
    """Inference constants of one RetinaFace variant (facexlib's ``cfg_re50`` / ``cfg_mnet``)."""

    backbone: str
    fpn_in: tuple[int, int, int]
    out_channel: int
    min_sizes: tuple[tuple[int, int], ...] = ((16, 32), (64, 128), (256, 512))
    steps: tuple[int, ...] = (8, 16, 32)
    variance: tuple[float, float] = (0.1, 0.2)

    @property
    def leaky(self) -> float:
        """Negative slope of the FPN/SSH activations: 0.1 for narrow nets, 0 (plain ReLU) otherwise."""
        return 0.1 if self.out_channel <= 64 else 0.0


RETINAFACE_CONFIGS: dict[str, RetinaFaceConfig] = {
    "resnet50": RetinaFaceConfig("resnet50", (512, 1024, 2048), 256),
    "mobile0.25": RetinaFaceConfig("mobile0.25", (64, 128, 256), 64),
}


# ----------------------------------------------------------------------------------------------------------
# Building blocks. Sequential indices matter: they are the checkpoint's key names.


def _conv_bn(
    cin: int, cout: int, k: int = 3, stride: int = 1, slope: float | None = 0.0, groups: int = 1
) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if slope is not None:
        layers.append(nn.LeakyReLU(slope, inplace=True))
    return layers


def _seq_conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, slope: float | None = 0.0) -> nn.Sequential:
    return nn.Sequential(*_conv_bn(cin, cout, k, stride, slope))


def _dw_block(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 + BN + LReLU(0.1), then pointwise 1x1 + BN + LReLU(0.1) (indices 0..5)."""
    return nn.Sequential(
        *_conv_bn(cin, cin, 3, stride, 0.1, groups=cin),
        *_conv_bn(cin, cout, 1, 1, 0.1),
    )


class _MobileNetV1Body(nn.Module):
    """MobileNet-0.25 trunk: three stages with output strides 8, 16, 32 (64, 128, 256 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _seq_conv_bn(3, 8, 3, 2, 0.1),
            _dw_block(8, 16, 1),
            _dw_block(16, 32, 2),
            _dw_block(32, 32, 1),
            _dw_block(32, 64, 2),
            _dw_block(64, 64, 1),
        )
        self.stage2 = nn.Sequential(_dw_block(64, 128, 2), *[_dw_block(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_dw_block(128, 256, 2), _dw_block(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        c3 = self.stage3(c2)
        return [c1, c2, c3]


class _Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv), expansion 4."""

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class _ResNet50Body(nn.Module):
    """ResNet-50 trunk without avgpool/fc; returns layer2, layer3, layer4 (strides 8, 16, 32)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        cin = 64
        for idx, (width, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), 1):
            layer = []
            for b in range(blocks):
                layer.append(_Bottleneck(cin, width, stride if b == 0 else 1))
                cin = width * 4
            self.add_module(f"layer{idx}", nn.Sequential(*layer))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        c2 = self.layer2(x)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return [c2, c3, c4]


class _FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, int, int], out: int, slope: float) -> None:
        super().__init__()
        self.output1 = _seq_conv_bn(in_channels[0], out, 1, 1, slope)
        self.output2 = _seq_conv_bn(in_channels[1], out, 1, 1, slope)
        self.output3 = _seq_conv_bn(in_channels[2], out, 1, 1, slope)
        self.merge1 = _seq_conv_bn(out, out, 3, 1, slope)
        self.merge2 = _seq_conv_bn(out, out, 3, 1, slope)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        o1 = self.output1(feats[0])
        o2 = self.output2(feats[1])
        o3 = self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[-2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[-2:], mode="nearest"))
        return [o1, o2, o3]


class _SSH(nn.Module):
    """Context module: 3x3 (C/2) ‖ 5x5-equivalent (C/4) ‖ 7x7-equivalent (C/4), concatenated, ReLU."""

    def __init__(self, cin: int, cout: int, slope: float) -> None:
        super().__init__()
        self.conv3X3 = _seq_conv_bn(cin, cout // 2, 3, 1, None)
        self.conv5X5_1 = _seq_conv_bn(cin, cout // 4, 3, 1, slope)
        self.conv5X5_2 = _seq_conv_bn(cout // 4, cout // 4, 3, 1, None)
        self.conv7X7_2 = _seq_conv_bn(cout // 4, cout // 4, 3, 1, slope)
        self.conv7x7_3 = _seq_conv_bn(cout // 4, cout // 4, 3, 1, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv3X3(x)
        t = self.conv5X5_1(x)
        b = self.conv5X5_2(t)
        c = self.conv7x7_3(self.conv7X7_2(t))
        return F.relu(torch.cat([a, b, c], dim=1))


class _Head(nn.Module):
    def __init__(self, cin: int, channels: int) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(cin, channels, 1)

    def forward(self, x: torch.Tensor, per_prior: int) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, per_prior)


class RetinaFace(nn.Module):
    """RetinaFace in facexlib's layout.

    ``forward`` returns ``(loc (N,P,4), conf (N,P,2) softmaxed, landmarks (N,P,10))``.

    Rows run level by level (stride 8, 16, 32), then row-major over the feature map, then anchor (small, large):
    the order of :func:`prior_boxes`.
    """

    def __init__(self, backbone: str = "resnet50") -> None:
        super().__init__()
        if backbone not in RETINAFACE_CONFIGS:
            raise ValueError(f"unknown RetinaFace backbone {backbone!r}; expected one of {sorted(RETINAFACE_CONFIGS)}")
        cfg = RETINAFACE_CONFIGS[backbone]
        self.cfg = cfg
        self.body = _ResNet50Body() if backbone == "resnet50" else _MobileNetV1Body()
        c = cfg.out_channel
        self.fpn = _FPN(cfg.fpn_in, c, cfg.leaky)
        self.ssh1 = _SSH(c, c, cfg.leaky)
        self.ssh2 = _SSH(c, c, cfg.leaky)
        self.ssh3 = _SSH(c, c, cfg.leaky)
        anchors = 2
        self.ClassHead = nn.ModuleList([_Head(c, anchors * 2) for _ in range(3)])
        self.BboxHead = nn.ModuleList([_Head(c, anchors * 4) for _ in range(3)])
        self.LandmarkHead = nn.ModuleList([_Head(c, anchors * 10) for _ in range(3)])

    def forward_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Like :meth:`forward` but with the class logits before the softmax."""
        fpn = self.fpn(self.body(x))
        feats = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
        loc = torch.cat([h(f, 4) for h, f in zip(self.BboxHead, feats)], dim=1)
        logits = torch.cat([h(f, 2) for h, f in zip(self.ClassHead, feats)], dim=1)
        landmarks = torch.cat([h(f, 10) for h, f in zip(self.LandmarkHead, feats)], dim=1)
        return loc, logits, landmarks

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        loc, logits, landmarks = self.forward_logits(x)
        return loc, F.softmax(logits, dim=-1), landmarks


def backbone_from_keys(keys: object) -> str | None:
    """Guess the backbone from state-dict key names (``None`` if neither layout is recognised)."""
    names = [str(k).removeprefix("module.") for k in keys]  # type: ignore[union-attr]
    if any(n.startswith("body.layer4.") for n in names):
        return "resnet50"
    if any(n.startswith("body.stage3.") for n in names):
        return "mobile0.25"
    return None


def prior_boxes(
    height: int,
    width: int,
    cfg: RetinaFaceConfig | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Anchor centres and sizes ``(P, 4)`` float32 ``[cx, cy, w, h]`` normalised by the image size.

    Feature map k has ``ceil(H/step_k) x ceil(W/step_k)`` cells; each cell holds one prior per min size.
    Computed in float64 then rounded to float32 (as facexlib does with Python floats).
    """
    cfg = cfg or RETINAFACE_CONFIGS["resnet50"]
    parts = []
    for step, sizes in zip(cfg.steps, cfg.min_sizes):
        fh, fw = math.ceil(height / step), math.ceil(width / step)
        ys = (torch.arange(fh, dtype=torch.float64) + 0.5) * step / height
        xs = (torch.arange(fw, dtype=torch.float64) + 0.5) * step / width
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")  # (fh, fw)
        per_size = []
        for s in sizes:
            sw = torch.full_like(cx, s / width)
            sh = torch.full_like(cx, s / height)
            per_size.append(torch.stack([cx, cy, sw, sh], dim=-1))  # (fh, fw, 4)
        parts.append(torch.stack(per_size, dim=2).reshape(-1, 4))  # (fh*fw*A, 4)
    return torch.cat(parts, dim=0).to(dtype=torch.float32, device=device)


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor, variance: tuple[float, float] = (0.1, 0.2)) -> torch.Tensor:
    """``[x1, y1, x2, y2]`` normalised boxes from regression ``loc (..., P, 4)`` (float32 ops in facexlib's order)."""
    centre = priors[..., :2] + loc[..., :2] * variance[0] * priors[..., 2:]
    size = priors[..., 2:] * torch.exp(loc[..., 2:] * variance[1])
    x1y1 = centre - size / 2
    return torch.cat([x1y1, x1y1 + size], dim=-1)


def decode_landmarks(
    pre: torch.Tensor, priors: torch.Tensor, variance: tuple[float, float] = (0.1, 0.2)
) -> torch.Tensor:
    """Five normalised landmark points ``(..., P, 10)`` from the landmark regression ``pre``."""
    pts = pre.reshape(*pre.shape[:-1], 5, 2)
    out = priors[..., None, :2] + pts * variance[0] * priors[..., None, 2:]
    return out.reshape(pre.shape)
