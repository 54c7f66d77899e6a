"""Finding the videos under a folder, naming their outputs, and fingerprinting their content.

Every file under the input folder (recursively; hidden files, the output folder and obvious non-media such as
text, subtitles and images are passed over without opening them) is probed by the run. The output tree mirrors
the input tree; ``.mp4``/``.mkv``/``.mov`` keep their extension, everything else becomes ``.mkv``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterator

KEEP_SUFFIXES = {".mp4", ".mkv", ".mov"}


VIDEO_SUFFIXES = {
    ".mp4", ".m4v", ".mkv", ".mov", ".avi", ".mpg", ".mpeg", ".m2v", ".vob", ".ts", ".m2ts", ".mts", ".webm",
    ".wmv", ".asf", ".flv", ".3gp", ".3g2", ".dv", ".ogv", ".mxf", ".y4m", ".rm", ".rmvb", ".divx", ".mjpeg",
}


# Opened by nothing: FFmpeg would read text as "tty" video and images as one-frame videos.
NOT_MEDIA_SUFFIXES = {
    ".txt", ".md", ".json", ".xml", ".html", ".htm", ".csv", ".log", ".ini", ".cfg", ".yaml", ".yml", ".nfo",
    ".srt", ".ass", ".ssa", ".vtt", ".sub", ".idx", ".sup", ".cue", ".py", ".sh", ".pdf", ".doc", ".docx",
    ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".svg", ".ico", ".zip", ".gz",
    ".tar", ".7z", ".rar", ".part", ".tmp", ".db", ".lnk", ".url", ".pth", ".pt",
}


NOT_VIDEO_FORMATS = {"tty", "image2", "apng", "gif", "ico", "webp_pipe"}


_HASH_CHUNK = 1 << 20


def quick_hash(path: Path) -> str:
    """sha256 of the 8-byte little-endian size, the first MiB and the last MiB (all of a file under 2 MiB)."""
    size = path.stat().st_size
    h = hashlib.sha256(size.to_bytes(8, "little"))
    with open(path, "rb") as f:
        if size <= 2 * _HASH_CHUNK:
            h.update(f.read())
        else:
            h.update(f.read(_HASH_CHUNK))
            f.seek(size - _HASH_CHUNK)
            h.update(f.read(_HASH_CHUNK))
    return h.hexdigest()


def walk(in_dir: Path, out_dir: Path) -> Iterator[Path]:
    skip = out_dir.resolve()
    for root, dirs, files in os.walk(in_dir):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() != skip)
        for name in sorted(files):
            if not name.startswith("."):
                yield here / name


def output_name(rel: Path) -> Path:
    suffix = rel.suffix.lower()
    return rel.with_suffix(suffix) if suffix in KEEP_SUFFIXES else rel.with_suffix(".mkv")
