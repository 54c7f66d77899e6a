"""``vidrestore still VIDEO --at TIME -o cmp.png``: the still door's command."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..still import still_image
from .options import Parser, add_face_arguments, add_range_arguments, add_upscale_arguments, parse_time, restore_options


def build_parser(prog: str = "vidrestore still") -> argparse.ArgumentParser:
    p = Parser(
        prog=prog, description="Write a before/after image of one frame, restored as the video would be."
    )
    p.add_argument("input", type=Path, help="the video (never modified)")
    p.add_argument("--at", required=True, help="the time of the frame: seconds or [hh:]mm:ss(.s)")
    p.add_argument("-o", "--output", type=Path, required=True, help="the image to write (.png or .jpg)")
    p.add_argument("--overwrite", action="store_true", help="replace the image if it exists")
    add_range_arguments(p)
    add_face_arguments(p)
    add_upscale_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    path = still_image(args.input, parse_time(args.at), args.output, restore_options(args))
    print(f"wrote {path}")
    return 0
