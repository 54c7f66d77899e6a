"""The run's threads and the bounded queues between them: one stop signal, the first failure kept.

Every queue wait checks the stop signal every 0.1 s, so any thread's failure (or Ctrl-C in the watching
thread) ends every wait at once.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterable, Iterator

QUEUE_FRAMES = 8
DONE = object()  # the end marker put after the last item
JOIN_S = 5.0  # how long a stopping run waits for its decode and encode threads (each checks every 0.1 s)


class Cancelled(Exception):
    """Raised inside a worker whose run was stopped by another thread (not an error of its own)."""


class Control:
    """The run's one stop signal and its first failure: any thread may fail; every queue wait sees the stop."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None and not isinstance(exc, Cancelled):
                self.error = exc
        self.stop.set()


class Worker(threading.Thread):
    """A daemon thread that records the exception it dies of and, given a ``Control``, stops the run with it."""

    def __init__(self, target: Callable[[], None], name: str, control: Control | None = None) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.control = control
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
            if self.control is not None:
                self.control.fail(exc)


def put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` into the bounded ``q``; False (not put) as soon as the run is stopped."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def drain(q: queue.Queue, stop: threading.Event, producer: Worker | None = None) -> Iterator[object]:
    """Items of ``q`` until the end marker. A stop raises ``Cancelled`` (the consumer must not take the
    stream for complete); the producer thread's death raises its error, or ends the items if it had none."""
    while True:
        if stop.is_set():
            raise Cancelled()
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            if producer is not None and not producer.is_alive() and q.empty():
                if producer.error is not None and not isinstance(producer.error, Cancelled):
                    raise producer.error
                if stop.is_set() or producer.error is not None:
                    raise Cancelled() from None
                return
            continue
        if item is DONE:
            return
        yield item


def join_all(threads: Iterable[threading.Thread], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for thread in threads:
        if thread.ident is not None:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
