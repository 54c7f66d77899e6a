"""Real-ESRGAN x2 upscaling speed: frames/s, tiled against untiled (and precisions on CUDA), in the same run.

    python bench/upscale.py [--frames 2] [--threads 2]                      # CPU: 320x240 -> 640x480
    python bench/upscale.py --device cuda --precision bf16 [--frames 20]    # CUDA: 720x480 -> 1440x960,
                                                                             # fp32 vs fp16 vs bf16

Weights: the synthetic RRDBNet weights of ../shared/reference/realesrgan (speed does not depend on the values;
the model's own random init is used when that folder is absent). Each row runs ``upscaler.upscale(frame)``
(numpy RGB uint8 in and out: upload, pad, model, round, download) after one warm-up call. "TFLOP/s" counts the
convolutions only: 2.24 TFLOP per output megapixel (README §8). On CUDA, "of ceiling" divides by
``--ceiling-tflops`` (default 790, the dense bf16 figure used in DESIGN.md) for every row, fp32 included, so
the rows compare directly; fp32 convolutions run as TF32 there (PyTorch's cuDNN default) unless ``--no-tf32``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidrestore.models.rrdbnet import RRDBNet  # noqa: E402
from vidrestore.upscale import RealESRGANUpscaler, UpscaleOptions  # noqa: E402

TFLOP_PER_OUTPUT_MP = 2.2415
REF = Path(__file__).resolve().parents[2] / "shared" / "reference" / "realesrgan"


def synthetic_model(scale: int, device: torch.device) -> tuple[RRDBNet, str]:
    model = RRDBNet(scale=scale)
    maker, manifest = REF / "make_weights_rrdb.py", REF / f"rrdbnet_x{scale}plus_keys.json"
    source = "random init"
    if maker.is_file() and manifest.is_file():
        spec = importlib.util.spec_from_file_location("make_weights_rrdb", maker)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model.load_state_dict(module.make_state_dict(json.loads(manifest.read_text())), strict=True)
        source = "synthetic (shared/reference)"
    return model.to(device).eval().requires_grad_(False), source


def time_frames(up: RealESRGANUpscaler, frame: np.ndarray, frames: int, sync) -> list[float]:
    up.upscale(frame)  # warm-up (cuDNN / oneDNN kernel selection for this shape)
    sync()
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        up.upscale(frame)
        sync()
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="bf16", choices=["fp16", "bf16"], help="half precision to compare (CUDA)")
    ap.add_argument("--frames", type=int, default=None, help="timed frames per row (default 2 on CPU, 20 on CUDA)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads on the CPU")
    ap.add_argument("--tiles", default=None, help="comma-separated tile sizes besides untiled (default 128,64 / 400)")
    ap.add_argument("--ceiling-tflops", type=float, default=790.0)
    ap.add_argument("--no-tf32", action="store_true")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    if cuda:
        torch.backends.cudnn.benchmark = True
        if args.no_tf32:
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
    frames = args.frames or (20 if cuda else 2)
    h, w = (480, 720) if cuda else (240, 320)
    tiles = [int(t) for t in args.tiles.split(",")] if args.tiles else ([400] if cuda else [128, 64])
    model, source = synthetic_model(2, device)
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out_mp = (2 * h) * (2 * w) / 1e6
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    rows = []  # (precision, tile, seconds per frame)
    precisions = ["fp32", "fp16", "bf16"] if cuda else ["fp32"]
    if cuda and args.precision not in precisions:
        precisions.append(args.precision)
    for precision in precisions:
        for tile in [0, *tiles]:
            up = RealESRGANUpscaler(model, UpscaleOptions(scale=2, tile=tile, tile_pad=10, precision=precision))
            t = statistics.median(time_frames(up, frame, frames, sync))
            rows.append((precision, tile, t))

    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"Real-ESRGAN x2 (RRDBNet, weights: {source}) {w}x{h} -> {2 * w}x{2 * h}, {name}, "
          f"median of {frames} frames after 1 warm-up, upscale() numpy RGB uint8 in/out")
    head = f"{'precision':>9} {'tile':>8} {'s/frame':>9} {'frames/s':>9} {'TFLOP/s':>8} {'vs untiled fp32':>16}"
    if cuda:
        head += f" {'of ceiling':>11}"
    print(head)
    base = rows[0][2]
    for precision, tile, t in rows:
        tflops = TFLOP_PER_OUTPUT_MP * out_mp / t
        line = (f"{precision:>9} {('untiled' if tile == 0 else str(tile)):>8} {t:9.3f} {1 / t:9.2f} {tflops:8.3f} "
                f"{base / t:15.2f}x")
        if cuda:
            line += f" {tflops / args.ceiling_tflops:10.1%}"
        print(line)


if __name__ == "__main__":
    main()
