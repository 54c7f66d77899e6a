"""vidrestore: restore old videos and live webcam streams.

The public API is what ``__all__`` lists; everything else is private and may change.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import errors
from .errors import VidrestoreError
from .faces.face import Face
from .pipeline import RestoreOptions, RestoreStats, restore_video

__all__ = [
    "Face",
    "RestoreOptions",
    "RestoreStats",
    "VidrestoreError",
    "__version__",
    "errors",
    "restore_video",
]
