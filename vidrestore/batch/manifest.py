"""The manifest, ``OUT_DIR/vidrestore-manifest.json``: per input its size, mtime, content hash, the options that
shape its output, and the result; rewritten atomically after every file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..util import write_atomic

if TYPE_CHECKING:
    from .run import FileResult

MANIFEST = "vidrestore-manifest.json"


class Manifest:
    """The JSON record of a batch folder; ``save()`` replaces the file atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                self.entries = dict(data.get("files", {}))
            except (ValueError, AttributeError):
                raise UsageError(f"{path} is not a vidrestore manifest; move it away or choose another -o") from None

    def save(self, in_dir: Path) -> None:
        data = {
            "version": 1,
            "input": str(in_dir),
            "hash": "sha256 of the 8-byte little-endian size + first MiB + last MiB (whole file if under 2 MiB)",
            "files": self.entries,
        }
        write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True).encode())


def record(manifest: Manifest, rel: str, entry: dict[str, Any], fr: FileResult, in_dir: Path) -> None:
    entry = dict(entry)
    entry.update(
        status="ok" if fr.status == "ok" else "failed",
        error=fr.error,
        kind=fr.kind,
        output=fr.output,
        frames=fr.frames,
        seconds=round(fr.seconds, 3),
        segments=fr.segments,
        resumed_segments=fr.resumed_segments,
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    manifest.entries[rel] = entry
    manifest.save(in_dir)
