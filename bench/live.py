"""Live preview benchmark: does the preview keep the source's pace while the restorer is slow?

    python bench/live.py [--seconds 6] [--size 320x240] [--fps 25] [--restorer identity sleep:0.5 PATH.pth ...]

A clip of the moving test pattern (tests/media.py) is played in real time through ``run_live`` (no window);
its white square is "detected" as a face by a fake detector, so only the restorer's cost varies. Restorers:
``identity`` (free), ``sleep:S`` (identity after S seconds), or a GFP-GAN ``.pth`` (e.g. the synthetic
checkpoint: ``python ../shared/reference/gfpgan/make_weights.py ../shared/reference/gfpgan/gfpgan_v1clean_keys.json
OUT.pth``). Every figure comes from the same run: shown fps against the source fps (ratio), latency from a
frame's capture to its display (median, p95), the restore latency (median) and how many restorations ran.
The baseline row is ``--model none`` (no faces at all).

    python bench/live.py --tracks 200

measures instead a long session in which 200 faces come and go (at most 3 on screen): the per-track state
held (entries per dict, MiB of crops, masks, blend state and GFP-GAN noise maps) and the process RSS at
checkpoints; both stay flat when state is freed as tracks end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from media import Clip, make_clip  # noqa: E402

from vidrestore.faces.face import Face  # noqa: E402
from vidrestore.live import LiveOptions, run_live  # noqa: E402
from vidrestore.testing import NoiseIdentityRestorer, ScriptedDetector, SleepRestorer, SquareDetector  # noqa: E402


def make_restorer(spec: str):
    if spec == "identity":
        from vidrestore.testing import IdentityRestorer

        return IdentityRestorer("cpu")
    if spec.startswith("sleep:"):
        return SleepRestorer(float(spec.split(":", 1)[1]))
    from vidrestore.restorers import load_restorer

    return load_restorer(spec, device="cpu")


def scripted_faces(tracks: int) -> ScriptedDetector:
    """Track k is a 40-px face at slot k % 6 for 10 frames from frame 4k: <= 3 on screen, ``tracks`` in all."""
    unit = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]])

    def face(k: int) -> Face:
        x0, y0 = 10 + 50 * (k % 6), 40
        return Face(box=[x0, y0, x0 + 40, y0 + 40], landmarks=unit * 40 + [x0, y0], score=0.99)

    return ScriptedDetector(lambda i, _rgb: [face(k) for k in range(tracks) if 4 * k <= i < 4 * k + 10])


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _state_mib(preview) -> float:
    """Bytes held in per-track state (cached crops and masks, blend state, noise)."""
    n = sum(r.crop.nbytes + r.mask.nbytes for r in preview._cache.values())
    n += sum(m.nbytes for _, m in preview._masks.values())
    n += sum(np.asarray(st.prev).nbytes for st in preview._blender._state.values())
    n += sum(t.numel() * t.element_size() for ts in preview._noise._cache.values() for t in ts)
    return n / 2**20


def track_state(tracks: int) -> None:
    """A long session in which ``tracks`` faces come and go: per-track state and RSS at checkpoints."""
    from vidrestore.live import LivePreview
    from vidrestore.media.source import Frame

    class Ones:
        def face_masks(self, crops):
            return np.ones((len(crops), 512, 512), np.float32)

    preview = LivePreview(scripted_faces(tracks), NoiseIdentityRestorer(), Ones(), threaded=False)
    rgb = np.full((240, 320, 3), 100, np.uint8)
    frames = 4 * (tracks - 1) + 10 + 12
    checkpoints = {frames // 10, frames // 2, frames - 13, frames - 1}
    print(f"\nper-track state, {tracks} faces come and go (<= 3 on screen), GFP-GAN noise maps, 512-px crops")
    print(" | ".join(f"{c:>12}" for c in ("frame", "live tracks", "entries max", "state MiB", "RSS MiB")))
    t0 = time.perf_counter()
    for i in range(frames):
        f = Frame(index=i, pts=i, time_base=Fraction(1, 25), duration=1, rgb=rgb)
        f.meta["captured"] = time.perf_counter()
        preview.submit(f)
        preview.render(f)
        if i in checkpoints:
            e = preview.per_track_entries()
            live = e.pop("live_tracks")
            print(" | ".join([f"{i:>12}", f"{live:>12}", f"{max(e.values()):>12}", f"{_state_mib(preview):>12.1f}",
                              f"{_rss_mib():>12.0f}"]))
    print(f"({frames} frames in {time.perf_counter() - t0:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--restorer", nargs="+", default=["identity", "sleep:0.5"])
    ap.add_argument("--tracks", type=int, default=0, metavar="N",
                    help="instead: a long session where N faces come and go; per-track state and RSS")
    args = ap.parse_args()
    if args.tracks:
        track_state(args.tracks)
        return
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
