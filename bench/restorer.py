"""Throughput of the GFP-GAN restorer: faces per second by batch size, against batch 1 in the same run.

    python bench/restorer.py                      # CPU: torch fp32 / OpenVINO fp32 / OpenVINO bf16 / torch bf16 (~2-4 min)
    python bench/restorer.py --table batches      # CPU, fp32, 8 faces, batches 1/4/8, synthetic weights
    python bench/restorer.py --faces 4 --batches 1,4 --channels-last both
    python bench/restorer.py --device cuda --precision bf16 --faces 64
    python bench/restorer.py --weights ~/.cache/vidrestore/GFPGANv1.4.pth

Without ``--weights`` a synthetic checkpoint is built in a temporary folder from the reference key manifest
(``../shared/reference/gfpgan/make_weights.py``); throughput does not depend on the weight values.

CPU: the numpy entry point ``restore()`` (uint8 in/out, conversions included) at each batch size; the baseline
is batch 1 (one face per call), and the ratio column is faces/s over the baseline's faces/s. The process CPU
seconds per face are shown too: on a shared machine they are less disturbed by other jobs than wall time.

CUDA: the tensor entry point ``restore_tensor()`` on device-resident input (the batched pipeline's path), for
fp32 and the requested low precision, over a batch sweep; achieved TFLOP/s at 395.5 GFLOP per face, the
fraction of the ~790 TFLOP/s dense bf16/fp16 ceiling, and each precision's max abs error against fp32.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vidrestore.device import resolve_device  # noqa: E402
from vidrestore.restorers import GFPGANRestorer, build_gfpgan  # noqa: E402

GFLOP_PER_FACE = 395.54
CEILING_TFLOPS = 790.0  # dense bf16/fp16 tensor-core peak, H100/H200 class
REFERENCE = REPO.parent / "shared" / "reference" / "gfpgan"


@dataclass
class Row:
    label: str
    batch: int
    seconds: float
    faces: int
    cpu_seconds: float = float("nan")

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs, after one warm-up run."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _synthetic_weights(folder: Path) -> Path:
    out = folder / "synthetic_gfpgan_v1clean.pth"
    script, manifest = REFERENCE / "make_weights.py", REFERENCE / "gfpgan_v1clean_keys.json"
    if not script.is_file():
        sys.exit(f"no --weights given and the reference folder {REFERENCE} is missing")
    subprocess.run([sys.executable, str(script), str(manifest), str(out)], check=True, capture_output=True)
    return out


def _print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))


def bench_cpu(model, args: argparse.Namespace) -> None:
    device = torch.device("cpu")
    faces = np.random.default_rng(0).integers(0, 256, (args.faces, 512, 512, 3), dtype=np.uint8)
    modes = {"off": [False], "on": [True], "both": [False, True], "auto": [False]}[args.channels_last]
    rows: list[Row] = []
    warm = False
    for cl in modes:
        for batch in args.batches:
            r = GFPGANRestorer(model, "bench", device, "fp32", batch_size=batch, channels_last=cl)
            if not warm:  # one face warms up the allocator and the oneDNN kernels
                r.restore(faces[:1])
                warm = True
            times, cpu_times = [], []
            for _ in range(args.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                r.restore(faces)
                times.append(time.perf_counter() - t0)
                cpu_times.append(time.process_time() - c0)
            t = statistics.median(times)
            rows.append(Row(f"fp32{' CL' if cl else ''}", batch, t, args.faces, statistics.median(cpu_times)))
            print(f"  measured {rows[-1].label} batch {batch}: {t:.2f} s", file=sys.stderr, flush=True)
    base = next((r for r in rows if r.batch == 1 and r.label == "fp32"), rows[0])
    table = [
        [r.label, str(r.batch), f"{r.seconds:.2f}", f"{r.seconds / r.faces:.3f}", f"{r.faces_per_s:.3f}",
         f"{r.faces_per_s / base.faces_per_s:.2f}x", f"{r.faces_per_s * GFLOP_PER_FACE / 1e3:.3f}",
         f"{r.cpu_seconds / r.faces:.2f}", f"{(base.cpu_seconds / base.faces) / (r.cpu_seconds / r.faces):.2f}x"]
        for r in rows
    ]
    _print_table(
        f"GFP-GAN restore() on CPU: {args.faces} faces, {torch.get_num_threads()} threads, "
        f"baseline = {base.label} batch {base.batch}",
        ["mode", "batch", "total s", "s/face", "faces/s", "vs base", "TFLOP/s", "cpu s/face", "cpu vs base"],
        table,
    )


def _u8(x: torch.Tensor) -> np.ndarray:
    return ((x.float().clamp(-1, 1) + 1) / 2 * 255).round().to(torch.uint8).numpy().astype(np.int16)


def bench_backends(model, weights: Path, args: argparse.Namespace) -> None:
    """s/face of one GFP-GAN face (batch 1, the CPU stage's call) for torch fp32, OpenVINO fp32, OpenVINO bf16 and
    torch bf16 autocast, interleaved round by round so machine load hits every row alike; ratios vs torch fp32."""
    from vidrestore.device import cpu_has_bf16
    from vidrestore.models import openvino as vov

    x = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(0)) * 2 - 1
    noise = [torch.randn(s, generator=torch.Generator().manual_seed(i)) for i, s in enumerate(model.noise_shapes())]
    t0 = time.perf_counter()
    ov32 = vov.gfpgan_openvino(model, weights, "CPU", "fp32")
    print(f"  OpenVINO {vov.version()} model ready in {time.perf_counter() - t0:.1f} s ({ov32.net.xml})",
          file=sys.stderr, flush=True)
    ov16 = vov.gfpgan_openvino(model, weights, "CPU", "bf16")

    def torch_bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(x, noise).float()

    runs = {"torch fp32": lambda: model(x, noise), "OpenVINO fp32": lambda: ov32(x, noise),
            "OpenVINO bf16": lambda: ov16(x, noise), "torch bf16 autocast": torch_bf16}
    outs = {k: fn() for k, fn in runs.items()}  # warm-up, and the outputs compared
    times: dict[str, list[float]] = {k: [] for k in runs}
    for rnd in range(args.rounds):
        for k, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
        print(f"  round {rnd + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in times.items()),
              file=sys.stderr, flush=True)
    base = statistics.median(times["torch fp32"])
    ref = outs["torch fp32"]
    table = []
    for k in runs:
        med = statistics.median(times[k])
        ratios = [a / b for a, b in zip(times[k], times["torch fp32"])]  # per round: robust to load changes
        err = (outs[k] - ref).abs().max().item()
        p999 = float(np.percentile(np.abs(_u8(outs[k]) - _u8(ref)), 99.9))
        table.append([k, f"{med:.2f}", f"{base / med:.2f}x", f"{statistics.median(ratios):.2f}",
                      "-" if k == "torch fp32" else f"{err:.1e}", "-" if k == "torch fp32" else f"{p999:.1f}"])
    _print_table(
        f"GFP-GAN, one face per call on CPU ({torch.get_num_threads()} threads, {args.rounds} interleaved rounds, "
        f"CPU bf16: {'yes' if cpu_has_bf16() else 'NO (emulated)'}); ratios are per round, robust to machine load",
        ["backend", "s/face", "speed vs torch fp32", "time ratio (median/round)", "max|err|", "u8 p99.9 err"],
        table,
    )


def bench_cuda(model, args: argparse.Namespace, device: torch.device) -> None:
    x = (torch.rand(args.faces, 3, 512, 512, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)
    precisions = ["fp32"] + [p for p in (args.precision,) if p != "fp32"]
    if args.precision == "both":
        precisions = ["fp32", "bf16", "fp16"]
    outputs: dict[str, torch.Tensor] = {}
    rows: list[tuple[str, Row]] = []
    for precision in precisions:
        for batch in args.batches:
            r = GFPGANRestorer(model, "bench", device, precision, batch_size=batch)
            t = _time(lambda: r.restore_tensor(x), device, args.repeats)
            rows.append((precision, Row(precision, batch, t, args.faces)))
            print(f"  measured {precision} batch {batch}: {t:.3f} s", file=sys.stderr, flush=True)
        outputs[precision] = GFPGANRestorer(model, "bench", device, precision, batch_size=max(args.batches)).restore_tensor(x)
    base = next((row for p, row in rows if p == "fp32" and row.batch == 1), rows[0][1])
    table = []
    for precision, r in rows:
        tflops = r.faces_per_s * GFLOP_PER_FACE / 1e3
        err = (outputs[precision] - outputs["fp32"]).abs().max().item()
        table.append([precision, str(r.batch), f"{r.seconds * 1e3:.1f}", f"{r.faces_per_s:.1f}",
                      f"{r.faces_per_s / base.faces_per_s:.2f}x", f"{tflops:.1f}", f"{tflops / CEILING_TFLOPS:.1%}",
                      f"{err:.2e}"])
    _print_table(
        f"GFP-GAN restore_tensor() on {torch.cuda.get_device_name(device)}: {args.faces} faces, "
        f"baseline = fp32 batch {base.batch}, ceiling {CEILING_TFLOPS:.0f} TFLOP/s (bf16/fp16 dense)",
        ["precision", "batch", "total ms", "faces/s", "vs base", "TFLOP/s", "of ceiling", "max|err| vs fp32"],
        table,
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, help="a GFPGANv1.3/1.4 checkpoint (default: synthetic, built in a temp dir)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16", "both"],
                   help="CUDA: the low precision to compare with fp32 ('both' = bf16 and fp16)")
    p.add_argument("--faces", type=int, help="faces per measurement (default 8 on CPU, 64 on CUDA)")
    p.add_argument("--batches", help="comma-separated batch sizes (default 1,4,8 on CPU, 1,4,8,16,32 on CUDA)")
    p.add_argument("--repeats", type=int, help="timed runs per row, median (default 1 on CPU, 5 on CUDA)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--channels-last", default="auto", choices=["auto", "on", "off", "both"], help="CPU only")
    p.add_argument("--rounds", type=int, default=3, help="CPU backend table: interleaved rounds (default 3)")
    p.add_argument("--table", default="auto", choices=["auto", "backends", "batches", "both"],
                   help="CPU: the backend table (default; needs the openvino extra), the batch sweep, or both")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    args.faces = args.faces or (64 if cuda else 8)
    sweep = args.table in ("batches", "both") or (args.table == "auto" and args.batches is not None)
    args.batches = [int(b) for b in (args.batches or ("1,4,8,16,32" if cuda else "1,4,8")).split(",")]
    args.repeats = args.repeats or (5 if cuda else 1)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not cuda and args.precision != "fp32":
        sys.exit("on the CPU the backend table compares fp32 and bf16 itself; --precision is for CUDA")
    # synthetic weights are kept in bench/out/ (ignored) so the OpenVINO conversion cached beside them is reused
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    weights = args.weights or out / "synthetic_gfpgan_v1clean.pth"
    if not weights.is_file():
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            Path(_synthetic_weights(Path(tmp))).replace(weights)
    model = build_gfpgan(weights, device).eval().requires_grad_(False)
    print(f"weights: {args.weights or 'synthetic'}; torch {torch.__version__}; device {device}", flush=True)
    if cuda:
        bench_cuda(model, args, device)
        return
    if args.table != "batches":
        with torch.inference_mode():
            bench_backends(model, weights, args)
    if sweep:
        bench_cpu(model, args)


if __name__ == "__main__":
    main()
