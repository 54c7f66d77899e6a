"""The manifest, ``OUT_DIR/vidrestore-manifest.json``: per input its size, mtime, content hash, the options that
shape its output, and the result; rewritten atomically after every file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..util import write_atomic
from .discover import quick_hash
from .records import FileResult

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


def new_entry(path: Path, rel: str, key: str, fingerprint: dict[str, Any], output: Path,
              ) -> tuple[dict[str, Any], FileResult | None]:
    """The manifest entry of one input (size, mtime, content hash, output), and a failed result when the file
    cannot be read."""
    entry: dict[str, Any] = {"input": rel, "options": fingerprint, "options_key": key}
    try:
        st = path.stat()
        entry.update(size=st.st_size, mtime=st.st_mtime, hash=quick_hash(path), output=str(output))
    except OSError as exc:
        return entry, FileResult(rel, "failed", error=f"{path}: {exc.strerror or exc}", kind="environment")
    return entry, None


def earlier(manifest: Manifest, entry: dict[str, Any], retry_failed: bool, frames: int | None = None,
            ) -> FileResult | None:
    """What an earlier run settled for this input with the same content and options: ``skipped`` (done, its output
    still there; ``frames`` or the recorded count) or ``failed-earlier`` (the file's fault, unless
    ``retry_failed``); None when there is work to do."""
    rel, output = entry["input"], Path(entry["output"])
    old = manifest.entries.get(rel)
    same = bool(old) and old.get("hash") == entry["hash"] and old.get("options_key") == entry["options_key"]
    if same and old.get("status") == "ok" and output.is_file():
        done = int(old.get("frames", 0)) if frames is None else frames
        return FileResult(rel, "skipped", output=str(output), frames=done, seconds=float(old.get("seconds", 0.0)))
    if same and old.get("status") == "failed" and not retry_failed and old.get("kind") != "environment":
        return FileResult(rel, "failed-earlier", error=old.get("error"), kind=old.get("kind"))
    return None


def occupied(manifest: Manifest, entry: dict[str, Any], overwrite: bool) -> FileResult | None:
    """A failure when the output exists and is neither this input's (recorded by an earlier run) nor to be
    overwritten."""
    old = manifest.entries.get(entry["input"])
    output = entry["output"]
    ours = bool(old) and old.get("output") == output
    if Path(output).exists() and not (overwrite or ours):
        return FileResult(entry["input"], "failed", error=f"{output} already exists; pass --overwrite to replace it",
                          kind="environment")
    return None
