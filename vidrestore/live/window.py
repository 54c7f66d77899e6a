"""The OpenCV preview window of ``vidrestore live`` (one job: show frames, report keys).

opencv-python's highgui (Qt 5 with the xcb platform plugin only) **aborts the whole process** when
``cv2.namedWindow`` runs without an X display, and that abort cannot be caught. So nothing here touches
highgui before :func:`display_problem` has said a display exists: on Linux and the BSDs that means
``DISPLAY`` is set (an X server, or XWayland in a Wayland session; ``WAYLAND_DISPLAY`` alone is not
enough for the xcb plugin). macOS and Windows always have a display.

Keys: space toggles the before/after split, ``s`` saves a PNG snapshot, ``r`` starts/stops recording,
``q`` or Esc quits; closing the window quits too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import numpy as np

__all__ = ["KEYS", "PreviewWindow", "display_problem"]

#: key code → action name (cv2.waitKey codes, masked to 8 bits)
KEYS: Mapping[int, str] = {32: "split", ord("s"): "snapshot", ord("S"): "snapshot", ord("r"): "record",
                           ord("R"): "record", ord("q"): "quit", ord("Q"): "quit", 27: "quit"}


def display_problem(environ: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """None when a window can be opened here, else why not (one line, without advice)."""
    env = os.environ if environ is None else environ
    plat = sys.platform if platform is None else platform
    if plat.startswith(("win", "darwin", "cygwin")):
        return None
    if env.get("DISPLAY"):
        return None
    if env.get("WAYLAND_DISPLAY"):
        return "WAYLAND_DISPLAY is set but DISPLAY is not (OpenCV's window needs X11 or XWayland)"
    return "no display (DISPLAY is not set)"


def _xcb_conflict() -> bool:
    """True when PyAV's bundled libxcb-shape was loaded before OpenCV's (Linux wheels).

    Both wheels bundle ``libxcb-shape``/``-shm``/``-xfixes`` under the same hashed names; whichever is loaded
    first serves both, and PyAV's copies are linked to PyAV's own libxcb, so OpenCV's Qt window then hangs in
    ``cv2.namedWindow``. Importing ``cv2`` before ``av`` (``vidrestore/__init__.py`` does) avoids it.
    """
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any("av.libs/libxcb-shape" in line for line in maps)
    except OSError:
        return False


class PreviewWindow:
    """One resizable OpenCV window. Call :meth:`show` from the main thread (highgui is not thread-safe)."""

    def __init__(self, title: str = "vidrestore live") -> None:
        problem = display_problem()
        if problem is not None:  # never reach cv2.namedWindow without a display: it aborts the process
            from ..errors import UsageError

            raise UsageError(f"cannot open a window: {problem}; use --serve [HOST:]PORT")
        import cv2

        if _xcb_conflict():
            from ..errors import VidrestoreError

            raise VidrestoreError("cannot open a window: PyAV was loaded before OpenCV in this process and its "
                                  "bundled libxcb would hang the window; import cv2 before av (or use --serve)")
        self._cv2 = cv2
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
        self._sized = False
        self._open = True

    def show(self, rgb: np.ndarray, wait_ms: int = 1) -> str | None:
        """Show an RGB frame; returns the action of a key pressed meanwhile (see :data:`KEYS`), or None."""
        cv2 = self._cv2
        if not self._sized:
            cv2.resizeWindow(self.title, int(rgb.shape[1]), int(rgb.shape[0]))
            self._sized = True
        cv2.imshow(self.title, np.ascontiguousarray(rgb[..., ::-1]))
        return self.poll(wait_ms)

    def poll(self, wait_ms: int = 1) -> str | None:
        """Process window events for ``wait_ms``; returns a key's action, or ``"quit"`` if the window was closed."""
        cv2 = self._cv2
        key = cv2.waitKey(max(1, int(wait_ms)))
        if key != -1:
            action = KEYS.get(key & 0xFF)
            if action is not None:
                return action
        try:
            if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                return "quit"
        except cv2.error:
            return "quit"
        return None

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._cv2.destroyWindow(self.title)
                self._cv2.waitKey(1)
            except self._cv2.error:
                pass
