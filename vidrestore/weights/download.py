"""Downloading weight files: streamed to ``<name>.part``, resumed with an HTTP Range request, retried with
exponential backoff, checked (size and sha256, or md5) and only then renamed into place.

Downloads are serialised per file by a lock file, ``<folder>/.<name>.lock`` (the ``filelock`` package): when two
processes (batch workers, two terminals) ask for the same missing file, one downloads it while the other waits,
then verifies the finished file and uses it. The first download of a non-commercial file prints its licence.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from filelock import FileLock, Timeout

from ..errors import ChecksumError, WeightsError
from .locate import ENV_DIRS, weight_url
from .registry import REGISTRY, WeightFile, lookup
from .verify import expected_checks, hash_into, read_record, record_verified, size_matches, verify_file, write_record

__all__ = ["LOCK_NOTICE_AFTER", "DownloadOptions", "FetchFailed", "download_weights", "download_locked"]

#: Seconds to wait for another process's download before saying so on stderr (then wait on).
LOCK_NOTICE_AFTER: Final = 1.0


@dataclass(frozen=True)
class DownloadOptions:
    """How hard to try. ``backoff`` is the first delay in seconds; it doubles after each failed attempt."""

    retries: int = 4
    backoff: float = 1.0
    timeout: float = 30.0
    chunk_size: int = 1 << 20



class _Retryable(Exception):
    """An attempt failed in a way that another attempt may fix."""



def _show_licence_once(entry: WeightFile, folder: Path) -> None:
    if not entry.non_commercial:
        return
    record = read_record(folder)
    if entry.name in record["licences_shown"]:
        return
    text = entry.notice or f"{entry.name}: {entry.licence}, non-commercial use only. See {entry.licence_url}"
    print(f"vidrestore: licence notice: {text}", file=sys.stderr, flush=True)



def _mark_licence_shown(entry: WeightFile, folder: Path) -> None:
    if not entry.non_commercial:
        return
    record = read_record(folder)
    if entry.name not in record["licences_shown"]:
        record["licences_shown"] = sorted({*record["licences_shown"], entry.name})
        write_record(folder, record)



def _parse_content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200"
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None



class _Bar:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, enabled: bool, name: str) -> None:
        self._progress = None
        self._task = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._progress.add_task(name, total=None)

    def __enter__(self) -> _Bar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def set(self, completed: int, total: int | None) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=completed, total=total)

    def advance(self, n: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)



def _attempt(
    url: str,
    part: Path,
    expected_size: int | None,
    options: DownloadOptions,
    bar: _Bar,
) -> tuple[Any, Any]:
    """One HTTP request, appending to (or restarting) ``part``; returns (sha256, md5) of the whole part."""
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset > expected_size:
        part.unlink()
        offset = 0
    sha = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    if expected_size is not None and offset == expected_size:
        hash_into(part, sha, md5)
        return sha, md5
    req = urllib.request.Request(url, headers={"User-Agent": "vidrestore", "Accept-Encoding": "identity"})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        resp = urllib.request.urlopen(req, timeout=options.timeout)
    except urllib.error.HTTPError as e:
        e.close()  # the error carries the open response
        if e.code == 416 and offset:
            part.unlink(missing_ok=True)  # our partial file does not fit the server's file: start again
            return _attempt(url, part, expected_size, options, bar)
        if e.code in (408, 425, 429) or e.code >= 500:
            raise _Retryable(f"HTTP {e.code} {e.reason}") from e
        raise WeightsError(f"HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, socket.gaierror):  # no name resolution: offline, retrying will not help
            raise WeightsError(f"no network ({reason.strerror or reason})") from e
        raise _Retryable(str(reason) or type(e).__name__) from e
    with resp:
        status = resp.status
        mode = "ab"
        if offset and status == 206:
            start = _parse_content_range_start(resp.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Retryable(f"server answered a range request for byte {offset} with {start}")
            hash_into(part, sha, md5)
        else:
            offset = 0
            mode = "wb"  # a full answer (a server that ignores Range, or a fresh download)
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else expected_size
        bar.set(offset, total)
        received = 0
        try:
            out = open(part, mode)
        except OSError as e:
            raise WeightsError(f"cannot write {part}: {e.strerror or e}") from e
        with out:
            while True:
                try:
                    chunk = resp.read(options.chunk_size)
                except (OSError, http.client.HTTPException) as e:
                    raise _Retryable(f"connection lost after {offset + received:,} bytes ({type(e).__name__})") from e
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as e:
                    raise WeightsError(f"cannot write {part}: {e.strerror or e}") from e
                sha.update(chunk)
                md5.update(chunk)
                received += len(chunk)
                bar.advance(len(chunk))
                if expected_size is not None and offset + received > expected_size:
                    return sha, md5  # more bytes than the published file has: the caller's size check refuses it
    have = offset + received
    if total is not None and have < total:
        raise _Retryable(f"connection closed after {have:,} of {total:,} bytes")
    return sha, md5



class FetchFailed(Exception):
    """A download that did not produce the published file; ``reason`` is short, ``checksum`` says which kind."""

    def __init__(self, reason: str, *, checksum: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.checksum = checksum



def download_weights(
    entry: WeightFile | str,
    folder: str | os.PathLike[str],
    *,
    progress: bool | None = None,
    options: DownloadOptions | None = None,
    registry: Mapping[str, WeightFile] = REGISTRY,
) -> Path:
    """Download ``entry`` into ``folder`` (resuming a ``.part`` there), check it and rename it into place.

    Holds ``<folder>/.<name>.lock`` throughout: a second process asking for the same file waits, then finds the
    finished file, verifies it (sha256) and returns it without downloading again. An existing file of that name
    in ``folder`` is replaced only after the new one has passed its checks.
    """
    if isinstance(entry, str):
        entry = lookup(entry, registry)
    folder = Path(folder)
    url = weight_url(entry)
    try:
        return download_locked(entry, folder, progress, options or DownloadOptions())
    except FetchFailed as f:
        if f.checksum:
            raise ChecksumError(
                f"downloaded {entry.name} from {url} is not the published file ({f.reason}); the partial file was "
                f"deleted; try again later or download it yourself into {folder}"
            ) from None
        raise WeightsError(
            f"cannot download {entry.name} from {url}: {f.reason}; download it yourself and put it in {folder} "
            f"(or set {ENV_DIRS} to a folder that holds it)"
        ) from f.__cause__



def _lock(folder: Path, name: str) -> FileLock:
    """The per-file lock, acquired; says on stderr when it has to wait for another process."""
    lock = FileLock(str(folder / f".{name}.lock"))
    try:
        lock.acquire(timeout=LOCK_NOTICE_AFTER)
    except Timeout:
        print(
            f"vidrestore: waiting for another process that is downloading {name} into {folder}",
            file=sys.stderr, flush=True,
        )
        lock.acquire()  # blocks until the other process finishes (the OS frees the lock if it dies)
    except OSError as e:
        raise FetchFailed(f"cannot create the lock file in {folder}: {e.strerror or e}") from e
    return lock



def _finished_copy(entry: WeightFile, final: Path) -> bool:
    """True when ``final`` exists and is the published file (size first, then the full hash)."""
    if not final.is_file():
        return False
    ok, _, _ = size_matches(entry, final)
    return ok and verify_file(final, entry).ok



def download_locked(entry: WeightFile, folder: Path, progress: bool | None, opts: DownloadOptions) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsError(f"cannot create the weights folder {folder}: {e.strerror or e}") from e
    final = folder / entry.name
    lock = _lock(folder, entry.name)
    try:
        if _finished_copy(entry, final):
            return final  # another process downloaded it while we waited
        return _download(entry, folder, progress, opts)
    finally:
        lock.release()



def _download(entry: WeightFile, folder: Path, progress: bool | None, opts: DownloadOptions) -> Path:
    """Fetch, check and rename into place; the caller holds the lock. Raises :class:`FetchFailed`."""
    url = weight_url(entry)
    final = folder / entry.name
    part = folder / (entry.name + ".part")
    expected_size, expected_sha = expected_checks(entry, folder)
    _show_licence_once(entry, folder)
    show = progress if progress is not None else sys.stderr.isatty()

    last = "no attempt made"
    with _Bar(bool(show), entry.name) as bar:
        for attempt in range(max(1, opts.retries + 1)):
            if attempt:
                time.sleep(opts.backoff * 2 ** (attempt - 1))
            try:
                sha, md5 = _attempt(url, part, expected_size, opts, bar)
                break
            except _Retryable as e:
                last = str(e)
            except WeightsError as e:
                raise FetchFailed(str(e)) from e
        else:
            raise FetchFailed(f"{last} (after {max(1, opts.retries + 1)} attempts)")

    size = part.stat().st_size
    digest = sha.hexdigest()
    problem = ""
    if expected_size is not None and size != expected_size:
        problem = f"{size:,} bytes, expected {expected_size:,}"
    elif expected_sha is not None and digest != expected_sha:
        problem = f"sha256 {digest}, expected {expected_sha}"
    elif expected_sha is None and entry.md5 is not None and md5.hexdigest() != entry.md5:
        problem = f"md5 {md5.hexdigest()}, expected {entry.md5}"
    if problem:
        part.unlink(missing_ok=True)
        raise FetchFailed(problem, checksum=True)
    os.replace(part, final)
    if expected_sha is None or entry.sha256 is None:
        record_verified(folder, entry.name, size, digest)
    _mark_licence_shown(entry, folder)
    return final

