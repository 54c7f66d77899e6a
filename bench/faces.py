#!/usr/bin/env python3
"""Benchmarks of the face stages; prints one table.

Detection: RetinaFace frames/s per backbone, frame size and batch size, with the ratio against batch 1 measured
in the same run. Weights are synthetic (the facexlib reference rule: seeded ``randn`` per key in state-dict order,
see ``shared/reference/facexlib/README.md`` §2), built into a temporary folder unless ``--weights-dir`` holds
the files already. Timing does not depend on the weight values except through the number of boxes reaching
NMS, which the synthetic rule keeps realistic (tens per frame at 0.8).

Stages are functions ``bench_<stage>(args) -> list[Row]`` listed in :data:`STAGES`; add one there (and its
options in :func:`add_arguments`) to extend the table.

    python bench/faces.py                              # CPU, short
    python bench/faces.py --device cuda --frames 64    # GPU
    python bench/faces.py --backbones mobile0.25 --sizes 640x480 --batches 1,4,8
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vidrestore.device import resolve_device  # noqa: E402
from vidrestore.faces.detect import DETECTOR_FILES, load_detector  # noqa: E402
from vidrestore.models.retinaface import RetinaFace  # noqa: E402


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    stage: str
    config: str
    batch: int
    frames: int
    ms_per_frame: float
    ratio: float | None = None  # speed relative to the stage's baseline row in this run (higher = faster)
    note: str = ""

    @property
    def fps(self) -> float:
        return 1000.0 / self.ms_per_frame if self.ms_per_frame > 0 else math.inf


# ----------------------------------------------------------------------------------------------------------
# Helpers


def synthetic_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The reference folder's synthetic weight rule applied in ``model.state_dict()`` order (which equals the
    facexlib manifests' order for our RetinaFace/ParseNet; the tests check that)."""
    out: dict[str, torch.Tensor] = {}
    for i, (name, t) in enumerate(model.state_dict().items()):
        if t.dtype == torch.int64:
            out[name] = torch.zeros_like(t)
            continue
        r = torch.randn(tuple(t.shape), generator=torch.Generator().manual_seed(4321 + i), dtype=torch.float32)
        if name.endswith("running_mean"):
            v = 0.1 * r
        elif name.endswith("running_var"):
            v = 1.0 + 0.1 * r.abs()
        elif r.ndim == 1 and name.endswith(".weight"):
            v = 1.0 + 0.1 * r
        elif name.endswith(".bias"):
            v = 0.1 * r
        else:
            v = r / math.sqrt(math.prod(t.shape[1:]))
            if name == "body.conv1.weight":
                v = v / 32
        out[name] = v.contiguous()
    return out


def detector_weights(backbone: str, weights_dir: Path) -> Path:
    """``weights_dir/<facexlib file name>``, built with synthetic weights if it is not there yet."""
    name = DETECTOR_FILES[f"retinaface_{backbone}"]
    path = weights_dir / name
    if not path.is_file():
        weights_dir.mkdir(parents=True, exist_ok=True)
        torch.save(synthetic_state_dict(RetinaFace(backbone)), path)
    return path


def test_frames(width: int, height: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random RGB frames (blurred noise + gradients), different per frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for k in range(count):
        low = rng.random((height // 16 + 2, width // 16 + 2, 3), dtype=np.float32)
        up = np.repeat(np.repeat(low, 16, 0), 16, 1)[:height, :width]
        base = 0.5 * up + 0.25 * (xx / width)[..., None] + 0.25 * ((yy + 7 * k) % height / height)[..., None]
        frames.append(np.ascontiguousarray((base * 255).clip(0, 255).astype(np.uint8)))
    return frames


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parse_size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


# ----------------------------------------------------------------------------------------------------------
# Stages


def bench_detection(args: argparse.Namespace) -> list[Row]:
    """RetinaFace frames/s for each backbone x frame size x batch size; ratio vs batch 1 of the same config."""
    device = resolve_device(args.device)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="vidrestore-bench-") as tmp:
        wdir = Path(args.weights_dir) if args.weights_dir else Path(tmp)
        for backbone in args.backbones:
            path = detector_weights(backbone, wdir)
            for size in args.sizes:
                w, h = size
                base_ms: float | None = None
                for batch in args.batches:
                    n = max(args.frames, batch)
                    n -= n % batch  # whole batches only
                    det = load_detector(path, device=device, batch_size=batch, conf_threshold=args.conf_threshold)
                    frames = test_frames(w, h, n)
                    det.detect(frames[:batch])  # warm-up: allocator, kernels, prior cache
                    _sync(device)
                    t0 = time.perf_counter()
                    found = 0
                    for start in range(0, n, batch):
                        found += sum(len(f) for f in det.detect(frames[start:start + batch]))
                    _sync(device)
                    ms = (time.perf_counter() - t0) * 1000 / n
                    if base_ms is None:
                        base_ms = ms
                    rows.append(Row("detect", f"{backbone} {w}x{h}", batch, n, ms, base_ms / ms,
                                    f"{found / n:.1f} faces/frame"))
                    print(f"  detect {backbone} {w}x{h} batch {batch}: {ms:.1f} ms/frame", file=sys.stderr, flush=True)
                    del det
    return rows


#: The stages this script knows, in table order: (name, function). Others add theirs here.
STAGES: tuple[tuple[str, Callable[[argparse.Namespace], list[Row]]], ...] = (
    ("detect", bench_detection),
)


# ----------------------------------------------------------------------------------------------------------
# Table and command line


def format_table(rows: Sequence[Row], title: str = "") -> str:
    head = ("stage", "config", "batch", "frames", "ms/frame", "frames/s", "vs base", "note")
    body = [
        (r.stage, r.config, str(r.batch), str(r.frames), f"{r.ms_per_frame:.1f}", f"{r.fps:.2f}",
         "" if r.ratio is None else f"{r.ratio:.2f}x", r.note)
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    right = {2, 3, 4, 5, 6}

    def line(cells: Sequence[str]) -> str:
        return " | ".join(c.rjust(wd) if i in right else c.ljust(wd) for i, (c, wd) in enumerate(zip(cells, widths)))

    out = [title] if title else []
    out += [line(head), "-+-".join("-" * wd for wd in widths)]
    out += [line(b) for b in body]
    return "\n".join(out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--stages", default=",".join(n for n, _ in STAGES),
                        help="comma-separated stages to run (default all: %(default)s)")
    parser.add_argument("--weights-dir", default=None,
                        help="folder with (or for) the weight files; default a temporary folder with synthetic weights")
    det = parser.add_argument_group("detection")
    det.add_argument("--backbones", default="resnet50,mobile0.25", type=lambda s: s.split(","))
    det.add_argument("--sizes", default="640x480,1920x1080", type=lambda s: [parse_size(x) for x in s.split(",")])
    det.add_argument("--batches", default="1,8", type=lambda s: [int(x) for x in s.split(",")])
    det.add_argument("--frames", type=int, default=None,
                     help="frames timed per row (default 8 on the CPU, 64 on a GPU; rounded to whole batches)")
    det.add_argument("--conf-threshold", type=float, default=0.8)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.frames is None:
        args.frames = 64 if device.type == "cuda" else 8
    wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
    known = dict(STAGES)
    unknown = [s for s in wanted if s not in known]
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(known)}")
    rows: list[Row] = []
    with torch.inference_mode():
        for name in wanted:
            rows += known[name](args)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(format_table(rows, title=f"vidrestore face stages on {device} ({name}), torch {torch.__version__}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
