"""Throughput of the GFP-GAN restorer: faces per second by batch size, against batch 1 in the same run.

    python bench/restorer.py                      # CPU: torch fp32 / OpenVINO fp32 / OpenVINO bf16 / torch bf16 (~2-4 min)
    python bench/restorer.py --network all --rounds 3   # the same four rows for CodeFormer, ParseNet (256 px),
                                                  # RetinaFace-R50 (640x480), Real-ESRGAN x2/x4 (148-px tile), GFP-GAN
    python bench/restorer.py --network parsenet --parse-size 512
    python bench/restorer.py --table batches      # CPU, fp32, 8 faces, batches 1/4/8, synthetic weights
    python bench/restorer.py --faces 4 --batches 1,4 --channels-last both
    python bench/restorer.py --device cuda --precision bf16 --faces 64
    python bench/restorer.py --weights ~/.cache/vidrestore/GFPGANv1.4.pth

The other networks (``--network``) always use synthetic checkpoints built by the reference folders' own scripts
(kept in ``bench/out/``, like GFP-GAN's, so their OpenVINO conversions are cached for the next run); the first
run converts each network (up to a minute each on 2 cores).

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
import json
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
NETWORKS = ("codeformer", "parsenet", "retinaface", "realesrgan-x2", "realesrgan-x4")


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


def _flat(out) -> torch.Tensor:
    """A network's output as one float tensor (RetinaFace's tuple concatenated)."""
    return torch.cat([t.float().flatten() for t in out]) if isinstance(out, (tuple, list)) else out.float()


def compare(title: str, runs: dict, rounds: int, u8=_u8) -> None:
    """Time ``runs`` (label -> call; the first is the baseline) interleaved round by round, so machine load hits
    every row alike; print s/call, ratios per round and the error of each output against the baseline's
    (``u8``: the output as uint8 levels, or None where that means nothing)."""
    from vidrestore.device import cpu_has_bf16

    outs = {k: fn() for k, fn in runs.items()}  # warm-up, and the outputs compared
    times: dict[str, list[float]] = {k: [] for k in runs}
    for rnd in range(rounds):
        for k, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
        print(f"  round {rnd + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in times.items()),
              file=sys.stderr, flush=True)
    first = next(iter(runs))
    base, ref = statistics.median(times[first]), outs[first]
    table = []
    for k in runs:
        med = statistics.median(times[k])
        ratios = [a / b for a, b in zip(times[k], times[first])]  # per round: robust to load changes
        err = (_flat(outs[k]) - _flat(ref)).abs().max().item()
        p999 = "-" if u8 is None or k == first else f"{np.percentile(np.abs(u8(outs[k]) - u8(ref)), 99.9):.1f}"
        table.append([k, f"{med:.3f}", f"{base / med:.2f}x", f"{statistics.median(ratios):.2f}",
                      "-" if k == first else f"{err:.1e}", p999])
    _print_table(
        f"{title} on CPU ({torch.get_num_threads()} threads, {rounds} interleaved rounds, "
        f"CPU bf16: {'yes' if cpu_has_bf16() else 'NO (emulated)'}); ratios are per round, robust to machine load",
        ["backend", "s/call", f"speed vs {first}", "time ratio (median/round)", "max|err|", "u8 p99.9 err"], table,
    )


def four_ways(torch_fn, ov: dict) -> dict:
    """torch fp32, OpenVINO fp32, OpenVINO bf16, torch bf16 autocast: the rows of every network's table."""

    def torch_bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = torch_fn()
        return tuple(t.float() for t in out) if isinstance(out, tuple) else out.float()

    return {"torch fp32": torch_fn, "OpenVINO fp32": lambda: ov["fp32"](), "OpenVINO bf16": lambda: ov["bf16"](),
            "torch bf16 autocast": torch_bf16}


def bench_backends(model, weights: Path, args: argparse.Namespace) -> None:
    """s/face of one GFP-GAN face (batch 1, the CPU stage's call) for torch fp32, OpenVINO fp32, OpenVINO bf16 and
    torch bf16 autocast, interleaved; ratios vs torch fp32."""
    from vidrestore.models import openvino as vov

    x = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(0)) * 2 - 1
    noise = [torch.randn(s, generator=torch.Generator().manual_seed(i)) for i, s in enumerate(model.noise_shapes())]
    t0 = time.perf_counter()
    ov = {p: vov.gfpgan_openvino(model, weights, "CPU", p) for p in ("fp32", "bf16")}
    print(f"  OpenVINO {vov.version()} model ready in {time.perf_counter() - t0:.1f} s ({ov['fp32'].net.xml})",
          file=sys.stderr, flush=True)
    runs = four_ways(lambda: model(x, noise), {p: (lambda m=m: m(x, noise)) for p, m in ov.items()})
    compare("GFP-GAN, one face per call", runs, args.rounds)


def _reference_weights(out: Path, folder: str, builder: str, call) -> Path:
    """A synthetic checkpoint built once by a reference folder's own script (kept in bench/out/: the OpenVINO
    cache beside it is reused by the next run)."""
    if not out.is_file():
        import importlib.util

        spec = importlib.util.spec_from_file_location(builder, REFERENCE.parent / folder / f"{builder}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            call(module, REFERENCE.parent / folder, Path(tmp) / out.name)
            (Path(tmp) / out.name).replace(out)
    return out


def network_runs(name: str, args: argparse.Namespace, out: Path) -> tuple[str, dict, object]:
    """The four rows of one auxiliary network (synthetic weights): title, runs, uint8 view of its output."""
    from vidrestore.models import openvino as vov
    from vidrestore.models import openvino_nets as von

    gen = torch.Generator().manual_seed(0)
    precisions = ("fp32", "bf16")
    if name == "codeformer":
        from vidrestore.restorers.codeformer import build_codeformer

        ckpt = _reference_weights(out / "synthetic_codeformer.pth", "codeformer", "make_weights_codeformer",
                                  lambda m, ref, p: torch.save({"params_ema": m.build_state_dict(
                                      json.loads((ref / "codeformer_keys.json").read_text()))}, p))
        model = build_codeformer(ckpt).eval().requires_grad_(False)
        x = torch.rand(1, 3, 512, 512, generator=gen) * 2 - 1
        ov = {p: vov.codeformer_openvino(model, ckpt, 0.5, "CPU", p) for p in precisions}
        runs = four_ways(lambda: model(x, w=0.5), {p: (lambda m=m: m(x, w=0.5)) for p, m in ov.items()})
        return "CodeFormer (w 0.5), one face per call", runs, _u8
    if name == "parsenet":
        from vidrestore.faces.parse import load_parser

        ckpt = _reference_weights(out / "synthetic_parsenet.pth", "facexlib", "make_weights_fx",
                                  lambda m, ref, p: m.build_file(str(ref / "parsenet_keys.json"), str(p)))
        parser = load_parser(ckpt, device="cpu", backend="torch", parse_size=args.parse_size)
        ov = {p: load_parser(ckpt, device="cpu", backend="openvino", precision=p, parse_size=args.parse_size)
              for p in precisions}
        x = torch.rand(1, 3, args.parse_size, args.parse_size, generator=gen) * 2 - 1

        def mask_u8(logits: torch.Tensor) -> np.ndarray:  # the mask the paste-back uses: 512 px, blurred twice
            up = torch.nn.functional.interpolate(logits.float(), size=(512, 512), mode="bilinear")
            return (parser.masks_from_classes(up.argmax(dim=1)) * 255).round().numpy().astype(np.int16)

        runs = four_ways(lambda: parser.model(x)[0], {p: (lambda m=m: m.model(x)[0]) for p, m in ov.items()})
        return f"ParseNet at {args.parse_size} px (logits; u8 = the blurred 512-px mask), one crop per call", runs, mask_u8
    if name == "retinaface":
        from vidrestore.faces.detect import load_detector

        ckpt = _reference_weights(out / "synthetic_retinaface_r50.pth", "facexlib", "make_weights_fx",
                                  lambda m, ref, p: m.build_file(str(ref / "retinaface_resnet50_keys.json"), str(p)))
        model = load_detector(ckpt, device="cpu", backend="torch", backbone="resnet50").model
        ov = {p: load_detector(ckpt, device="cpu", backend="openvino", precision=p, backbone="resnet50").model
              for p in precisions}
        x = torch.randn(1, 3, 480, 640, generator=gen) * 60
        runs = four_ways(lambda: model(x), {p: (lambda m=m: m(x)) for p, m in ov.items()})
        return "RetinaFace-R50, one 640x480 frame per call (raw outputs)", runs, None
    scale = int(name[-1])
    from vidrestore.models.rrdbnet import build_rrdbnet

    ckpt = _reference_weights(out / f"synthetic_rrdbnet_x{scale}.pth", "realesrgan", "make_weights_rrdb",
                              lambda m, ref, p: torch.save(m.make_checkpoint(json.loads(
                                  (ref / f"rrdbnet_x{scale}plus_keys.json").read_text())), p))
    model = build_rrdbnet(ckpt, scale)
    ov = {p: von.rrdbnet_openvino(model, ckpt, "CPU", p) for p in precisions}
    side = args.tile + 20  # one tile with tile_pad 10 on each side
    x = torch.rand(1, 3, side, side, generator=gen)
    runs = four_ways(lambda: model(x), {p: (lambda m=m: m(x)) for p, m in ov.items()})
    u8 = lambda t: (t.float().clamp(0, 1) * 255).round().numpy().astype(np.int16)  # noqa: E731
    return f"Real-ESRGAN x{scale}, one {side}x{side} tile per call", runs, u8


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
    p.add_argument("--network", default="gfpgan", choices=["gfpgan", *NETWORKS, "all"],
                   help="CPU: the network of the backend table (default gfpgan; 'all': one table each)")
    p.add_argument("--parse-size", type=int, default=256, help="ParseNet's input side (default 256, the CLI's)")
    p.add_argument("--tile", type=int, default=128, help="Real-ESRGAN tile side, plus 2x10 pad (default 128)")
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
    if not cuda and args.network != "gfpgan":
        with torch.inference_mode():
            for name in NETWORKS if args.network == "all" else (args.network,):
                print(f"{name}: synthetic weights; torch {torch.__version__}", flush=True)
                title, runs, u8 = network_runs(name, args, out)
                compare(title, runs, args.rounds, u8)
        if args.network != "all":
            return
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
