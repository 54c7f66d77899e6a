"""Checking weight files: size and sha256 against the registry (md5 where no sha256 is known), and the
per-folder record ``<folder>/.verified.json`` that keeps the sha256 of md5-checked files and which
non-commercial licences were already shown.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from ..util import write_atomic
from .registry import WeightFile

__all__ = ["RECORD_NAME", "VerifyResult", "verify_file", "size_matches", "expected_checks", "read_record", "write_record",
           "record_verified", "hash_into"]

RECORD_NAME: Final = ".verified.json"
_HASH_CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of checking one file against the registry (and the folder's record)."""

    name: str
    path: Path
    ok: bool
    size: int
    sha256: str
    reason: str = ""  # why not ok, or how it was checked



def read_record(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"files": {}, "licences_shown": []}
    if not isinstance(data, dict):
        return {"files": {}, "licences_shown": []}
    files = data.get("files")
    shown = data.get("licences_shown")
    return {
        "files": files if isinstance(files, dict) else {},
        "licences_shown": shown if isinstance(shown, list) else [],
    }



def write_record(folder: Path, record: Mapping[str, Any]) -> None:
    """Write the record atomically; a folder we cannot write to simply keeps no record."""
    try:
        write_atomic(folder / RECORD_NAME, json.dumps(record, indent=1, sort_keys=True) + "\n", fsync=False)
    except OSError:
        pass



def record_verified(folder: Path, name: str, size: int, sha256: str) -> None:
    record = read_record(folder)
    record["files"][name] = {
        "size": size,
        "sha256": sha256,
        "verified": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_record(folder, record)



def expected_checks(entry: WeightFile, folder: Path) -> tuple[int | None, str | None]:
    """Size and sha256 to check a file in ``folder`` against: the registry's, else the folder's record."""
    size, sha = entry.size, entry.sha256
    if sha is None:
        rec = read_record(folder)["files"].get(entry.name)
        if isinstance(rec, dict) and isinstance(rec.get("sha256"), str) and isinstance(rec.get("size"), int):
            size = rec["size"] if size is None else size
            sha = rec["sha256"]
    return size, sha



def size_matches(entry: WeightFile, path: Path) -> tuple[bool, int, int | None]:
    actual = path.stat().st_size
    expected, _ = expected_checks(entry, path.parent)
    return (expected is None or actual == expected), actual, expected



def _hash_file(path: Path, *, md5: bool = False) -> tuple[str, str | None, int]:
    sha = hashlib.sha256()
    m = hashlib.md5(usedforsecurity=False) if md5 else None
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            sha.update(chunk)
            if m is not None:
                m.update(chunk)
            n += len(chunk)
    return sha.hexdigest(), (m.hexdigest() if m is not None else None), n



def hash_into(path: Path, *hashes: Any) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            for h in hashes:
                h.update(chunk)



def verify_file(path: str | os.PathLike[str], entry: WeightFile) -> VerifyResult:
    """Hash ``path`` and compare it with ``entry`` (size, then sha256; md5 where no sha256 is known).

    When only the md5 is known and it matches, the sha256 is recorded in the folder's ``.verified.json``.
    """
    p = Path(path)
    expected_size, expected_sha = expected_checks(entry, p.parent)
    use_md5 = expected_sha is None
    sha, md5, size = _hash_file(p, md5=use_md5)
    if expected_size is not None and size != expected_size:
        return VerifyResult(entry.name, p, False, size, sha, f"size {size:,} bytes, expected {expected_size:,}")
    if expected_sha is not None:
        if sha != expected_sha:
            return VerifyResult(entry.name, p, False, size, sha, f"sha256 {sha}, expected {expected_sha}")
        source = "sha256" if entry.sha256 is not None else f"sha256 recorded in {RECORD_NAME}"
        return VerifyResult(entry.name, p, True, size, sha, source)
    if md5 != entry.md5:
        return VerifyResult(entry.name, p, False, size, sha, f"md5 {md5}, expected {entry.md5}")
    record_verified(p.parent, entry.name, size, sha)
    return VerifyResult(entry.name, p, True, size, sha, f"md5 (sha256 now recorded in {RECORD_NAME})")

