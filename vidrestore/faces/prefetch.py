"""Detection ahead of restoration: the face stage hands each chunk's detection to one worker thread and takes the
results back in order, ``depth`` chunks later, so RetinaFace runs while the restorer works on the chunk before.

Bounded: at most ``depth`` chunks wait (their frames count in :attr:`FaceStage.window`) and one detection runs at a
time, in chunk order, so a detector with state sees the same calls in the same order as without the overlap and the
output is identical. ``depth=0`` detects in the caller's thread, as before. An exception in the worker surfaces at
the chunk it belongs to; closing the stage waits for the one detection in flight (never more).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

__all__ = ["DetectAhead"]

T = TypeVar("T")


class DetectAhead(Generic[T]):
    """``push(job)`` submits ``detect(job)``; it returns the ``(job, result)`` pairs now due, oldest first
    (those more than ``depth`` chunks old); :meth:`drain` returns the rest. A context manager (stops the worker)."""

    def __init__(self, detect: Callable[..., T], depth: int = 1) -> None:
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        self._detect = detect
        self.depth = depth
        self._jobs: deque[tuple[Any, Future[T]]] = deque()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="vidrestore-detect") if depth > 0 else None

    def push(self, job: Any) -> list[tuple[Any, T]]:
        if self._pool is None:
            return [(job, self._detect(job))]
        self._jobs.append((job, self._pool.submit(self._detect, job)))
        return list(self._due(self.depth))

    def drain(self) -> list[tuple[Any, T]]:
        return list(self._due(0))

    def _due(self, keep: int) -> Iterator[tuple[Any, T]]:
        while len(self._jobs) > keep:
            key, fut = self._jobs.popleft()
            yield key, fut.result()

    def close(self) -> None:
        for _, fut in self._jobs:
            fut.cancel()
        self._jobs.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> DetectAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
