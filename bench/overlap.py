#!/usr/bin/env python3
"""Does a second network hide behind the restorer on this machine? The restorer (GFP-GAN, one face per call) runs
in one thread while RetinaFace-R50 (a whole 640x480 frame per call) or ParseNet (one crop at the pipeline's parse
size) loops in another; prints how long both took together against the same calls one after the other.

    python bench/overlap.py --weights-dir /tmp/vr-weights       # synthetic weights, built there if missing

A ratio (together / one after the other) near 1.0 means the cores are already full: running detection or parsing
in its own thread saves nothing, only less work does (issue 17's wall / restorer on a 2-core CPU). Well below 1.0:
there is room beside the restorer, and the face stage's detection thread (faces/prefetch.py) pays off.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.pipeline import ensure_weights  # noqa: E402
from vidrestore.faces.detect import load_detector  # noqa: E402
from vidrestore.faces.parse import load_parser  # noqa: E402
from vidrestore.options import RestoreOptions  # noqa: E402
from vidrestore.restorers import load_restorer  # noqa: E402


def per_call(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def beside(restore: Callable[[], object], other: Callable[[], object], n: int) -> tuple[float, int, float]:
    """``n`` restorations while ``other`` loops in a second thread: (seconds per restoration, calls of ``other``
    done meanwhile, total seconds)."""
    stop = threading.Event()
    done = [0]

    def loop() -> None:
        while not stop.is_set():
            other()
            done[0] += 1

    worker = threading.Thread(target=loop, daemon=True)
    t0 = time.perf_counter()
    worker.start()
    each = per_call(restore, n)
    stop.set()
    worker.join(120)
    return each, done[0], time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights-dir", type=Path, required=True, help="synthetic weights (built here if missing)")
    ap.add_argument("--backend", default="auto", choices=("auto", "torch", "openvino"))
    ap.add_argument("--calls", type=int, default=5, help="restorations per measurement (default 5)")
    args = ap.parse_args(argv)
    paths = ensure_weights(args.weights_dir)
    restorer = load_restorer(paths["gfpgan"], device="cpu", backend=args.backend)
    detector = load_detector(paths["r50"], device="cpu", batch_size=1, backend=args.backend)
    parser = load_parser(paths["parsenet"], device="cpu", backend=args.backend, parse_size=RestoreOptions().parse_size)
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (1, 512, 512, 3), dtype=np.uint8)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    crop = torch.rand(1, 3, 512, 512)
    others = {"RetinaFace-R50, 640x480": lambda: detector.detect([frame]), "ParseNet": lambda: parser.face_masks(crop)}

    def restore() -> object:
        return restorer.restore(face)

    for fn in (restore, *others.values()):  # warm-up
        fn()
    alone = per_call(restore, args.calls)
    print(f"cpu threads {torch.get_num_threads()}; restorer alone {alone:.3f} s/face ({args.calls} calls)")
    print(f"{'beside the restorer':24} {'alone s/call':>12} {'restorer s/face':>15} {'calls done':>10} "
          f"{'together s':>10} {'one after the other s':>21} {'ratio':>6}")
    for name, fn in others.items():
        other_alone = per_call(fn, args.calls)
        each, done, total = beside(restore, fn, args.calls)
        serial = args.calls * alone + done * other_alone
        print(f"{name:24} {other_alone:12.3f} {each:15.3f} {done:10d} {total:10.1f} {serial:21.1f} "
              f"{total / serial:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
