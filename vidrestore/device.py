"""Devices and precisions: one place that says what this machine can run and refuses the rest in one line.

Devices: ``cpu``, ``cuda``/``cuda:N`` (NVIDIA), ``mps`` (Apple Silicon, where torch has it) for the torch backend;
``gpu``/``gpu.N`` is an Intel GPU driven by OpenVINO (its ``GPU`` plugin: see :func:`openvino_device`; the tensors
around it stay on the CPU).

Precisions: ``fp32`` everywhere (the exact default); ``fp16`` on CUDA, MPS and Intel GPUs; ``bf16`` on CUDA GPUs
that have it and on CPUs with native bf16 instructions (AVX512-BF16 or AMX: :func:`cpu_has_bf16`), where both torch
autocast and OpenVINO run it. Anything else is refused with one line (:class:`DeviceError`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from .errors import DeviceError

PRECISIONS = ("fp32", "fp16", "bf16")
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where there is no /proc/cpuinfo, e.g. macOS)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX), read from /proc/cpuinfo, else from torch's
    oneDNN check (other systems). Without it bf16 is emulated: slower than fp32 and less exact."""
    flags = cpu_flags()
    if flags:
        return any(f in flags for f in _BF16_FLAGS)
    check = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except (RuntimeError, AttributeError):
        return False


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def is_openvino_gpu(device: object) -> bool:
    """``gpu``/``gpu.N``/``GPU``: an Intel GPU through OpenVINO (not a torch device)."""
    text = str(device).lower()
    return text == "gpu" or text.startswith("gpu.")


def openvino_device(device: str | torch.device | None) -> str:
    """The OpenVINO device name for a vidrestore device: ``CPU`` for the CPU, ``GPU``/``GPU.N`` for an Intel GPU."""
    if device is None or str(device).lower() == "cpu":
        return "CPU"
    if is_openvino_gpu(device):
        return str(device).upper()
    raise DeviceError(f"the OpenVINO backend runs on 'cpu' or an Intel 'gpu', not {str(device)!r}; use --backend torch")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` → CUDA when available, else the CPU; an unavailable device is a :class:`DeviceError`.

    An Intel ``gpu`` (OpenVINO) resolves to the CPU: that is where the tensors around the network live."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if is_openvino_gpu(device):
        return torch.device("cpu")
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
        if not mps_available():
            raise DeviceError(f"device {device!r} requested but MPS (Apple Silicon) is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise DeviceError(f"device {device!r} is not supported; use 'cpu', 'cuda', 'cuda:N', 'mps' or 'gpu' (Intel, OpenVINO)")
    return dev


def check_precision(precision: str, device: torch.device | str) -> None:
    """fp32 anywhere; fp16 on CUDA, MPS and Intel GPUs; bf16 on CUDA GPUs and CPUs that have it."""
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return
    if is_openvino_gpu(device):
        if precision == "bf16":
            raise DeviceError("Intel GPUs run fp16 or fp32, not bf16; use --precision fp16")
        return
    kind = torch.device(device).type
    if kind == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise DeviceError("this GPU does not support bf16; use --precision fp16 or fp32")
    elif kind == "mps":
        if precision == "bf16":
            raise DeviceError("bf16 is not offered on MPS; use --precision fp16 or fp32")
    elif precision == "fp16":
        raise DeviceError("precision fp16 needs a GPU (CUDA, MPS or an Intel gpu); on the CPU use fp32 or bf16")
    elif not cpu_has_bf16():
        raise DeviceError("this CPU has no native bf16 (AVX512-BF16 or AMX); use --precision fp32")


def autocast(precision: str, device_type: str | None = None) -> contextlib.AbstractContextManager:
    """The context a torch model runs in: nothing for fp32, autocast to fp16/bf16 on ``device_type`` otherwise
    (``None``: CUDA when this machine has it, else the CPU)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if device_type is None:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device_type, dtype=dtype)
