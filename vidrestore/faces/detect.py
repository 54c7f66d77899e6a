"""Face detection: RetinaFace batched over frames on the model's device (fakes: :mod:`vidrestore.testing`).

Parity with facexlib's ``RetinaFace.detect_faces`` (``use_origin_size=True``, its default and what
FaceRestoreHelper uses) is the default. The steps, all in torch on the model's device:

1. input: RGB uint8 frames → BGR float32 in [0, 255] minus the mean (104, 117, 123); no scaling by 255, no std;
2. one forward pass per batch of same-sized frames (mixed sizes are grouped; ``batch_size`` caps a batch);
3. decode of boxes and five landmarks against prior boxes cached per input size (per detector instance);
4. ``score > conf_threshold`` (strict), sort by descending score, greedy NMS at ``nms_threshold``
   (:func:`nms`, the semantics of torchvision's CPU kernel: area without +1, IoU in float32, compared in double);
5. optional filters that facexlib leaves to its helper: ``min_face``, ``eye_dist_threshold``,
   ``only_center_face``.

``max_side`` (off by default) downsizes frames whose larger side exceeds it before the network, on the device
(bilinear with antialiasing), and maps boxes and landmarks back to the frame's pixels. It trades recall of
small faces for speed: R50 costs grow with the pixel count (1280x720 is ~4x 640x480).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, TypeVar

import numpy as np
import torch
from torch.nn import functional as F

from ..device import resolve_device
from ..errors import CheckpointError, UsageError, WeightsError
from ..models.checkpoint import StateDict, clean_state_dict, load_into, read_checkpoint
from ..models.retinaface import BGR_MEAN, RetinaFace, backbone_from_keys, decode_boxes, decode_landmarks, prior_boxes
from .face import Face
from .regions import detect_in_crops

_O = TypeVar("_O")

__all__ = [
    "DetectorOptions",
    "RetinaFaceDetector",
    "DETECTOR_FILES",
    "load_detector",
    "nms",
    "options_from",
    "select_detections",
    "resolve_device",
]

#: Detector names and the facexlib weight file each one loads.
DETECTOR_FILES: Mapping[str, str] = MappingProxyType(
    {
        "retinaface_resnet50": "detection_Resnet50_Final.pth",
        "retinaface_mobile0.25": "detection_mobilenet0.25_Final.pth",
    }
)
_BACKBONE_OF_NAME: Mapping[str, str] = MappingProxyType(
    {"retinaface_resnet50": "resnet50", "retinaface_mobile0.25": "mobile0.25"}
)
_PRIOR_CACHE_SIZE = 16


@dataclass(frozen=True)
class DetectorOptions:
    """How detections are selected. Defaults are facexlib's ``detect_faces`` defaults (parity).

    conf_threshold: keep priors whose face probability is strictly above this (facexlib 0.8; its restore
        helper uses 0.97).
    nms_threshold: IoU above which a lower-scored box is suppressed (0.4).
    min_face: drop faces whose box's larger side is below this many pixels (0 = keep all).
    eye_dist_threshold: drop faces whose eyes are closer than this many pixels (GFPGAN passes 5; None = off).
    only_center_face: keep only the face whose box centre is closest to the frame centre.
    batch_size: frames per forward pass (same-sized frames only).
    max_side: downscale frames whose larger side exceeds this before detection (None = off = parity).
    """

    conf_threshold: float = 0.8
    nms_threshold: float = 0.4
    min_face: float = 0.0
    eye_dist_threshold: float | None = None
    only_center_face: bool = False
    batch_size: int = 8
    max_side: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf_threshold <= 1.0:
            raise UsageError(f"conf_threshold must be in [0, 1], not {self.conf_threshold}")
        if not 0.0 <= self.nms_threshold <= 1.0:
            raise UsageError(f"nms_threshold must be in [0, 1], not {self.nms_threshold}")
        if self.batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, not {self.batch_size}")
        if self.max_side is not None and self.max_side < 32:
            raise UsageError(f"max_side must be at least 32 pixels (or None), not {self.max_side}")
        if self.min_face < 0:
            raise UsageError(f"min_face must be >= 0, not {self.min_face}")


# ----------------------------------------------------------------------------------------------------------
# Pure post-processing


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; indices of the kept boxes, by decreasing score.

    Same semantics as torchvision's CPU ``nms``: boxes ``(K, 4)`` as ``x1, y1, x2, y2``, area without +1,
    order from a descending sort of ``scores``, IoU ``inter / (area_i + area_j - inter)`` in the boxes' dtype,
    and a box is suppressed when that IoU, compared in float64, is above ``iou_threshold``. The IoU matrix is
    computed on the boxes' device; the greedy pass runs over a boolean matrix on the CPU.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order]
    x1, y1, x2, y2 = b.unbind(dim=1)
    areas = (x2 - x1) * (y2 - y1)
    w = (torch.minimum(x2[:, None], x2[None, :]) - torch.maximum(x1[:, None], x1[None, :])).clamp(min=0)
    h = (torch.minimum(y2[:, None], y2[None, :]) - torch.maximum(y1[:, None], y1[None, :])).clamp(min=0)
    inter = w * h
    iou = inter / (areas[:, None] + areas[None, :] - inter)
    over = (iou.double() > float(iou_threshold)).cpu()
    k = over.shape[0]
    suppressed = torch.zeros(k, dtype=torch.bool)
    keep: list[int] = []
    for i in range(k):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= over[i]
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]


def select_detections(
    loc: torch.Tensor,
    conf: torch.Tensor,
    landmarks: torch.Tensor,
    priors: torch.Tensor,
    height: int,
    width: int,
    conf_threshold: float = 0.8,
    nms_threshold: float = 0.4,
) -> torch.Tensor:
    """facexlib's ``detect_faces`` post-processing for one image.

    ``loc (P,4)``, ``conf (P,2)`` (softmaxed), ``landmarks (P,10)``, ``priors (P,4)``; ``height``/``width`` are the
    pixel size the normalised coordinates are scaled to. Returns ``(n, 15)`` float32 rows
    ``[x1, y1, x2, y2, score, l0x, l0y, ..., l4x, l4y]`` in NMS keep order (descending score).
    """
    scores = conf[:, 1]
    mask = scores > conf_threshold
    if not bool(mask.any()):
        return torch.zeros((0, 15), dtype=torch.float32, device=loc.device)
    loc, landmarks, pri, scores = loc[mask], landmarks[mask], priors[mask], scores[mask]
    dev = loc.device
    box_scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=dev)
    lmk_scale = torch.tensor([width, height] * 5, dtype=torch.float32, device=dev)
    boxes = decode_boxes(loc, pri) * box_scale
    pts = decode_landmarks(landmarks, pri) * lmk_scale
    order = torch.sort(scores, descending=True, stable=True).indices
    boxes, pts, scores = boxes[order], pts[order], scores[order]
    keep = nms(boxes, scores, nms_threshold)
    return torch.cat([boxes[keep], scores[keep, None], pts[keep]], dim=1).float()


def _filter_rows(rows: np.ndarray, height: int, width: int, opts: DetectorOptions) -> np.ndarray:
    """The helper-level filters on ``(n, 15)`` rows: min_face, eye distance, only_center_face."""
    if len(rows) == 0:
        return rows
    if opts.min_face > 0:
        side = np.maximum(rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1])
        rows = rows[side >= opts.min_face]
    if opts.eye_dist_threshold is not None and len(rows):
        eye = np.hypot(rows[:, 5] - rows[:, 7], rows[:, 6] - rows[:, 8])
        rows = rows[eye >= opts.eye_dist_threshold]
    if opts.only_center_face and len(rows) > 1:
        cx = (rows[:, 0] + rows[:, 2]) / 2 - width / 2
        cy = (rows[:, 1] + rows[:, 3]) / 2 - height / 2
        rows = rows[int(np.argmin(cx * cx + cy * cy))][None]
    return rows


def _rows_to_faces(rows: np.ndarray) -> list[Face]:
    return [Face(box=r[:4], landmarks=r[5:15].reshape(5, 2), score=float(r[4])) for r in rows]


# ----------------------------------------------------------------------------------------------------------
# The detector


def _check_frame(i: int, frame: object) -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame {i} is a {type(frame).__name__}, expected an HxWx3 uint8 numpy array")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame {i} has shape {frame.shape} and dtype {frame.dtype}; expected HxWx3 uint8 RGB")
    return frame


class RetinaFaceDetector:
    """Batched RetinaFace. ``detect(frames)`` takes RGB uint8 HxWx3 frames and returns a list of faces per frame.

    The model's device is where everything runs; frames cross to it once per batch as uint8.
    """

    backend: str = "torch"  # "openvino" when load_detector put the converted network in ``model``

    def __init__(self, model: RetinaFace, options: DetectorOptions | None = None, **overrides: object) -> None:
        self.model = model.eval()
        self.options = replace(options or DetectorOptions(), **overrides)  # type: ignore[arg-type]
        self._priors: OrderedDict[tuple[int, int], torch.Tensor] = OrderedDict()
        self._mean = torch.tensor(BGR_MEAN, dtype=torch.float32).view(1, 3, 1, 1)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def backbone(self) -> str:
        return self.model.cfg.backbone

    def to(self, device: str | torch.device) -> RetinaFaceDetector:
        self.model.to(resolve_device(device))
        self._priors.clear()
        return self

    def priors(self, height: int, width: int) -> torch.Tensor:
        """Prior boxes for a network input of ``height`` x ``width``, cached (LRU, per instance) on the device."""
        key = (height, width)
        hit = self._priors.get(key)
        if hit is not None and hit.device == self.device:
            self._priors.move_to_end(key)
            return hit
        pri = prior_boxes(height, width, self.model.cfg, device=self.device)
        self._priors[key] = pri
        while len(self._priors) > _PRIOR_CACHE_SIZE:
            self._priors.popitem(last=False)
        return pri

    def _input_size(self, height: int, width: int) -> tuple[int, int]:
        ms = self.options.max_side
        if ms is None or max(height, width) <= ms:
            return height, width
        s = ms / max(height, width)
        return max(1, round(height * s)), max(1, round(width * s))

    def preprocess(self, batch: np.ndarray) -> torch.Tensor:
        """``(N, H, W, 3)`` RGB uint8 → the network input ``(N, 3, h, w)``: BGR float32 minus the mean."""
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).flip(1).float()  # RGB → BGR, [0, 255]
        h, w = self._input_size(x.shape[2], x.shape[3])
        if (h, w) != tuple(x.shape[2:]):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        return (x - self._mean.to(x.device)).contiguous()

    @torch.inference_mode()
    def forward_batch(self, batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw outputs for ``(N, H, W, 3)`` frames: ``loc, conf (softmaxed), landmarks`` and the priors used."""
        x = self.preprocess(batch)
        loc, conf, lmk = self.model(x)
        return loc, conf, lmk, self.priors(x.shape[2], x.shape[3])

    def detect_rows(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """facexlib-layout ``(n, 15)`` float32 rows per frame (threshold + NMS only, no helper filters)."""
        return self._run(frames, filtered=False)

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces per frame, in each frame's pixels, by decreasing score (after the optional filters)."""
        return [_rows_to_faces(r) for r in self._run(frames, filtered=True)]

    def __call__(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        return self.detect(frames)

    def detect_regions(self, frame: np.ndarray, boxes: Sequence[tuple[int, int, int, int]]) -> list[list[Face]]:
        """Faces found in each ``(x0, y0, x1, y1)`` crop of ``frame``, in the frame's pixels (faces/regions.py)."""
        return detect_in_crops(self.detect, frame, boxes)

    def _run(self, frames: Sequence[np.ndarray], filtered: bool) -> list[np.ndarray]:
        frames = [_check_frame(i, f) for i, f in enumerate(frames)]
        out: list[np.ndarray | None] = [None] * len(frames)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, f in enumerate(frames):
            groups.setdefault((f.shape[0], f.shape[1]), []).append(i)
        opts = self.options
        for (height, width), idx in groups.items():
            for start in range(0, len(idx), opts.batch_size):
                chunk = idx[start:start + opts.batch_size]
                loc, conf, lmk, pri = self.forward_batch(np.stack([frames[i] for i in chunk]))
                with torch.inference_mode():
                    for j, i in enumerate(chunk):
                        rows = select_detections(
                            loc[j], conf[j], lmk[j], pri, height, width, opts.conf_threshold, opts.nms_threshold
                        ).cpu().numpy()
                        out[i] = _filter_rows(rows, height, width, opts) if filtered else rows
        return [r if r is not None else np.zeros((0, 15), np.float32) for r in out]


# ----------------------------------------------------------------------------------------------------------
# Loading


def options_from(cls: type[_O], what: str, options: Mapping[str, object]) -> _O:
    """``cls(**options)`` for an options dataclass, with one :class:`UsageError` naming unknown fields."""
    valid = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - valid)
    if unknown:
        raise UsageError(f"unknown {what} option(s) {', '.join(unknown)}; known: {', '.join(sorted(valid))}")
    return cls(**options)


def fill_bn_counters(model: torch.nn.Module) -> Callable[[StateDict], StateDict]:
    """A remap that adds missing BatchNorm ``num_batches_tracked`` entries (zeros), which facexlib's strict load
    tolerates; every other key must still match exactly."""
    wanted = [k for k in model.state_dict() if k.endswith("num_batches_tracked")]

    def remap(state: StateDict) -> StateDict:
        out = dict(state)
        for k in wanted:
            if k not in out:
                out[k] = torch.zeros((), dtype=torch.int64)
        return out

    return remap


def _load_retinaface(path: Path, backbone: str | None) -> RetinaFace:
    if backbone is None:
        low = path.name.lower()
        if "resnet50" in low:
            backbone = "resnet50"
        elif "mobilenet" in low or "mobile0.25" in low:
            backbone = "mobile0.25"
        else:
            backbone = backbone_from_keys(clean_state_dict(read_checkpoint(path), path).keys())
            if backbone is None:
                raise CheckpointError(
                    f"{path}: not a RetinaFace checkpoint (neither ResNet-50 nor MobileNet-0.25 keys); "
                    "pass backbone='resnet50' or 'mobile0.25' if it is one"
                )
    try:
        model = RetinaFace(backbone)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    load_into(model, path, f"RetinaFace-{backbone}", remap=fill_bn_counters(model))
    return model


def load_detector(
    name_or_path: str | os.PathLike[str] = "retinaface_resnet50",
    device: str | torch.device | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    backbone: str | None = None,
    backend: str = "auto",
    precision: str = "fp32",
    **options: object,
) -> RetinaFaceDetector:
    """Build a :class:`RetinaFaceDetector` from a known name or a checkpoint path.

    Names: ``"retinaface_resnet50"`` (``detection_Resnet50_Final.pth``) and ``"retinaface_mobile0.25"``
    (``detection_mobilenet0.25_Final.pth``), found (or downloaded) by :func:`vidrestore.weights.resolve_weights`;
    those registry file names work too. A path to a RetinaFace checkpoint (facexlib's layout, e.g. a user's own
    file) is loaded directly; its backbone comes from ``backbone``, else the file name, else the keys.
    ``options`` are :class:`DetectorOptions` fields. ``backend``: ``"torch"``, ``"openvino"`` or ``"auto"``
    (OpenVINO on the CPU when the extra is installed; converted once with a dynamic frame size, cached beside the
    weights; fp32, max diff ~1e-5), as for :func:`vidrestore.restorers.load_restorer`. ``precision`` applies to
    the OpenVINO network (bf16 where the CPU has it: landmarks move < 0.25 px); the torch network runs fp32.
    """
    from ..models.openvino import choose_backend

    opts = options_from(DetectorOptions, "detector", options)
    chosen = choose_backend(backend, device, precision)
    dev = resolve_device(device)
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    by_file = {f: n for n, f in DETECTOR_FILES.items()}
    if text in DETECTOR_FILES or text in by_file:  # a bare registry name is never read from the working dir
        from ..weights import resolve_weights

        name = text if text in DETECTOR_FILES else by_file[text]
        path = Path(resolve_weights(DETECTOR_FILES[name], weights_dir=weights_dir))
        backbone = backbone or _BACKBONE_OF_NAME[name]
    elif not path.is_file():
        if isinstance(name_or_path, os.PathLike) or os.sep in text or text.endswith((".pth", ".pt")):
            raise CheckpointError(f"{path}: no such detector checkpoint file")
        raise WeightsError(
            f"unknown detector {text!r}; choose one of {', '.join(DETECTOR_FILES)} or give a RetinaFace .pth file"
        )
    model = _load_retinaface(path, backbone)
    if chosen == "openvino":
        from ..device import openvino_device
        from ..models.openvino import retinaface_openvino

        model = retinaface_openvino(model.eval(), path, openvino_device(device), precision)  # type: ignore[assignment]
    detector = RetinaFaceDetector(model.to(dev), opts)
    detector.backend = chosen
    return detector
