"""``vidrestore PHOTO``: the default command when its input is a still image (the photo door)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .options import Parser, add_face_arguments, add_upscale_arguments, restore_options

# Still-image extensions: those restored, and those refused with one clear line (never handed to the video door)
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".heic", ".heif"}
OTHER_IMAGE_SUFFIXES = {".gif", ".psd", ".svg", ".ico", ".jp2", ".jxl", ".avif", ".dng", ".cr2", ".nef", ".arw"}


def wants(argv: Sequence[str]) -> bool:
    """Whether the default command's input (its first non-option argument) is a still image."""
    for arg in argv:
        if not arg.startswith("-"):
            return Path(arg).suffix.lower() in PHOTO_SUFFIXES | OTHER_IMAGE_SUFFIXES
    return False


def build_parser(prog: str = "vidrestore") -> argparse.ArgumentParser:
    p = Parser(prog=prog, description="Restore the faces of an old photo or scan; EXIF, ICC, DPI, bit depth, "
               "tone and transparency are kept.")
    p.add_argument("input", type=Path, help="the photo (JPEG, PNG, TIFF, WebP, BMP, HEIC; never modified)")
    p.add_argument("-o", "--output", type=Path, help="output image (default: <stem>_restored.<ext> beside the input)")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    p.add_argument("--quality", type=int, metavar="Q",
                   help="JPEG/WebP quality 1-100 (default: a JPEG keeps its own quality; 95 otherwise)")
    p.add_argument("--aligned", action="store_true",
                   help="the input is an already aligned 512x512 face: restore it directly (GFPGAN's --aligned)")
    p.add_argument("--save-faces", type=Path, metavar="DIR", help="also write each aligned and restored face to DIR")
    p.add_argument("--compare", type=Path, metavar="FILE", help="also write a before|after image to FILE")
    p.add_argument("--detect-max-side", type=int, default=2048, metavar="PX",
                   help="search for faces on a copy at most PX large (large scans; faces are still aligned from "
                        "the full picture; default 2048)")
    p.add_argument("--pages", choices=("first", "all"), default="first",
                   help="a multi-page TIFF: restore the first page only (default; a notice says how many were "
                        "left) or all of them, written as a multi-page TIFF keeping each page's metadata")
    p.add_argument("--keep-colour", action="store_true",
                   help="let restored faces be coloured in a greyscale/sepia photo (default: keep its tone)")
    add_face_arguments(p)
    add_upscale_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no summary")
    return p


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from ..photo import restore_image

    stats = restore_image(
        args.input, args.output, options=restore_options(args), notice=_stderr, quality=args.quality,
        aligned=args.aligned, save_faces=str(args.save_faces) if args.save_faces else None,
        detect_max_side=args.detect_max_side, keep_tone=not args.keep_colour, pages=args.pages,
    )
    if not args.quiet:
        print(f"restored {stats.faces} face(s) in {stats.seconds:.1f} s -> {stats.output}")
    return 0
