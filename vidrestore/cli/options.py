"""The parser class and the option groups every command shares (restore, batch, still, live): argparse in,
option dataclasses (``vidrestore.options``) out."""

from __future__ import annotations

import argparse
import re
from typing import Any

from ..errors import UsageError
from ..media.filters import DEINTERLACE_MODES, DENOISE_MODES, PROFILES, FilterOptions
from ..media.sink import CODECS
from ..options import MODELS, RestoreOptions, check_time_range

DEFAULTS = RestoreOptions()


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit 2), not a usage dump. Every command's parser."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_encode_arguments(p: argparse.ArgumentParser) -> None:
    enc = p.add_argument_group("encoding")
    enc.add_argument("--codec", choices=sorted(CODECS), default=DEFAULTS.codec,
                     help="video codec (default h264; h264_nvenc: NVIDIA's GPU encoder, where the GPU and driver are)")
    enc.add_argument("--crf", type=int, help="quality for h264/h265, 0-51, lower is better (default 18 / 20)")
    enc.add_argument("--preset", default=DEFAULTS.preset, help="x264/x265 speed preset (default medium)")
    enc.add_argument("--pix-fmt", metavar="FMT",
                     help="the encoder's pixel format, e.g. yuv420p, yuv422p10le (default: the source's where the "
                     "codec can hold it)")


def add_clean_arguments(p: argparse.ArgumentParser) -> None:
    clean = p.add_argument_group("clean-up before the faces")
    clean.add_argument("--profile", choices=PROFILES, default="none",
                       help="vhs: --deinterlace auto --denoise light (each can still be given)")
    clean.add_argument("--deinterlace", choices=DEINTERLACE_MODES,
                       help="bwdif; frame: one frame per frame, field: one per field (double rate); "
                       "auto: only if the video is interlaced (default off, auto with --profile vhs); "
                       "the output is then flagged progressive")
    clean.add_argument("--denoise", choices=DENOISE_MODES, help="light: atadenoise (default off, light with vhs)")
    clean.add_argument("--crop-bottom", type=int, metavar="N",
                       help="cut N rows of head-switching noise off the bottom; the output keeps the cropped, "
                       "even height")


def add_range_arguments(p: argparse.ArgumentParser) -> None:
    part = p.add_argument_group("a part of the video (try a piece first)")
    part.add_argument("--start", metavar="T", help="begin at T: seconds (83.5) or [hh:]mm:ss(.s) (default: 0)")
    end = part.add_mutually_exclusive_group()
    end.add_argument("--end", metavar="T", help="stop before T (same forms; default: the end)")
    end.add_argument("--duration", metavar="D", help="restore D (same forms) from --start")


def parse_time(text: str, flag: str = "--at") -> float:
    """``83.5``, ``1:23.5`` or ``00:01:23.5`` → seconds; a one-line ``UsageError`` otherwise."""
    if not re.fullmatch(r"\d+(\.\d*)?|(\d+:){1,2}\d+(\.\d*)?", text.strip()):
        raise UsageError(f"{flag} {text!r} is not a time; write seconds (83.5) or [hh:]mm:ss(.s)")
    seconds = 0.0
    for part in text.strip().split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def time_range(args: argparse.Namespace) -> tuple[float | None, float | None]:
    """(start, end) seconds from --start/--end/--duration, checked (start < end)."""
    text = {k: getattr(args, k, None) for k in ("start", "end", "duration")}
    start = parse_time(text["start"], "--start") if text["start"] else None
    end = parse_time(text["end"], "--end") if text["end"] else None
    if text["duration"]:
        duration = parse_time(text["duration"], "--duration")
        if duration <= 0:
            raise UsageError(f"--duration must be more than 0, got {text['duration']!r}")
        end = (start or 0.0) + duration
    return check_time_range(start, end)


def filter_options(args: argparse.Namespace) -> FilterOptions:
    """The clean-up filters from --profile/--deinterlace/--denoise/--crop-bottom (all off if absent)."""
    return FilterOptions.profile(
        getattr(args, "profile", None) or "none",
        deinterlace=getattr(args, "deinterlace", None),
        denoise=getattr(args, "denoise", None),
        crop_bottom=getattr(args, "crop_bottom", None),
    )


def add_backend_argument(group: Any) -> None:
    """``--backend {auto,torch,openvino}`` (shared by every command that loads face models)."""
    group.add_argument("--backend", choices=("auto", "torch", "openvino"), default=DEFAULTS.backend,
                       help="what runs the networks: openvino (CPU or Intel gpu; the openvino extra), torch, or auto "
                       "(default: OpenVINO on the CPU when installed, else torch)")


def add_face_arguments(p: argparse.ArgumentParser) -> None:
    faces = p.add_argument_group("faces")
    faces.add_argument("--model", default=DEFAULTS.model, metavar="NAME",
                       help=f"face restorer: {', '.join(MODELS)}, or a .pth checkpoint (default "
                       f"{DEFAULTS.model}); none: no face restoration (I/O only)")
    faces.add_argument("--fidelity", type=float, default=DEFAULTS.fidelity, metavar="W",
                       help="CodeFormer's fidelity weight 0-1: lower is more restored, higher more faithful "
                       f"(default {DEFAULTS.fidelity})")
    faces.add_argument("--device", help="cpu, cuda, cuda:N, mps, or gpu (an Intel GPU, through OpenVINO) "
                       "(default: cuda if available)")
    faces.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default=DEFAULTS.precision,
                       help="model precision: fp32 (default, exact); fp16/bf16 on CUDA; bf16 on CPUs with native "
                       "bf16 (AVX512-BF16/AMX; ~3x faster with OpenVINO)")
    add_backend_argument(faces)
    faces.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                       help=f"faces per restorer batch (default {DEFAULTS.batch_size})")
    faces.add_argument("--detector", default=DEFAULTS.detector, metavar="NAME|PATH",
                       help="face detector: retinaface_resnet50, retinaface_mobile0.25, or a RetinaFace .pth "
                            f"checkpoint (default {DEFAULTS.detector})")
    faces.add_argument("--detect-every", type=int, default=DEFAULTS.detect_every, metavar="K",
                       help="run detection every K frames; the tracker predicts between (default 1)")
    faces.add_argument("--scan-every", type=int, default=None, metavar="N",
                       help="search whole frames for faces every N frames; in between, detect only around the faces "
                            "already found (default 4 on the CPU, 1 elsewhere; 1 = every frame in full)")
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
    faces.add_argument("--temporal-strength", type=float, default=None, metavar="S",
                       help="weight of the previous output for a still face, 0-0.95 (default 0.5; 0.95 for CodeFormer, "
                            "whose output flickers more)")
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
    start, end = time_range(args)
    filters = filter_options(args)
    values = dict(
        model=get("model", DEFAULTS.model),
        fidelity=get("fidelity", DEFAULTS.fidelity),
        codec=get("codec", DEFAULTS.codec),
        crf=get("crf", None),
        preset=get("preset", DEFAULTS.preset),
        overwrite=get("overwrite", False),
        device=get("device", None),
        precision=get("precision", DEFAULTS.precision),
        backend=get("backend", DEFAULTS.backend),
        batch_size=get("batch_size", DEFAULTS.batch_size),
        weights_dir=get("weights_dir", None),
        detector=get("detector", DEFAULTS.detector),
        detect_every=get("detect_every", DEFAULTS.detect_every),
        scan_every=get("scan_every", None),
        only_center_face=get("only_center_face", False),
        min_face=get("min_face", DEFAULTS.min_face),
        parse=not get("no_parse", False),
        parse_size=get("parse_size", DEFAULTS.parse_size),
        parse_every=get("parse_every", DEFAULTS.parse_every),
        temporal=get("temporal", "on") == "on",
        temporal_strength=get("temporal_strength", None),
        strength=get("strength", DEFAULTS.strength),
        report=str(report) if report else None,
        upscale=get("upscale", 1),
        bg_upsampler=get("bg_upsampler", DEFAULTS.bg_upsampler),
        tile=get("tile", None),
        tile_pad=get("tile_pad", DEFAULTS.tile_pad),
        compare=str(compare) if compare else None,
        deinterlace=filters.deinterlace,
        denoise=filters.denoise,
        crop_bottom=filters.crop_bottom,
        start=start,
        end=end,
        pix_fmt=get("pix_fmt", None),
    )
    values.update(fixed)
    return RestoreOptions(**values)

