"""``vidrestore app``: the web door's command (prints the address; Ctrl-C stops it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from .options import Parser, add_backend_argument


def build_parser(prog: str = "vidrestore app") -> argparse.ArgumentParser:
    from ..app.server import default_workdir

    p = Parser(prog=prog, description="A local web page to restore photos and films (needs the 'app' extra).")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; any other needs the token "
                   "printed at start)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--token", help="the access token for a non-loopback --host (default: a fresh one, printed)")
    p.add_argument("--workdir", type=Path, default=default_workdir(),
                   help=f"where uploads, jobs and results are kept (default {default_workdir()})")
    p.add_argument("--weights-dir", metavar="DIR", help="folder with the weight files (see 'vidrestore weights list')")
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: the best available)")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                   help="model precision: fp32 (default, exact); fp16/bf16 on CUDA; bf16 on CPUs with native bf16")
    add_backend_argument(p)
    p.add_argument("--max-upload-mb", type=int, default=4096, help="largest file taken, in MiB (default 4096)")
    p.add_argument("--segment-seconds", type=float, default=30.0,
                   help="videos are restored in pieces this long; a restarted app resumes after the last one")
    p.add_argument("--test-fakes", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--test-delay", type=float, default=0.0, help=argparse.SUPPRESS)
    return p


def run(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UsageError('the app needs the app extra: pip install "vidrestore[app]"') from None
    from ..app import AppOptions, EngineOptions, serve

    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be 1-65535, got {args.port}")
    engine = EngineOptions(weights_dir=args.weights_dir, device=args.device, precision=args.precision,
                           backend=args.backend, segment_seconds=args.segment_seconds,
                           fakes=args.test_fakes, fake_delay=args.test_delay)
    serve(AppOptions(host=args.host, port=args.port, workdir=args.workdir, token=args.token,
                     max_upload_mb=args.max_upload_mb, engine=engine), say=lambda line: print(line, flush=True))
    return 0
