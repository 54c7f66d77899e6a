"""How a failure is judged: the file's fault (recorded, not retried), the surroundings' (retried on every
rerun), or nobody's expectation (a bug: the batch stops with the traceback in a log file)."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import av

from ..errors import CheckpointError, DeviceError, OutputError, VidrestoreError, WeightsError

def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    if isinstance(exc, VidrestoreError):
        return line or type(exc).__name__
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


_ENV_ERRORS = (WeightsError, DeviceError, OutputError, CheckpointError)


_ENV_ERRNO = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOMEM}


class BatchAborted(VidrestoreError):
    """An unexpected error (a bug, or out of memory) stopped the batch; ``log`` holds its traceback."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


def failure_kind(exc: BaseException) -> str | None:
    """``environment`` (the file is not to blame: retried on rerun), ``input`` (the file itself), or None for an
    error nobody expects (a bug, ``MemoryError``), which stops the batch."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        # the chain a traceback shows: the cause, else the context unless ``raise ... from None`` hid it
        e = e.__cause__ if e.__cause__ is not None else None if e.__suppress_context__ else e.__context__
    if any(isinstance(c, _ENV_ERRORS) for c in chain):
        return "environment"
    if any(isinstance(c, OSError) and (not isinstance(c, av.FFmpegError) or c.errno in _ENV_ERRNO) for c in chain):
        return "environment"
    if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError: the device, not the file
        return "environment"
    if isinstance(exc, (VidrestoreError, av.FFmpegError)):
        return "input"
    return None


def _write_log(out_dir: Path, rel: str, exc: BaseException) -> Path | None:
    import traceback

    path = out_dir / f"vidrestore-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        path.write_text(f"vidrestore batch stopped on {rel}\n\n{text}")
    except OSError:
        return None
    return path


def aborted(out_dir: Path, rel: str, exc: BaseException) -> BatchAborted:
    log = _write_log(out_dir, rel, exc)
    where = f"; the traceback is in {log}" if log else ""
    return BatchAborted(f"internal error on {rel}: {one_line(exc)}{where} (please report it); "
                        "the batch stopped, rerun to continue", log)
