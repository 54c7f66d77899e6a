"""I/O benchmark: `--model none` against a plain PyAV decode → RGB → libx264 loop, and memory vs length.

    python bench/io.py [--seconds 10] [--size 640x480] [--fps 30]

Prints a table: frames/s of the raw loop and of vidrestore on the same clip in the same run (target ratio
≥ 0.9) — once as `--model none` runs it (untouched frames are re-encoded from the decoded picture, no RGB
round trip) and once with every frame changed in RGB (what frames with faces cost: the accurate,
bias-free colour conversion both ways) — and the peak RSS of vidrestore on a clip and on a 10× longer clip, each in a fresh process
(target ratio ≤ 1.1).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from media import Audio, Clip, make_clip  # noqa: E402


def raw_loop(src: Path, dst: Path, crf: int, preset: str) -> int:
    """What a script would write by hand: decode, to RGB, from RGB, encode; no audio, no metadata."""
    n = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        vout.codec_context.time_base = vin.time_base
        vout.codec_context.options = {"crf": str(crf), "preset": preset}
        for frame in inp.decode(vin):
            rgb = frame.to_ndarray(format="rgb24")
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts, vf.time_base = frame.pts, frame.time_base
            for packet in vout.encode(vf):
                out.mux(packet)
            n += 1
        for packet in vout.encode():
            out.mux(packet)
    return n


def touch_rgb(frames):
    """A stage that changes every frame (as if each had a face): forces the RGB conversion both ways."""
    for frame in frames:
        frame.rgb = frame.rgb
        yield frame


def ours_child(src: str, dst: str, crf: int, preset: str, mode: str = "none") -> None:
    from vidrestore import restore_video

    t = time.perf_counter()
    stage = touch_rgb if mode == "rgb" else None
    stats = restore_video(src, dst, model="none", crf=crf, preset=preset, overwrite=True, stage=stage)
    seconds = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"frames": stats.frames, "seconds": seconds, "rss_mb": rss_mb}))


def run_ours(src: Path, dst: Path, crf: int, preset: str, mode: str = "none") -> dict:
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from bench.io import ours_child; "
            "ours_child(*sys.argv[1:3], int(sys.argv[3]), sys.argv[4], sys.argv[5])")
    out = subprocess.run(
        [sys.executable, "-c", code, str(src), str(dst), str(crf), preset, mode],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frames = int(args.seconds * args.fps)
        short = make_clip(tmp / "short.mp4", Clip(frames=frames, width=w, height=h, fps=args.fps, audio=[Audio()]))
        long = make_clip(tmp / "long.mp4", Clip(frames=frames * 10, width=w, height=h, fps=args.fps, audio=[Audio()]))
        raw_fps, our_fps, rgb_fps = [], [], []
        for _ in range(args.repeat):  # interleaved, best of N for each
            t = time.perf_counter()
            n = raw_loop(short, tmp / "raw.mp4", args.crf, args.preset)
            raw_fps.append(n / (time.perf_counter() - t))
            r = run_ours(short, tmp / "ours.mp4", args.crf, args.preset)
            our_fps.append(r["frames"] / r["seconds"])
            r = run_ours(short, tmp / "ours_rgb.mp4", args.crf, args.preset, "rgb")
            rgb_fps.append(r["frames"] / r["seconds"])
        short_run = run_ours(short, tmp / "ours_short.mp4", args.crf, args.preset)
        long_run = run_ours(long, tmp / "ours_long.mp4", args.crf, args.preset)
    raw, ours, rgb = max(raw_fps), max(our_fps), max(rgb_fps)
    print(f"clip: {w}x{h}, {args.fps} fps, {frames} frames (long: {frames * 10}), libx264 crf {args.crf} {args.preset}")
    print(f"{'measure':<44}{'value':>12}{'target':>10}")
    print(f"{'raw PyAV decode→RGB→encode (fps)':<44}{raw:>12.1f}")
    print(f"{'vidrestore --model none (fps, + audio copy)':<44}{ours:>12.1f}")
    print(f"{'throughput ratio vidrestore / raw':<44}{ours / raw:>12.2f}{'≥ 0.90':>10}")
    print(f"{'every frame through RGB (as with faces) (fps)':<44}{rgb:>12.1f}")
    print(f"{'throughput ratio, every frame through RGB':<44}{rgb / raw:>12.2f}")
    print(f"{'peak RSS, clip (MiB)':<44}{short_run['rss_mb']:>12.1f}")
    print(f"{'peak RSS, 10× longer clip (MiB)':<44}{long_run['rss_mb']:>12.1f}")
    print(f"{'RSS ratio long / short':<44}{long_run['rss_mb'] / short_run['rss_mb']:>12.2f}{'≤ 1.10':>10}")


if __name__ == "__main__":
    main()
