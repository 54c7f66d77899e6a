"""Keep the calling thread's signal stack (``sigaltstack``) across OpenVINO calls that change it.

OpenVINO 2026.4 gives the thread that compiles a model a signal stack of its own (11,568 bytes, mapped for that
compiled model) and, when the model is released, puts back the stack it found, which by then may be another
released model's, unmapped. Measured: compile A, compile B, release A, compile C, release B, release C leaves the
thread on B's unmapped stack. Python's signal handlers run on the signal stack (``SA_ONSTACK``), so the next
Ctrl-C (SIGINT) or SIGTERM delivered to that thread kills the process with SIGSEGV (the kernel cannot write the
signal frame) instead of ending the run with its clean exit status.

:func:`kept_signal_stack` saves the thread's signal stack before such a call and restores it after, so OpenVINO's
stacks never outlive the call. Linux (glibc) only; elsewhere it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator

__all__ = ["kept_signal_stack", "signal_stack"]


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return libc if hasattr(libc, "sigaltstack") else None


def signal_stack() -> tuple[int, int, int] | None:
    """The calling thread's signal stack as ``(address, flags, size)`` (None where it cannot be read)."""
    libc = _libc()
    if libc is None:
        return None
    st = _StackT()
    if libc.sigaltstack(None, ctypes.byref(st)) != 0:
        return None
    return int(st.ss_sp or 0), int(st.ss_flags), int(st.ss_size)


@contextlib.contextmanager
def kept_signal_stack() -> Iterator[None]:
    """Run the block, then give the calling thread back the signal stack it had before it."""
    libc = _libc()
    saved = _StackT()
    if libc is None or libc.sigaltstack(None, ctypes.byref(saved)) != 0:
        yield
        return
    try:
        yield
    finally:
        libc.sigaltstack(ctypes.byref(saved), None)
