"""Reading checkpoints safely and loading them strictly.

Generic cleaning lives here (``weights_only`` loading, ``params_ema``/``params`` selection, ``module.`` and
``_orig_mod.`` prefixes); per-architecture key remapping is a pure function passed in by the caller.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Callable, Mapping

import torch

from ..errors import CheckpointError

StateDict = dict[str, torch.Tensor]

_PREFIXES = ("module.", "_orig_mod.")


def read_checkpoint(path: str | Path) -> object:
    """Load a checkpoint file on the CPU without ever running code from it (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes); delete it and fetch it again")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: refused to load: the file holds Python objects other than tensors ({first[:160]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {first[:160]}"
        ) from None


def clean_state_dict(obj: object, path: str | Path, keys: tuple[str, ...] = ("params_ema", "params")) -> StateDict:
    """Pick the weights out of a loaded checkpoint and strip wrapper prefixes.

    Takes the first of ``keys`` present at the top level, else treats ``obj`` itself as a bare state dict.
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: not a checkpoint: it holds a {type(obj).__name__}, not a dict of tensors")
    for key in keys:
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    else:
        if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
            obj = obj["state_dict"]
    out: StateDict = {}
    for name, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: not a state dict: entry {name!r} is a {type(value).__name__}, not a tensor"
            )
        clean = str(name)
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if clean.startswith(prefix):
                    clean = clean[len(prefix):]
                    changed = True
        out[clean] = value
    return out


def load_into(
    model: torch.nn.Module,
    path: str | Path,
    arch: str,
    remap: Callable[[StateDict], StateDict] | None = None,
    keys: tuple[str, ...] = ("params_ema", "params"),
) -> torch.nn.Module:
    """Read ``path``, clean it, optionally remap its keys, and load it into ``model`` strictly.

    Any mismatch is one line naming the file, the architecture and what is wrong.
    """
    state = clean_state_dict(read_checkpoint(path), path, keys)
    if remap is not None:
        state = remap(state)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise CheckpointError(f"{path}: not a {arch} checkpoint: " + ", ".join(parts))
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{path}: not a {arch} checkpoint: {name} has shape {tuple(state[name].shape)}, "
                f"expected {tuple(tensor.shape)}"
            )
    model.load_state_dict(state, strict=True)
    return model
