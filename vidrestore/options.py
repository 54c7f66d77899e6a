"""Option dataclasses shared by the front doors (file, photo, still, batch, live, app) and the CLI."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .errors import UsageError
from .media.filters import FilterOptions
from .media.sink import EncodeOptions


MODELS = ("gfpgan-1.4", "gfpgan-1.3", "codeformer", "restoreformer", "none")


@dataclass(frozen=True)
class RestoreOptions:
    """Everything ``restore_video`` can be told. The CLI builds one of these from its arguments."""

    model: str = "gfpgan-1.4"
    fidelity: float = 0.5
    codec: str = "h264"
    crf: int | None = None
    preset: str = "medium"
    overwrite: bool = False
    device: str | None = None
    precision: str = "fp32"
    backend: str = "auto"  # auto | torch | openvino (models.openvino.choose_backend)
    batch_size: int = 8
    weights_dir: str | None = None
    detector: str = "retinaface_resnet50"
    detect_every: int = 1
    scan_every: int | None = None  # full-frame face search every N frames (None: 4 on the CPU, 1 elsewhere)
    only_center_face: bool = False
    min_face: float = 0.0
    parse: bool = True
    parse_size: int = 256
    parse_every: int = 5
    temporal: bool = True
    temporal_strength: float | None = None  # None: the restorer's own (CodeFormer 0.95), else 0.5
    strength: float = 1.0
    report: str | None = None
    upscale: int = 1
    bg_upsampler: str = "realesrgan"
    tile: int | None = None
    tile_pad: int = 10
    compare: str | None = None
    deinterlace: str = "off"  # auto | off | frame | field (media.filters)
    denoise: str = "off"  # off | light
    crop_bottom: int = 0
    start: float | None = None  # seconds from the file's first timestamp; end is exclusive
    end: float | None = None
    pix_fmt: str | None = None  # the encoder's pixel format (None: chosen by the sink)
    extra: dict[str, Any] = field(default_factory=dict)

    def encode_options(self) -> EncodeOptions:
        if self.pix_fmt is None:
            return EncodeOptions(codec=self.codec, crf=self.crf, preset=self.preset)
        return EncodeOptions(codec=self.codec, crf=self.crf, preset=self.preset, pix_fmt=self.pix_fmt)

    def filter_options(self) -> FilterOptions:
        return FilterOptions(deinterlace=self.deinterlace, denoise=self.denoise, crop_bottom=self.crop_bottom)

    def time_range(self) -> tuple[float | None, float | None]:
        """(start, end) in seconds, checked: 0 <= start < end (one-line ``UsageError`` otherwise)."""
        return check_time_range(self.start, self.end)


def check_time_range(start: float | None, end: float | None) -> tuple[float | None, float | None]:
    if start is not None and start < 0:
        raise UsageError(f"--start must be 0 or later, got {start:g} s")
    if end is not None and end <= 0:
        raise UsageError(f"--end must be after 0, got {end:g} s")
    if start is not None and end is not None and end <= start:
        raise UsageError(f"--end ({end:g} s) must be after --start ({start:g} s)")
    return (start or None), end


# Restore options that do not change the output bytes, left out of the options fingerprint.
_NOT_IN_KEY = {"overwrite", "device", "backend", "batch_size", "weights_dir", "report", "extra"}


@dataclass(frozen=True)
class BatchOptions:
    """How a folder is restored. ``restore`` and ``filters`` apply to every file."""

    restore: RestoreOptions = field(default_factory=RestoreOptions)
    filters: FilterOptions = field(default_factory=FilterOptions)
    segment_seconds: float = 60.0
    retry_failed: bool = False
    engine: str = "local"  # local | ray | inline
    workers: int = 1
    address: str | None = None
    keep_work: bool = False

    def __post_init__(self) -> None:
        if self.engine not in ("local", "ray", "inline"):
            raise UsageError(f"unknown --engine {self.engine!r}; choose local or ray")
        if self.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {self.workers}")
        if self.segment_seconds < 0:
            raise UsageError(f"--segment-seconds must be 0 (no segments) or more, got {self.segment_seconds}")
        if self.address and self.engine != "ray":
            raise UsageError("--address is for --engine ray")

    def fingerprint(self) -> dict[str, Any]:
        """What shapes the output bytes: a changed value means a file is restored again."""
        restore = {k: v for k, v in asdict(replace(self.restore, extra={})).items() if k not in _NOT_IN_KEY}
        return {"restore": restore, "filters": asdict(self.filters), "segment_seconds": float(self.segment_seconds)}

    def key(self) -> str:
        text = json.dumps(self.fingerprint(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
