"""What ``vidrestore live`` can be told (the command line builds one :class:`LiveOptions` from its arguments)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from ..options import RestoreOptions

__all__ = ["LiveOptions"]


@dataclass(frozen=True)
class LiveOptions:
    """Everything ``vidrestore live`` can be told (the CLI builds one from its arguments)."""

    source: str = "0"
    format: str | None = None
    source_options: tuple[str, ...] = ()
    loop: bool = False
    model: str = "gfpgan-1.4"
    device: str | None = None
    precision: str = "fp32"
    backend: str = "auto"
    detector: str = "retinaface_mobile0.25"
    parse: bool = True
    temporal: bool = True
    min_face: float = 0.0
    serve: str | None = None
    record: str | None = None
    overwrite: bool = False
    window: bool = True
    save_dir: str = "."
    weights_dir: str | None = None
    duration: float | None = None
    split: bool = False
    hud: bool = True

    def __post_init__(self) -> None:
        if self.duration is not None and self.duration <= 0:
            raise UsageError(f"--duration must be positive, got {self.duration}")

    def restore_options(self) -> RestoreOptions:
        """The model choices as the loader every door shares takes them (:func:`vidrestore.pipeline.build.build_models`):
        restorer batches of 4 (a few faces at a time) and ParseNet at its full 512 px."""
        return RestoreOptions(model=self.model, device=self.device, precision=self.precision, backend=self.backend,
                              detector=self.detector, parse=self.parse, batch_size=4, parse_size=512,
                              weights_dir=self.weights_dir)
