"""vidrestore: restore old videos and live webcam streams.

The public API is what ``__all__`` lists; everything else is private and may change. The doors
(``restore_video``; ``restore_image``, ``restore_folder`` and ``run_live``, imported on first use), the model
entry points (``load_restorer``, ``load_detector``, ``align_face``, imported on first use, so ``import vidrestore``
and the command line start without loading torch), ``Face``, the option dataclasses (``options``) and the
exception tree (``errors``).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# OpenCV before PyAV: both wheels bundle libxcb-shape/-shm/-xfixes under the same file names; if PyAV's copies
# load first, OpenCV's window hangs in cv2.namedWindow (vidrestore live).
import cv2  # noqa: E402,F401,I001

from . import errors, options
from .errors import VidrestoreError
from .faces.face import Face
from .file import RestoreStats, restore_video
from .options import RestoreOptions

__all__ = [
    "Face",
    "RestoreOptions",
    "RestoreStats",
    "VidrestoreError",
    "__version__",
    "align_face",
    "errors",
    "load_detector",
    "load_restorer",
    "options",
    "restore_folder",
    "restore_image",
    "restore_video",
    "run_live",
]

_LAZY = {
    "load_restorer": ("vidrestore.restorers", "load_restorer"),
    "load_detector": ("vidrestore.faces.detect", "load_detector"),
    "align_face": ("vidrestore.faces.align", "align_face"),
    "restore_image": ("vidrestore.photo", "restore_image"),
    "restore_folder": ("vidrestore.batch", "restore_folder"),
    "run_live": ("vidrestore.live", "run_live"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'vidrestore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
