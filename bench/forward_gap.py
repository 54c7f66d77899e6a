"""vidrestore's GFP-GAN forward against the official one: time per face, op counts, self time and memory per op.

    GFPGAN_SRC=~/src/GFPGAN python bench/forward_gap.py               # 5 interleaved rounds + profiles (~1 min quiet)
    python bench/forward_gap.py --official-src ~/src/GFPGAN --rounds 7
    python bench/forward_gap.py --official-src ~/src/GFPGAN --rev HEAD  # also the committed model, as a third row
    python bench/forward_gap.py --official-src ~/src/GFPGAN --weights ~/.cache/vidrestore/GFPGANv1.4.pth

The official model is TencentARC/GFPGAN v1.3.8's GFPGANv1Clean, read from a GFPGAN clone outside this repo
(``bench/official_gfpgan.py``; a work tree or a bare/mirror git directory). Both models get the same checkpoint
(synthetic, official layout, built from ``../shared/reference/gfpgan/make_weights.py`` unless ``--weights``), the
same input (``torch.manual_seed(7)``, one 512 px face in [-1, 1]) and the same noise (the checkpoint's stored
noise maps: official ``randomize_noise=False``, ours ``noise=None``): torch fp32 on the CPU, batch 1, under
``torch.inference_mode()`` for both.

Printed: (1) parity, ours vs official, max abs difference; (2) interleaved timing, ``--rounds`` rounds whose order
alternates (A B, B A, ...): median wall s/face, process CPU s/face, minor page faults and the median of the
per-round wall ratios; (3) one profiled forward each (``torch.profiler``, ``profile_memory``): per op the calls,
self CPU ms, share of the total and MB allocated, and the totals outside convolution. On a shared machine the
wall times are noisy: trust the paired ratios, the op counts, the allocation and page-fault figures (deterministic)
and the self-time shares over absolute seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from official_gfpgan import find_source, load_official, official_forward  # noqa: E402
from vidrestore.restorers import build_gfpgan  # noqa: E402

REFERENCE = REPO.parent / "shared" / "reference" / "gfpgan"
CONV_OPS = ("aten::mkldnn_convolution", "aten::_slow_conv2d_forward")


def synthetic_weights(folder: Path) -> Path:
    out = folder / "synthetic_gfpgan_v1clean.pth"
    script, manifest = REFERENCE / "make_weights.py", REFERENCE / "gfpgan_v1clean_keys.json"
    if not script.is_file():
        sys.exit(f"no --weights given and the reference folder {REFERENCE} is missing")
    subprocess.run([sys.executable, str(script), str(manifest), str(out)], check=True, capture_output=True,
                   timeout=300)
    return out


def model_at_rev(rev: str, weights: Path) -> torch.nn.Module:
    """vidrestore's GFPGANv1Clean as committed at ``rev`` (its module imports torch only), with ``weights``."""
    src = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:vidrestore/models/gfpgan.py"], check=True,
                         capture_output=True, timeout=60).stdout
    module = types.ModuleType(f"gfpgan_at_{rev}")
    exec(compile(src, f"{rev}:vidrestore/models/gfpgan.py", "exec"), module.__dict__)
    with torch.device("meta"):
        model = module.GFPGANv1Clean()
    ckpt = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(ckpt.get("params_ema", ckpt.get("params")), strict=True, assign=True)
    return model.eval().requires_grad_(False)


def measure(fn: Callable[[], torch.Tensor]) -> tuple[float, float, int]:
    """(wall s, process CPU s, minor page faults) of one call."""
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    t1, c1 = time.perf_counter(), time.process_time()
    return t1 - t0, c1 - c0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0


def interleave(fns: dict[str, Callable[[], torch.Tensor]], rounds: int) -> dict[str, list[tuple[float, float, int]]]:
    names = list(fns)
    runs: dict[str, list[tuple[float, float, int]]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            runs[name].append(measure(fns[name]))
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {runs[n][-1][0]:.2f} s" for n in names),
              file=sys.stderr, flush=True)
    return runs


def profile_ops(fn: Callable[[], torch.Tensor]) -> dict[str, tuple[int, float, float]]:
    """op -> (calls, self CPU ms, MB allocated by the op itself) for one forward."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return {e.key: (e.count, e.self_cpu_time_total / 1e3, max(e.self_cpu_memory_usage, 0) / 2**20)
            for e in prof.key_averages() if not e.key.startswith("[")}


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths))))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


def timing_rows(runs: dict[str, list[tuple[float, float, int]]], base: str) -> list[list[str]]:
    rows = []
    for name, rs in runs.items():
        wall, cpu, faults = (statistics.median(v[k] for v in rs) for k in range(3))
        paired = statistics.median(a[0] / b[0] for a, b in zip(rs, runs[base]))
        b_cpu = statistics.median(v[1] for v in runs[base])
        rows.append([name, f"{wall:.3f}", f"{cpu:.3f}", f"{faults / 1e3:.0f}k", f"{paired:.3f}", f"{cpu / b_cpu:.3f}",
                     " ".join(f"{v[0]:.2f}" for v in rs)])
    return rows


def op_rows(stats: dict[str, dict[str, tuple[int, float, float]]], top: int) -> list[list[str]]:
    names = list(stats)
    totals = {n: sum(v[1] for v in s.values()) for n, s in stats.items()}
    ops = sorted(set().union(*stats.values()), key=lambda op: -max(s.get(op, (0, 0.0, 0.0))[1] for s in stats.values()))
    rows = []
    for op in ops[:top]:
        row = [op]
        for n in names:
            calls, ms, mb = stats[n].get(op, (0, 0.0, 0.0))
            row += [str(calls), f"{ms:.0f}", f"{100 * ms / totals[n]:.1f}%", f"{mb:.0f}"]
        rows.append(row)
    for label, pick in (("= total", lambda op: True), ("= outside conv", lambda op: op not in CONV_OPS)):
        row = [label]
        for n in names:
            sel = [v for op, v in stats[n].items() if pick(op)]
            ms = sum(v[1] for v in sel)
            row += [str(sum(v[0] for v in sel)), f"{ms:.0f}", f"{100 * ms / totals[n]:.1f}%",
                    f"{sum(v[2] for v in sel):.0f}"]
        rows.append(row)
    return rows


def build(args: argparse.Namespace, weights: Path) -> dict[str, torch.nn.Module]:
    models: dict[str, torch.nn.Module] = {"official": load_official(weights, args.official_src)}
    models["ours"] = build_gfpgan(weights, "cpu").eval().requires_grad_(False)
    if args.rev:
        models[f"ours@{args.rev}"] = model_at_rev(args.rev, weights)
    return models


def run(args: argparse.Namespace, weights: Path) -> None:
    torch.set_num_threads(args.threads)
    models = build(args, weights)
    torch.manual_seed(7)
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    fns = {n: (lambda m=m: official_forward(m, x)) if n == "official" else (lambda m=m: m(x))
           for n, m in models.items()}
    load0 = os.getloadavg()[0]
    with torch.inference_mode():
        outs = {n: f() for n, f in fns.items()}  # also the warm-up
        parity = {n: (o - outs["official"]).abs().max().item() for n, o in outs.items() if n != "official"}
        stats = {n: profile_ops(f) for n, f in fns.items()}
        runs = interleave(fns, args.rounds)
    print(f"\nGFP-GAN forward, batch 1, 512 px, torch {torch.__version__} fp32 CPU, {torch.get_num_threads()} threads, "
          f"same weights, input and stored noise; load average {load0:.1f} -> {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    for n, d in parity.items():
        print(f"parity {n} vs official: max |diff| {d:.3g}{' (bit-identical)' if d == 0 else ''}")
    print_table(f"interleaved, {args.rounds} rounds (order alternates); ratios vs official (< 1: faster)",
                ["model", "wall s/face", "cpu s/face", "page faults", "wall ratio (paired)", "cpu ratio",
                 "wall per round"], timing_rows(runs, "official"))
    header = ["op (one profiled forward)"]
    for n in stats:
        header += [f"{n} calls", "self ms", "share", "alloc MB"]
    print_table(f"top {args.top} ops by self CPU time", header, op_rows(stats, args.top))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official-src", help="GFPGAN clone (work tree or git dir); default $GFPGAN_SRC")
    ap.add_argument("--weights", type=Path, help="a GFPGANv1.3/1.4 checkpoint (default: synthetic)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--top", type=int, default=14)
    ap.add_argument("--rev", help="also time vidrestore's model as committed at this git revision (e.g. HEAD)")
    args = ap.parse_args()
    args.official_src = find_source(args.official_src)  # one line and exit if missing, before any work
    if args.weights:
        run(args, args.weights)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(args, synthetic_weights(Path(tmp)))


if __name__ == "__main__":
    main()
