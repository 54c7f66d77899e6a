"""Devices and precisions: one place that says what this machine can run and refuses the rest in one line."""

from __future__ import annotations

import contextlib

import torch

from .errors import DeviceError

PRECISIONS = ("fp32", "fp16", "bf16")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` → CUDA when available, else the CPU; an unavailable device is a :class:`DeviceError`."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {device!r} requested but this machine has no usable CUDA device; use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise DeviceError(f"device {device!r} requested but MPS is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise DeviceError(f"device {device!r} is not supported; use 'cpu', 'cuda' or 'cuda:N'")
    return dev


def check_precision(precision: str, device: torch.device) -> None:
    """fp32 anywhere; fp16/bf16 (autocast) on CUDA only, bf16 where the GPU has it."""
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return
    if device.type != "cuda":
        raise DeviceError(f"precision {precision} needs a CUDA device (got {device}); use fp32 on the CPU")
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise DeviceError("this GPU does not support bf16; use --precision fp16 or fp32")


def autocast(precision: str) -> contextlib.AbstractContextManager:
    """The context a model runs in: nothing for fp32, CUDA autocast to fp16/bf16 otherwise."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type="cuda", dtype=dtype)
