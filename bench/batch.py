"""Batch benchmark: `vidrestore batch` against sequential `restore_video` calls, and the cost of segments.

    python bench/batch.py [--files 8] [--seconds 2] [--long 20] [--size 320x240] [--workers 2]

Prints two tables, every figure measured in this run with `--model none` (I/O only, the worst case for
overheads) and the same encoder settings:

1. throughput on N small clips (files/min, frames/s): a Python loop of `restore_video` (baseline), then
   `restore_folder` with the local engine at 1 and at `--workers` worker processes;
2. resume overhead on one longer clip: `restore_video` (one pass, no segments) against `restore_folder` with
   `--segment-seconds 0` (one segment) and with 2 s segments.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from media import Audio, Clip, make_clip  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each small clip")
    ap.add_argument("--long", type=float, default=20.0, help="length of the clip for the resume overhead")
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--preset", default="veryfast")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))

    from vidrestore.batch import restore_folder
    from vidrestore.options import RestoreOptions
    from vidrestore.file import restore_video

    options = RestoreOptions(model="none", preset=args.preset, overwrite=True)
    root = Path(tempfile.mkdtemp(prefix="vidrestore-bench-"))
    try:
        src = root / "in"
        (src / "sub").mkdir(parents=True)
        clip = Clip(frames=round(args.seconds * args.fps), fps=args.fps, width=w, height=h, audio=[Audio()])
        files = [make_clip(src / ("sub" if i % 2 else "") / f"clip{i:02d}.mp4", clip) for i in range(args.files)]
        frames = clip.frames * len(files)

        rows = []
        t = time.perf_counter()
        (root / "seq").mkdir()
        for f in files:
            restore_video(f, root / "seq" / f.name, options)
        base = time.perf_counter() - t
        rows.append(("restore_video loop (baseline)", base))
        for workers in sorted({1, args.workers}):
            out = root / f"batch{workers}"
            t = time.perf_counter()
            r = restore_folder(src, out, options=None, model="none", preset=args.preset, workers=workers,
                               segment_seconds=60)
            rows.append((f"batch, local engine, {workers} worker(s)", time.perf_counter() - t))
            assert r.exit_code == 0 and r.frames == frames, r

        print(f"\nthroughput: {len(files)} clips of {args.seconds:g} s, {w}x{h} @ {args.fps} fps, "
              f"{frames} frames, preset {args.preset}, --model none")
        print(f"{'run':40} {'seconds':>8} {'files/min':>10} {'frames/s':>9} {'vs loop':>8}")
        for name, s in rows:
            print(f"{name:40} {s:8.2f} {len(files) / s * 60:10.1f} {frames / s:9.1f} {base / s:8.2f}x")

        long_clip = Clip(frames=round(args.long * args.fps), fps=args.fps, width=w, height=h, audio=[Audio()])
        one = root / "long"
        one.mkdir()
        make_clip(one / "long.mp4", long_clip)
        rows = []
        t = time.perf_counter()
        restore_video(one / "long.mp4", root / "long_single.mp4", options)
        base = time.perf_counter() - t
        rows.append(("restore_video, one pass", base, 1))
        for seconds in (0, 2):
            out = root / f"long_seg{seconds}"
            t = time.perf_counter()
            r = restore_folder(one, out, model="none", preset=args.preset, workers=1, segment_seconds=seconds)
            assert r.exit_code == 0 and r.frames == long_clip.frames
            label = "batch, one segment" if seconds == 0 else f"batch, {seconds} s segments"
            rows.append((label, time.perf_counter() - t, r.files[0].segments))
        print(f"\nresume overhead: one clip of {args.long:g} s ({long_clip.frames} frames), 1 worker")
        print(f"{'run':40} {'segments':>8} {'seconds':>8} {'frames/s':>9} {'overhead':>9}")
        for name, s, n in rows:
            print(f"{name:40} {n:8d} {s:8.2f} {long_clip.frames / s:9.1f} {100 * (s / base - 1):8.1f}%")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
