"""Throughput of the CodeFormer and RestoreFormer restorers: faces per second at batch 1 and 8, with the ratio to
batch 1 of the same model measured in the same run (and, with ``--gfpgan``, to GFP-GAN batch 1).

    python bench/restorers_extra.py                          # CPU, fp32, batches 1 and 8, synthetic weights
    python bench/restorers_extra.py --models codeformer --batches 1,2 --repeats 3
    python bench/restorers_extra.py --device cuda --precision bf16 --batches 1,8,32

Synthetic checkpoints are built in a temporary folder from the reference key manifests (throughput does not
depend on the weight values). Each row times the numpy entry point ``restore()`` (uint8 in and out, conversions
included) on ``batch`` faces per call: the median of ``--repeats`` calls after one warm-up call at batch 1.
"CPU s/face" is process CPU time (all threads): on a shared machine it moves less than wall time, and divided
by the thread count it estimates the wall time an idle machine would show.
GFLOP/s uses the reference counts per face: CodeFormer 809.8 (w > 0) / 591.7 (w = 0), RestoreFormer 682.8,
GFP-GAN 395.5.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vidrestore.device import resolve_device  # noqa: E402
from vidrestore.restorers import (  # noqa: E402
    CodeFormerRestorer,
    RestoreFormerRestorer,
    build_codeformer,
    build_restoreformer,
)

REFERENCE = REPO.parent / "shared" / "reference"
GFLOP = {"codeformer w=0.5": 809.8, "codeformer w=0": 591.7, "restoreformer": 682.8, "gfpgan-1.4": 395.54}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _make(folder: Path, script: Path, manifest: Path, name: str, *extra: str) -> Path:
    out = folder / name
    if not script.is_file():
        sys.exit(f"reference folder missing: {script}")
    subprocess.run([sys.executable, str(script), str(manifest), str(out), *extra], check=True, capture_output=True)
    return out


def _time(restorer, faces: np.ndarray, batch: int, repeats: int, device: torch.device) -> tuple[float, float]:
    """Median (wall seconds, process CPU seconds) per call."""
    restorer.batch_size = batch
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        restorer.restore(faces[:batch])
        _sync(device)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--models", default="codeformer,restoreformer", help="comma list: codeformer, restoreformer")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--repeats", type=int, default=1, help="timed calls per batch size (median)")
    ap.add_argument("--w0", action="store_true", help="also time CodeFormer at fidelity 0 (fusion skipped)")
    ap.add_argument("--gfpgan", action="store_true", help="also time GFP-GAN (synthetic v1.4 layout) as a baseline")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave the default)")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    batches = [int(b) for b in args.batches.split(",")]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    faces = np.random.default_rng(0).integers(0, 256, (max(batches), 512, 512, 3), dtype=np.uint8)

    rows: list[tuple[str, int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        restorers = []
        if "codeformer" in models:
            ref = REFERENCE / "codeformer"
            ckpt = _make(folder, ref / "make_weights_codeformer.py", ref / "codeformer_keys.json", "cf.pth")
            model = build_codeformer(ckpt, device)
            for w in (0.5, 0.0) if args.w0 else (0.5,):
                r = CodeFormerRestorer(model, "codeformer", device, args.precision, 1, fidelity=w)
                restorers.append((f"codeformer w={w:g}", r))
        if "restoreformer" in models:
            ref = REFERENCE / "gfpgan"
            ckpt = _make(folder, ref / "make_weights.py", ref / "restoreformer_keys.json", "rf.pth", "RestoreFormer")
            r = RestoreFormerRestorer(build_restoreformer(ckpt, device), "restoreformer", device, args.precision, 1)
            restorers.append(("restoreformer", r))
        if args.gfpgan:
            from vidrestore.restorers import GFPGANRestorer, build_gfpgan

            ref = REFERENCE / "gfpgan"
            ckpt = _make(folder, ref / "make_weights.py", ref / "gfpgan_v1clean_keys.json", "gfpgan.pth")
            r = GFPGANRestorer(build_gfpgan(ckpt, device), "gfpgan", device, args.precision, 1)
            restorers.insert(0, ("gfpgan-1.4", r))

        for label, restorer in restorers:
            restorer.batch_size = 1
            restorer.restore(faces[:1])  # warm-up
            _sync(device)
            for b in batches:
                sec, cpu = _time(restorer, faces, b, args.repeats, device)
                rows.append((label, b, sec, cpu))
                print(f"  {label:18s} batch {b:3d}: {sec:7.2f} s/call, {cpu:7.2f} CPU s/call", file=sys.stderr,
                      flush=True)

    print(f"\ndevice {device}, precision {args.precision}, torch threads {torch.get_num_threads()}, "
          f"median of {args.repeats} call(s) per row\n")
    gf_col = " vs gfpgan b1 |" if args.gfpgan else ""
    print("| model | batch | s/face | faces/s | GFLOP/s | vs batch 1 | CPU s/face |" + gf_col)
    print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if args.gfpgan else ""))
    base = {label: b / s for label, b, s, _ in rows if b == 1}
    gf = base.get("gfpgan-1.4")
    for label, b, sec, cpu in rows:
        fps = b / sec
        ratio = f"{fps / base[label]:.2f}x" if label in base else "n/a"
        line = f"| {label} | {b} | {sec / b:.2f} | {fps:.3f} | {fps * GFLOP[label]:.0f} | {ratio} | {cpu / b:.2f} |"
        if gf:
            line += f" {fps / gf:.2f}x |"
        print(line)

if __name__ == "__main__":
    main()
