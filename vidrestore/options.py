"""Option dataclasses shared by the front doors (file, photo, still, batch, live, app) and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    batch_size: int = 8
    weights_dir: str | None = None
    detector: str = "retinaface_resnet50"
    detect_every: int = 1
    only_center_face: bool = False
    min_face: float = 0.0
    parse: bool = True
    parse_size: int = 256
    parse_every: int = 5
    temporal: bool = True
    temporal_strength: float = 0.5
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
