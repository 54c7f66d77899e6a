"""The official GFPGANv1Clean, loaded for benchmarks from an official GFPGAN source tree kept outside this repo.

The reference architecture is TencentARC/GFPGAN v1.3.8 (commit ``7552a7791caad982045a7bbe5634bbf1cd5c8679``),
files ``gfpgan/archs/gfpganv1_clean_arch.py`` and ``gfpgan/archs/stylegan2_clean_arch.py``: Copyright (C) 2021
THL A29 Limited, a Tencent company, licensed under the Apache License 2.0 (StyleGAN2 parts after NVIDIA and
rosinality, see the GFPGAN LICENSE file). vidrestore's own model (``vidrestore/models/gfpgan.py``) was written
without the official code, so the official files are **not copied into this repository**: this module reads
them, unmodified, from a source tree you point it at, and runs them with two stand-ins for their only outside
imports (``basicsr``):

* ``basicsr.utils.registry.ARCH_REGISTRY``: a registry whose ``register()`` returns the class unchanged;
* ``basicsr.archs.arch_util.default_init_weights``: a no-op (it only initialises a fresh model; the strict
  state-dict load overwrites every tensor it touches).

Get the source with ``git clone https://github.com/TencentARC/GFPGAN`` (``git checkout v1.3.8`` or the commit
above); pass the clone (a work tree, or a bare/mirror git directory, read with ``git show``) as ``src``, or set
``GFPGAN_SRC``. A file whose git blob hash differs from v1.3.8's is used with a notice on stderr.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import types
from pathlib import Path

import torch

__all__ = ["OFFICIAL_COMMIT", "find_source", "load_official", "official_forward"]

OFFICIAL_COMMIT = "7552a7791caad982045a7bbe5634bbf1cd5c8679"  # v1.3.8
FILES = {  # path in the GFPGAN repo -> git blob sha1 at OFFICIAL_COMMIT
    "gfpgan/archs/stylegan2_clean_arch.py": "9e2ee94e50401b95e4c9997adef5581d521d725f",
    "gfpgan/archs/gfpganv1_clean_arch.py": "d6c2705876d18ccae69e0ef9e7678a456f86bb58",
}
# the GFPGANer(arch='clean', channel_multiplier=2) configuration of the published v1.3/v1.4 weights
CONFIG = dict(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False,
              num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
_PKG = "_official_gfpgan_archs"


def find_source(src: str | Path | None = None) -> Path:
    """The GFPGAN source to read: ``src``, else ``$GFPGAN_SRC``; SystemExit with one line if neither is usable."""
    src = src or os.environ.get("GFPGAN_SRC")
    if not src:
        sys.exit("the official GFPGAN source is needed: pass --official-src DIR or set GFPGAN_SRC "
                 "(git clone https://github.com/TencentARC/GFPGAN)")
    path = Path(src).expanduser()
    if not path.exists():
        sys.exit(f"official GFPGAN source not found: {path}")
    return path


def _blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _read(src: Path, rel: str) -> bytes:
    if (src / rel).is_file():
        return (src / rel).read_bytes()
    git_dir = src / ".git" if (src / ".git").exists() else src  # a clone, or a bare/mirror git directory
    rev = os.environ.get("GFPGAN_REV", OFFICIAL_COMMIT)
    try:
        return subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{rev}:{rel}"],
                              check=True, capture_output=True, timeout=60).stdout
    except (subprocess.CalledProcessError, OSError) as exc:
        sys.exit(f"cannot read {rel} from {src}: {exc}")


def _basicsr_stubs() -> dict[str, types.ModuleType]:
    class _Registry:
        def register(self, obj=None):
            return obj if obj is not None else (lambda o: o)

    def default_init_weights(*args, **kwargs) -> None:  # fresh-model init only; the strict load overwrites it
        return None

    mods = {name: types.ModuleType(name) for name in
            ("basicsr", "basicsr.utils", "basicsr.utils.registry", "basicsr.archs", "basicsr.archs.arch_util")}
    mods["basicsr.utils.registry"].ARCH_REGISTRY = _Registry()
    mods["basicsr.archs.arch_util"].default_init_weights = default_init_weights
    return mods


def _import_official(src: Path) -> types.ModuleType:
    """Execute the two official files as the package ``_official_gfpgan_archs``; return the GFPGANv1Clean module."""
    if f"{_PKG}.gfpganv1_clean_arch" in sys.modules:
        return sys.modules[f"{_PKG}.gfpganv1_clean_arch"]
    stubs = _basicsr_stubs()
    saved = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    try:
        pkg = types.ModuleType(_PKG)
        pkg.__path__ = []  # a package, so the relative import in gfpganv1_clean_arch resolves
        sys.modules[_PKG] = pkg
        module = pkg
        for rel, blob in FILES.items():
            data = _read(src, rel)
            if _blob_sha1(data) != blob:
                print(f"notice: {rel} differs from GFPGAN v1.3.8 (git blob {_blob_sha1(data)[:12]})", file=sys.stderr)
            name = f"{_PKG}.{Path(rel).stem}"
            module = types.ModuleType(name)
            module.__package__ = _PKG
            module.__file__ = f"{src}/{rel}"
            sys.modules[name] = module
            exec(compile(data, module.__file__, "exec"), module.__dict__)
        return module
    finally:  # the basicsr stand-ins do not outlive the import
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def load_official(weights: str | Path, src: str | Path | None = None) -> torch.nn.Module:
    """The official GFPGANv1Clean with the checkpoint ``weights`` (``params_ema`` else ``params``, strict), eval."""
    module = _import_official(find_source(src))
    with torch.device("meta"):  # no 86 M-parameter random init: the strict load assigns every tensor
        model = module.GFPGANv1Clean(**CONFIG)
    ckpt = torch.load(weights, map_location="cpu", weights_only=True)
    sd = ckpt["params_ema"] if "params_ema" in ckpt else ckpt["params"]
    model.load_state_dict(sd, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def official_forward(model: torch.nn.Module, x: torch.Tensor, randomize_noise: bool = False) -> torch.Tensor:
    """The image as GFPGANer takes it (``return_rgb=False``, ``[0]``); stored noise unless ``randomize_noise``."""
    return model(x, return_rgb=False, randomize_noise=randomize_noise)[0]
