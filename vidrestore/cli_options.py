"""The option groups every front door shares (file, batch, still, live): argparse in, RestoreOptions out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .media.sink import CODECS
from .pipeline import MODELS, RestoreOptions

DEFAULTS = RestoreOptions()


def add_encode_arguments(p: argparse.ArgumentParser) -> None:
    enc = p.add_argument_group("encoding")
    enc.add_argument("--codec", choices=sorted(CODECS), default=DEFAULTS.codec, help="video codec (default h264)")
    enc.add_argument("--crf", type=int, help="quality for h264/h265, 0-51, lower is better (default 18 / 20)")
    enc.add_argument("--preset", default=DEFAULTS.preset, help="x264/x265 speed preset (default medium)")


def add_face_arguments(p: argparse.ArgumentParser) -> None:
    faces = p.add_argument_group("faces")
    faces.add_argument("--model", default=DEFAULTS.model, metavar="NAME",
                       help=f"face restorer: {', '.join(MODELS)}, or a .pth checkpoint (default "
                       f"{DEFAULTS.model}); none: no face restoration (I/O only)")
    faces.add_argument("--fidelity", type=float, default=DEFAULTS.fidelity, metavar="W",
                       help="CodeFormer's fidelity weight 0-1: lower is more restored, higher more faithful "
                       f"(default {DEFAULTS.fidelity})")
    faces.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    faces.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default=DEFAULTS.precision,
                       help="model precision on CUDA (default fp32)")
    faces.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                       help=f"faces per restorer batch (default {DEFAULTS.batch_size})")
    faces.add_argument("--detector", choices=("retinaface_resnet50", "retinaface_mobile0.25"),
                       default=DEFAULTS.detector, help=f"face detector (default {DEFAULTS.detector})")
    faces.add_argument("--detect-every", type=int, default=DEFAULTS.detect_every, metavar="K",
                       help="run detection every K frames; the tracker predicts between (default 1)")
    faces.add_argument("--only-center-face", action="store_true", help="restore only the face nearest the centre")
    faces.add_argument("--min-face", type=float, default=DEFAULTS.min_face, metavar="PIXELS",
                       help="ignore faces smaller than this (box side, pixels)")
    faces.add_argument("--no-parse", action="store_true",
                       help="paste with a feathered box instead of the ParseNet face mask (faster)")
    faces.add_argument("--parse-size", type=int, choices=(256, 512), default=DEFAULTS.parse_size,
                       help="ParseNet input size: 256 is ~4x cheaper (the mask is blurred by 101 px anyway); "
                       f"512 is facexlib's (default {DEFAULTS.parse_size})")
    faces.add_argument("--parse-every", type=int, default=DEFAULTS.parse_every, metavar="K",
                       help=f"recompute each face's mask every K frames of its track (default {DEFAULTS.parse_every})")
    faces.add_argument("--temporal", choices=("on", "off"), default="on",
                       help="blend each face with its previous output when it is still (default on)")
    faces.add_argument("--temporal-strength", type=float, default=DEFAULTS.temporal_strength, metavar="S",
                       help=f"weight of the previous output for a still face, 0-0.95 (default {DEFAULTS.temporal_strength})")
    faces.add_argument("--strength", type=float, default=DEFAULTS.strength, metavar="S",
                       help="restoration strength 0-1: 1 = the model's face, 0 = the face untouched (default 1)")
    faces.add_argument("--weights-dir", help="folder holding the model files (also: VIDRESTORE_WEIGHTS)")


def add_upscale_arguments(p: argparse.ArgumentParser) -> None:
    up = p.add_argument_group("upscaling")
    up.add_argument("--upscale", type=int, choices=(1, 2, 4), default=1,
                    help="output size factor (default 1 keeps the input size)")
    up.add_argument("--bg-upsampler", choices=("realesrgan", "lanczos"), default=DEFAULTS.bg_upsampler,
                    help="how the whole frame is upscaled: Real-ESRGAN (default) or Lanczos (no weights)")
    up.add_argument("--tile", type=int, metavar="N",
                    help="Real-ESRGAN tile size in pixels (default: from free device memory; 0 = no tiles)")
    up.add_argument("--tile-pad", type=int, default=DEFAULTS.tile_pad, metavar="N",
                    help="context pixels around each tile (default 10)")


def restore_options(args: argparse.Namespace, **fixed: Any) -> RestoreOptions:
    """A RestoreOptions from whichever of the shared groups the parser had, plus ``fixed`` fields."""

    def get(name: str, default: Any) -> Any:
        return getattr(args, name, default)

    if get("batch_size", 1) < 1:
        raise SystemExit("vidrestore: error: --batch-size must be at least 1 (see --help)")
    report = get("report", None)
    compare = get("compare", None)
    values = dict(
        model=get("model", DEFAULTS.model),
        fidelity=get("fidelity", DEFAULTS.fidelity),
        codec=get("codec", DEFAULTS.codec),
        crf=get("crf", None),
        preset=get("preset", DEFAULTS.preset),
        overwrite=get("overwrite", False),
        device=get("device", None),
        precision=get("precision", DEFAULTS.precision),
        batch_size=get("batch_size", DEFAULTS.batch_size),
        weights_dir=get("weights_dir", None),
        detector=get("detector", DEFAULTS.detector),
        detect_every=get("detect_every", DEFAULTS.detect_every),
        only_center_face=get("only_center_face", False),
        min_face=get("min_face", DEFAULTS.min_face),
        parse=not get("no_parse", False),
        parse_size=get("parse_size", DEFAULTS.parse_size),
        parse_every=get("parse_every", DEFAULTS.parse_every),
        temporal=get("temporal", "on") == "on",
        temporal_strength=get("temporal_strength", DEFAULTS.temporal_strength),
        strength=get("strength", DEFAULTS.strength),
        report=str(report) if report else None,
        upscale=get("upscale", 1),
        bg_upsampler=get("bg_upsampler", DEFAULTS.bg_upsampler),
        tile=get("tile", None),
        tile_pad=get("tile_pad", DEFAULTS.tile_pad),
        compare=str(compare) if compare else None,
    )
    values.update(fixed)
    return RestoreOptions(**values)


def path_arg(text: str) -> Path:
    return Path(text)
