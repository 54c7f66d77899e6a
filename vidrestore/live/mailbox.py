"""The one-slot hand-off between the live threads: it keeps the newest item, so nothing queues without bound
and a slow consumer skips items instead of falling behind."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Mailbox"]


class Mailbox:
    """A one-slot hand-off between threads that keeps the newest item.

    ``put`` never blocks (it replaces an item not taken yet and counts it in ``dropped``); ``get`` waits for
    an item newer than the last one taken. ``close`` wakes every waiter; ``get`` then returns None once the
    slot is empty.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._full = False
        self.closed = False
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self._cond:
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Any:
        with self._cond:
            self._cond.wait_for(lambda: self._full or self.closed, timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def serve(self, handle: Callable[[Any], None], poll: float = 0.5) -> None:
        """Call ``handle`` on each item taken, until the mailbox is closed and empty (a worker thread's loop)."""
        while True:
            item = self.get(timeout=poll)
            if item is None:
                if self.finished:
                    return
                continue
            handle(item)

    @property
    def finished(self) -> bool:
        with self._cond:
            return self.closed and not self._full
