"""Live preview benchmark: does the preview keep the source's pace while the restorer is slow?

    python bench/live.py [--seconds 6] [--size 320x240] [--fps 25] [--restorer identity sleep:0.5 PATH.pth ...]

A clip of the moving test pattern (tests/media.py) is played in real time through ``run_live`` (no window);
its white square is "detected" as a face by a fake detector, so only the restorer's cost varies. Restorers:
``identity`` (free), ``sleep:S`` (identity after S seconds), or a GFP-GAN ``.pth`` (e.g. the synthetic
checkpoint: ``python ../shared/reference/gfpgan/make_weights.py ../shared/reference/gfpgan/gfpgan_v1clean_keys.json
OUT.pth``). Every figure comes from the same run: shown fps against the source fps (ratio), latency from a
frame's capture to its display (median, p95), the restore latency (median) and how many restorations ran.
The baseline row is ``--model none`` (no faces at all).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from media import Clip, make_clip  # noqa: E402

from vidrestore.faces.face import Face  # noqa: E402
from vidrestore.live import LiveOptions, run_live  # noqa: E402


class SquareDetector:
    def detect(self, frames):
        out = []
        for rgb in frames:
            ys, xs = np.nonzero((rgb > 240).all(axis=-1))
            if len(xs) < 9:
                out.append([])
                continue
            x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            s = max(x1 - x0, y1 - y0)
            lm = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]]) * s + [x0, y0]
            out.append([Face(box=[x0, y0, x1, y1], landmarks=lm, score=0.99)])
        return out


class SleepRestorer:
    device = "cpu"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def restore(self, faces):
        time.sleep(self.seconds)
        return faces.copy()


def make_restorer(spec: str):
    if spec == "identity":
        from vidrestore.restore import IdentityRestorer

        return IdentityRestorer("cpu")
    if spec.startswith("sleep:"):
        return SleepRestorer(float(spec.split(":", 1)[1]))
    from vidrestore.restore import load_restorer

    return load_restorer(spec, device="cpu")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--restorer", nargs="+", default=["identity", "sleep:0.5"])
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", Clip(frames=int(args.seconds * args.fps), width=w, height=h,
                                                      fps=args.fps))
        for spec in ["none", *args.restorer]:
            restorer = None if spec == "none" else make_restorer(spec)
            kwargs = {} if restorer is None else {"detector": SquareDetector(), "restorer": restorer}
            stats = run_live(LiveOptions(source=str(clip), window=False, model="none", parse=False),
                             notice=lambda m: None, **kwargs)
            lat = np.array(stats.latency_ms) if stats.latency_ms else np.zeros(1)
            rest = np.median(stats.restore_ms) if stats.restore_ms else float("nan")
            rows.append((Path(spec).name, args.fps, stats.shown_fps, stats.shown_fps / args.fps,
                         stats.frames_shown, stats.frames_captured, float(np.median(lat)),
                         float(np.percentile(lat, 95)), rest, stats.restorations))
    head = ("restorer", "src fps", "shown fps", "ratio", "shown", "captured", "lat med ms", "lat p95 ms",
            "restore ms", "restorations")
    print(f"live preview, {w}x{h} @ {args.fps} fps, {args.seconds:.0f} s clip played in real time, one face")
    print(" | ".join(f"{c:>12}" for c in head))
    for r in rows:
        print(" | ".join([f"{r[0]:>12}", f"{r[1]:>12}", f"{r[2]:>12.2f}", f"{r[3]:>12.3f}", f"{r[4]:>12}",
                          f"{r[5]:>12}", f"{r[6]:>12.2f}", f"{r[7]:>12.2f}", f"{r[8]:>12.0f}", f"{r[9]:>12}"]))


if __name__ == "__main__":
    main()
