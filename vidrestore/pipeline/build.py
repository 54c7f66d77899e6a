"""Models and the face stage from options: the ONE place every door (file, photo, still, batch, live) gets them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import UsageError
from ..media.probe import MediaInfo
from ..media.source import Frame
from ..options import MODELS, RestoreOptions
from .stream import FaceStage, RestoreStats


def identity_stage(frames: Iterable[Frame]) -> Iterator[Frame]:
    yield from frames


def upscale_stage(upscaler: Any) -> FaceStage:
    """Whole-frame upscaling alone (``--model none --upscale N``)."""

    def stage(frames: Iterable[Frame]) -> Iterator[Frame]:
        for frame in frames:
            frame.rgb = upscaler.upscale(frame.rgb)
            yield frame

    return stage


@dataclass
class Models:
    """The models a run uses (None where it uses none) and the device they run on."""

    detector: Any = None
    restorer: Any = None
    parser: Any = None
    upscaler: Any = None
    device: Any = None


def build_models(options: RestoreOptions) -> Models:
    """The models the options ask for: every weight file found (or downloaded) first, then each model loaded.

    ``options.extra`` may hold ready objects, used as they are: ``detector=`` (anything with ``detect(frames)``),
    ``restorer=`` (anything with ``restore(faces)``), ``parser=`` (anything with ``face_masks(crops)``),
    ``upscaler=``. ``model="none"`` and no ``restorer=``: no face models (``restorer`` is None).
    """
    extra = options.extra
    restorer = extra.get("restorer")
    upscaler = extra.get("upscaler")
    faces = restorer is not None or options.model != "none"
    is_file = Path(options.model).suffix.lower() in (".pth", ".pt")
    if restorer is None and faces and options.model not in MODELS and not is_file:
        raise UsageError(
            f"unknown --model {options.model!r}; choose one of {', '.join(MODELS)} or give a .pth file"
        )
    if not faces and (upscaler is not None or options.upscale == 1):
        return Models(upscaler=upscaler, device=options.device)  # nothing to load (and torch is never imported)
    from ..restorers import resolve_run_weights

    # every weight file the run needs, found (or downloaded) before any model is built; all missing ones named at once
    resolve_run_weights(
        options.weights_dir,
        model=options.model if restorer is None and faces else None,
        detector=options.detector if faces and extra.get("detector") is None else None,
        parse=faces and extra.get("parser") is None and options.parse and options.strength > 0,
        upscale=options.upscale if upscaler is None else 1,
        bg_upsampler=options.bg_upsampler,
    )
    if upscaler is None and options.upscale > 1:
        from ..upscale import load_upscaler

        upscaler = load_upscaler(
            options.upscale, method=options.bg_upsampler, device=options.device, weights_dir=options.weights_dir,
            tile=options.tile, tile_pad=options.tile_pad, precision=options.precision, backend=options.backend,
        )
    if not faces:
        return Models(upscaler=upscaler, device=options.device)
    if restorer is None:
        from ..restorers import load_restorer

        restorer = load_restorer(
            options.model, device=options.device, precision=options.precision,
            batch_size=options.batch_size, weights_dir=options.weights_dir, fidelity=options.fidelity,
            backend=options.backend,
        )
    device = getattr(restorer, "device", None) or options.device or "cpu"
    detector = extra.get("detector")
    if detector is None:
        from ..faces.detect import load_detector

        # on the CPU one frame per forward pass is faster (measured: 0.45 s vs 0.72 s per frame in batches of 6)
        detect_batch = 1 if str(device).startswith("cpu") else 8
        from ..device import is_openvino_gpu

        # an Intel gpu (OpenVINO) leaves the restorer's tensors on the CPU: the detector is told the gpu itself
        det_device = options.device if is_openvino_gpu(options.device) else device
        detector = load_detector(options.detector, device=det_device, weights_dir=options.weights_dir,
                                 batch_size=detect_batch, backend=options.backend, precision=options.precision)
    parser = extra.get("parser")
    if parser is None and options.parse and options.strength > 0:
        from ..device import is_openvino_gpu
        from ..faces.parse import load_parser

        parse_device = options.device if is_openvino_gpu(options.device) else device  # as the detector's
        parser = load_parser("parsenet", device=parse_device, weights_dir=options.weights_dir,
                             parse_size=options.parse_size, backend=options.backend, precision=options.precision)
    return Models(detector, restorer, parser, upscaler, device)


def build_stage(
    options: RestoreOptions, stats: RestoreStats, notice: Callable[[str], None], info: MediaInfo | None = None
) -> FaceStage:
    """The face stage the options ask for (``model="none"`` and no ``restorer=``: frames pass through); the
    models come from :func:`build_models` (``options.extra`` may hold ready ones)."""
    models = build_models(options)
    if models.restorer is None:
        return identity_stage if models.upscaler is None else upscale_stage(models.upscaler)
    from ..faces.stage import FaceOptions, FaceStage as _FaceStage

    extra = options.extra
    face_options = FaceOptions(
        detect_every=options.detect_every,
        scan_every=options.scan_every,
        batch_size=options.batch_size,
        min_face=options.min_face,
        only_center_face=options.only_center_face,
        parse=options.parse,
        parse_every=options.parse_every,
        temporal=options.temporal,
        temporal_strength=options.temporal_strength,
        strength=options.strength,
        sar=float(info.video.sar) if info is not None else 1.0,
        **extra.get("face_options", {}),
    )
    stage = _FaceStage(models.detector, models.restorer, face_options, parser=models.parser, device=models.device,
                       upscaler=models.upscaler)
    stats.stage = stage
    return stage
