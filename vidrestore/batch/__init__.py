"""The batch door (``vidrestore batch IN_DIR -o OUT_DIR``): restore every video under a folder, resumably.

Finding the videos: every file under ``IN_DIR`` (recursively; hidden files, ``OUT_DIR`` and obvious non-media
such as text, subtitles and images are passed over without opening them) is probed. A file that does not probe
as a video is a failure when its extension is a video extension (``.mp4``, ``.avi``, …) and silently "not a
video" otherwise. The output tree mirrors the input tree; ``.mp4``/``.mkv``/``.mov`` keep their extension,
everything else becomes ``.mkv``.

The manifest, ``OUT_DIR/vidrestore-manifest.json``, is rewritten atomically after every file. Per input
(keyed by its path relative to ``IN_DIR``) it records size, mtime, a content hash, the options that shape the
output, and the result (``ok`` or ``failed`` with the error line, output path, frames, seconds). The content
hash is the sha256 of the 8-byte little-endian size, the first MiB and the last MiB (the whole file when it is
under 2 MiB): cheap on films, and it changes when a file is replaced or re-copied with other content. A rerun
skips inputs recorded ``ok`` with the same hash and options (and an existing output), and also those recorded
``failed`` because of the file itself (``kind: input``) unless ``retry_failed``; a failure of the surroundings
(``kind: environment``: missing weights, no space, an unwritable folder, no such device) is retried on every
rerun.

Only expected errors (``VidrestoreError``, FFmpeg's and the operating system's) make a ``failed`` row. Anything
else is a bug: the batch stops (``BatchAborted``) with the traceback written to ``OUT_DIR/vidrestore-error-*.log``;
the file is not recorded, so the next run tries it again.

Every file is restored in segments (:mod:`.segments`) in ``OUT_DIR/.vidrestore-work/<key>/``, so a
crash or SIGKILL loses at most the segments in flight: the same command continues after the last finished
segment. Segments run in worker processes (engine ``local``), as Ray tasks (engine ``ray``), or in the calling
thread (engine ``inline``, API only: it accepts stage factories that cannot be pickled). One bad file never stops
the others.
"""

from __future__ import annotations

from ..options import BatchOptions
from .failures import BatchAborted, failure_kind
from .discover import quick_hash
from .manifest import MANIFEST
from .records import BatchProgress, BatchResult, FileResult
from .run import WORK_DIR, restore_folder

__all__ = [
    "MANIFEST", "WORK_DIR", "BatchAborted", "BatchOptions", "BatchProgress", "BatchResult", "FileResult",
    "failure_kind", "quick_hash", "restore_folder",
]
