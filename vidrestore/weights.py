"""The registry of known weight files, where to find them, how to download and verify them.

Lookup order for :func:`resolve_weights` (the first folder that holds a file of that name decides):

1. an explicit path to an existing file;
2. the ``weights_dir`` argument, or else every folder in the environment variable ``VIDRESTORE_WEIGHTS``
   (several folders separated by :data:`os.pathsep`, so an existing ``GFPGAN/gfpgan/weights`` and
   ``facexlib/weights`` can be used as they are);
3. the checkout's ``weights/`` folder (only when it exists, i.e. in a source checkout);
4. the user cache, ``$XDG_CACHE_HOME/vidrestore/weights`` or ``~/.cache/vidrestore/weights``.

A file found there is accepted when its size is the registry's (a cheap check); the full sha256 check is
:func:`verify_file` (``vidrestore weights verify``) and runs after every download. A missing file is
downloaded into the first writable folder of the same order: streamed to ``<name>.part``, resumed with an
HTTP Range request, retried with exponential backoff, checked (size and sha256) and only then renamed into
place. ``VIDRESTORE_WEIGHTS_URL`` replaces everything before the file name in each URL (a mirror, or a
local server in tests).

Downloads are serialised per file by a lock file, ``<folder>/.<name>.lock`` (the ``filelock`` package): when two
processes (batch workers, two terminals) ask for the same missing file, one downloads it while the other waits,
then verifies the finished file and uses it. :func:`resolve_many` resolves every file a run needs before any
work starts and names all missing ones in one message.

Where the registry knows no sha256 (``RestoreFormer.pth``) the md5 is checked instead, and the sha256 of
the first file that passes is recorded in ``<folder>/.verified.json``; later checks use that sha256. The same
record remembers which non-commercial licences were already shown.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from filelock import FileLock, Timeout

from .errors import ChecksumError, WeightsError

__all__ = [
    "WeightFile",
    "DownloadOptions",
    "VerifyResult",
    "WEIGHT_FILES",
    "REGISTRY",
    "ENV_DIRS",
    "ENV_URL",
    "RECORD_NAME",
    "CHECKOUT_WEIGHTS_DIR",
    "search_dirs",
    "cache_dir",
    "weight_url",
    "lookup",
    "find_weights",
    "download_dir",
    "resolve_weights",
    "resolve_many",
    "download_weights",
    "verify_file",
    "manifest_dict",
    "manifest_json",
]

ENV_DIRS: Final = "VIDRESTORE_WEIGHTS"
ENV_URL: Final = "VIDRESTORE_WEIGHTS_URL"
RECORD_NAME: Final = ".verified.json"
#: The checkout's ``weights/`` folder; searched only when it exists. Tests point this elsewhere.
CHECKOUT_WEIGHTS_DIR: Final = Path(__file__).resolve().parents[1] / "weights"
_HASH_CHUNK: Final = 1 << 20
#: Seconds to wait for another process's download before saying so on stderr (then wait on).
LOCK_NOTICE_AFTER: Final = 1.0


@dataclass(frozen=True)
class WeightFile:
    """One published weight file. ``size``/``sha256`` are ``None`` where no trustworthy value is known."""

    name: str
    url: str
    size: int | None
    sha256: str | None
    licence: str
    licence_url: str
    non_commercial: bool = False
    md5: str | None = None
    used_by: str = ""
    notice: str = ""  # printed once, on the first download of a non-commercial file

    def __post_init__(self) -> None:
        if self.sha256 is None and self.md5 is None:
            raise ValueError(f"{self.name}: a weight file needs a sha256 or at least an md5")
        if self.url.rsplit("/", 1)[-1] != self.name:
            raise ValueError(f"{self.name}: the URL must end with the file name ({self.url})")


@dataclass(frozen=True)
class DownloadOptions:
    """How hard to try. ``backoff`` is the first delay in seconds; it doubles after each failed attempt."""

    retries: int = 4
    backoff: float = 1.0
    timeout: float = 30.0
    chunk_size: int = 1 << 20


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of checking one file against the registry (and the folder's record)."""

    name: str
    path: Path
    ok: bool
    size: int
    sha256: str
    reason: str = ""  # why not ok, or how it was checked


_GFPGAN_LICENCE = "Apache-2.0 (GFPGAN); trained on FFHQ (CC BY-NC-SA 4.0)"
_GFPGAN_LICENCE_URL = "https://github.com/TencentARC/GFPGAN/blob/master/LICENSE"
_FACEXLIB_LICENCE = "MIT (facexlib)"
_FACEXLIB_LICENCE_URL = "https://github.com/xinntao/facexlib/blob/master/LICENSE"
_REALESRGAN_LICENCE = "BSD-3-Clause (Real-ESRGAN; no separate weight licence)"
_REALESRGAN_LICENCE_URL = "https://github.com/xinntao/Real-ESRGAN/blob/master/LICENSE"
_CODEFORMER_NOTICE = (
    "codeformer.pth is covered by the NTU S-Lab License 1.0 (Copyright 2022 S-Lab): redistribution and use, "
    "with or without modification, are permitted for NON-COMMERCIAL purposes only; keep the copyright notice, "
    "conditions and disclaimer; the contributors' names may not be used to endorse derived products; provided "
    "AS IS, without warranty. For commercial use contact the authors. "
    "Full text: https://github.com/sczhou/CodeFormer/blob/master/LICENSE"
)

#: Every file vidrestore knows, in the order ``vidrestore weights list`` shows them.
WEIGHT_FILES: Final[tuple[WeightFile, ...]] = (
    WeightFile(
        name="GFPGANv1.3.pth",
        url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.3.pth",
        size=348_632_874,
        sha256="c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70",
        licence=_GFPGAN_LICENCE,
        licence_url=_GFPGAN_LICENCE_URL,
        used_by="restorer gfpgan v1.3",
    ),
    WeightFile(
        name="GFPGANv1.4.pth",
        url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
        size=348_632_874,
        sha256="e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad",
        licence=_GFPGAN_LICENCE,
        licence_url=_GFPGAN_LICENCE_URL,
        used_by="restorer gfpgan v1.4",
    ),
    WeightFile(
        name="detection_Resnet50_Final.pth",
        url="https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
        size=109_497_761,
        sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
        licence=_FACEXLIB_LICENCE,
        licence_url=_FACEXLIB_LICENCE_URL,
        used_by="face detector RetinaFace ResNet-50",
    ),
    WeightFile(
        name="detection_mobilenet0.25_Final.pth",
        url="https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth",
        size=1_789_735,
        sha256="2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
        licence=_FACEXLIB_LICENCE,
        licence_url=_FACEXLIB_LICENCE_URL,
        used_by="face detector RetinaFace MobileNet-0.25",
    ),
    WeightFile(
        name="parsing_parsenet.pth",
        url="https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth",
        size=85_331_193,
        sha256="3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
        licence=_FACEXLIB_LICENCE,
        licence_url=_FACEXLIB_LICENCE_URL,
        used_by="face parsing mask (paste-back)",
    ),
    WeightFile(
        name="RealESRGAN_x2plus.pth",
        url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth",
        size=67_061_725,
        sha256="49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
        licence=_REALESRGAN_LICENCE,
        licence_url=_REALESRGAN_LICENCE_URL,
        used_by="background upscaler x2",
    ),
    WeightFile(
        name="RealESRGAN_x4plus.pth",
        url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
        size=67_040_989,
        sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
        licence=_REALESRGAN_LICENCE,
        licence_url=_REALESRGAN_LICENCE_URL,
        used_by="background upscaler x4",
    ),
    WeightFile(
        name="codeformer.pth",
        url="https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth",
        size=376_637_898,
        sha256="1009e537e0c2a07d4cabce6355f53cb66767cd4b4297ec7a4a64ca4b8a5684b7",
        licence="NTU S-Lab License 1.0",
        licence_url="https://github.com/sczhou/CodeFormer/blob/master/LICENSE",
        non_commercial=True,
        used_by="restorer codeformer",
        notice=_CODEFORMER_NOTICE,
    ),
    WeightFile(
        name="RestoreFormer.pth",
        url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.4/RestoreFormer.pth",
        size=None,
        sha256=None,
        licence=_GFPGAN_LICENCE,
        licence_url=_GFPGAN_LICENCE_URL,
        md5="eaeeff6c4a1caa1673977cb374e6f699",
        used_by="restorer restoreformer",
    ),
)

#: Read-only name → :class:`WeightFile` view of :data:`WEIGHT_FILES`.
REGISTRY: Final[Mapping[str, WeightFile]] = MappingProxyType({w.name: w for w in WEIGHT_FILES})


# --------------------------------------------------------------------------------------------------------------
# Folders and records


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vidrestore/weights``, or ``~/.cache/vidrestore/weights``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "vidrestore" / "weights"


def _explicit_dirs(weights_dir: str | os.PathLike[str] | None) -> tuple[Path, ...]:
    if weights_dir is not None:
        return (Path(weights_dir).expanduser(),)
    env = os.environ.get(ENV_DIRS, "")
    return tuple(Path(p).expanduser() for p in env.split(os.pathsep) if p.strip())


def search_dirs(weights_dir: str | os.PathLike[str] | None = None) -> tuple[Path, ...]:
    """The folders searched, in order (see the module docstring); duplicates removed."""
    dirs = list(_explicit_dirs(weights_dir))
    checkout = CHECKOUT_WEIGHTS_DIR
    if checkout.is_dir():
        dirs.append(checkout)
    dirs.append(cache_dir())
    seen: set[str] = set()
    out: list[Path] = []
    for d in dirs:
        key = os.path.normcase(os.path.abspath(d))
        if key not in seen:
            seen.add(key)
            out.append(d)
    return tuple(out)


def _writable_dir(d: Path) -> bool:
    """True when ``d`` exists (or could be created) and files can be written into it."""
    if d.is_dir():
        return os.access(d, os.W_OK | os.X_OK)
    if d.exists():
        return False
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(d, os.W_OK | os.X_OK)


def download_dir(weights_dir: str | os.PathLike[str] | None) -> Path:
    """The first writable folder of the lookup order (the checkout's only when it already exists)."""
    candidates = list(_explicit_dirs(weights_dir))
    if CHECKOUT_WEIGHTS_DIR.is_dir():
        candidates.append(CHECKOUT_WEIGHTS_DIR)
    candidates.append(cache_dir())
    for d in candidates:
        if _writable_dir(d):
            return d
    raise WeightsError(
        "no writable folder for weight files among " + ", ".join(str(d) for d in candidates)
        + f"; set {ENV_DIRS} or pass --weights-dir with a writable folder"
    )


def _read_record(folder: Path) -> dict[str, Any]:
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


def _write_record(folder: Path, record: Mapping[str, Any]) -> None:
    """Write the record atomically; a folder we cannot write to simply keeps no record."""
    tmp = folder / (RECORD_NAME + f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, folder / RECORD_NAME)
    except OSError:
        tmp.unlink(missing_ok=True)


def _record_verified(folder: Path, name: str, size: int, sha256: str) -> None:
    record = _read_record(folder)
    record["files"][name] = {
        "size": size,
        "sha256": sha256,
        "verified": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _write_record(folder, record)


def _expected(entry: WeightFile, folder: Path) -> tuple[int | None, str | None]:
    """Size and sha256 to check a file in ``folder`` against: the registry's, else the folder's record."""
    size, sha = entry.size, entry.sha256
    if sha is None:
        rec = _read_record(folder)["files"].get(entry.name)
        if isinstance(rec, dict) and isinstance(rec.get("sha256"), str) and isinstance(rec.get("size"), int):
            size = rec["size"] if size is None else size
            sha = rec["sha256"]
    return size, sha


# --------------------------------------------------------------------------------------------------------------
# Lookup


def weight_url(entry: WeightFile) -> str:
    """The URL to fetch ``entry`` from, honouring ``VIDRESTORE_WEIGHTS_URL``."""
    base = os.environ.get(ENV_URL, "").strip()
    if base:
        return base.rstrip("/") + "/" + entry.name
    return entry.url


def lookup(name: str, registry: Mapping[str, WeightFile] = REGISTRY) -> WeightFile:
    """The registry entry for ``name`` (the ``.pth`` suffix may be left out)."""
    entry = registry.get(name) or registry.get(name + ".pth")
    if entry is None:
        raise WeightsError(f"unknown weight file {name!r}; known files: {', '.join(registry)}")
    return entry


def find_weights(
    name: str,
    weights_dir: str | os.PathLike[str] | None = None,
    *,
    registry: Mapping[str, WeightFile] = REGISTRY,
) -> Path | None:
    """The first file called ``name`` in the search folders, or ``None``; no size check."""
    entry = lookup(name, registry)
    for d in search_dirs(weights_dir):
        p = d / entry.name
        if p.is_file():
            return p
    return None


def _size_matches(entry: WeightFile, path: Path) -> tuple[bool, int, int | None]:
    actual = path.stat().st_size
    expected, _ = _expected(entry, path.parent)
    return (expected is None or actual == expected), actual, expected


def resolve_weights(
    name_or_path: str | os.PathLike[str],
    weights_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool | None = None,
    *,
    registry: Mapping[str, WeightFile] = REGISTRY,
    options: DownloadOptions | None = None,
) -> Path:
    """A local path to the weight file, downloading it when missing and ``download`` is true.

    ``name_or_path`` is a registry name (``"GFPGANv1.4.pth"`` or ``"GFPGANv1.4"``), searched in the folders
    of :func:`search_dirs` (never in the working directory), or a path to an existing file, returned as it is.
    ``progress``: ``True`` always shows a progress bar, ``False`` never, ``None`` when stderr is a terminal.
    Raises :class:`WeightsError` (missing, cannot download) or :class:`ChecksumError` (wrong size or hash).
    """
    entry = _registry_entry(name_or_path, registry)
    if isinstance(entry, Path):
        return entry
    found = _find_checked(entry, weights_dir)
    if found is not None:
        return found
    if not download:
        raise WeightsError(
            f"{entry.name} not found in {', '.join(str(d) for d in search_dirs(weights_dir))}; download it from "
            f"{weight_url(entry)} into one of them"
        )
    return download_weights(entry, download_dir(weights_dir), progress=progress, options=options)


def _registry_entry(name_or_path: str | os.PathLike[str], registry: Mapping[str, WeightFile]) -> WeightFile | Path:
    """The registry entry a name means, or the existing file a path names (:class:`WeightsError` otherwise)."""
    text = os.fspath(name_or_path)
    looks_like_path = os.sep in text or (os.altsep is not None and os.altsep in text) or text.startswith("~")
    known_name = not looks_like_path and (text in registry or text + ".pth" in registry)
    if not known_name:
        # A path is taken as it is. A bare registry name is never looked up in the working directory.
        candidate = Path(text).expanduser()
        if candidate.is_file():
            return candidate
        if looks_like_path:
            raise WeightsError(f"weight file {text} does not exist")
    return lookup(text, registry)


def _find_checked(entry: WeightFile, weights_dir: str | os.PathLike[str] | None) -> Path | None:
    """The first copy of ``entry`` in the search folders after the cheap checks, or ``None`` when there is none.

    Raises :class:`ChecksumError` for a copy of the wrong size (or, md5-only files, the wrong md5).
    """
    for d in search_dirs(weights_dir):
        p = d / entry.name
        if not p.is_file():
            continue
        ok, actual, expected = _size_matches(entry, p)
        if not ok:
            raise ChecksumError(
                f"{p} has {actual:,} bytes but {entry.name} has {expected:,}: it is incomplete or another "
                f"file; delete it or run `vidrestore weights fetch {entry.name}` to replace it"
            )
        if entry.sha256 is None and _expected(entry, d)[1] is None:
            # No size known and never verified here: check the md5 once and record the sha256.
            result = verify_file(p, entry)
            if not result.ok:
                raise ChecksumError(f"{p}: {result.reason}; delete it or run `vidrestore weights fetch {entry.name}`")
        return p
    return None


def resolve_many(
    names_or_paths: Iterable[str | os.PathLike[str]],
    weights_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool | None = None,
    *,
    registry: Mapping[str, WeightFile] = REGISTRY,
    options: DownloadOptions | None = None,
) -> dict[str, Path]:
    """Resolve (and download, when ``download``) every file before any work starts: name → local path.

    Every file is tried, even after one fails; then one :class:`WeightsError` names all the files that are
    missing or bad, with the URL of each and the folder to put it in. Paths are returned as they are.
    """
    found: dict[str, Path] = {}
    failed: list[tuple[WeightFile, str]] = []
    folder: Path | None = None
    for item in names_or_paths:
        key = os.fspath(item)
        entry = _registry_entry(item, registry)
        if isinstance(entry, Path):
            found[key] = entry
            continue
        if any(entry is e for e, _ in failed):
            continue
        try:
            path = _find_checked(entry, weights_dir)
            if path is None and download:
                folder = folder or download_dir(weights_dir)
                path = _download_locked(entry, folder, progress, options or DownloadOptions())
        except _FetchFailed as f:
            failed.append((entry, f.reason))
            continue
        except WeightsError as exc:  # a bad copy found (ChecksumError), a folder that cannot be created
            failed.append((entry, str(exc)))
            continue
        if path is None:
            failed.append((entry, "not found"))
        else:
            found[key] = path
    if failed:
        raise WeightsError(_missing_message(failed, weights_dir))
    return found


def _missing_message(failed: Iterable[tuple[WeightFile, str]], weights_dir: str | os.PathLike[str] | None) -> str:
    """One line naming every file in ``failed`` (entry, reason): its URL, where to put it, and why."""
    failed = list(failed)
    try:
        where = str(download_dir(weights_dir))
    except WeightsError:
        where = ", ".join(str(d) for d in search_dirs(weights_dir))
    files = "; ".join(f"{e.name} from {weight_url(e)}" for e, _ in failed)
    reasons: list[str] = []
    for _, reason in failed:
        if reason not in reasons and reason != "not found":
            reasons.append(reason)
    names = " ".join(e.name for e, _ in failed)
    why = f" (problems: {' | '.join(reasons)})" if reasons else ""
    return (
        f"{len(failed)} weight file(s) missing: {files}. Put each in {where} (or in a folder listed in "
        f"${ENV_DIRS}), or run `vidrestore weights fetch {names}` when online{why}"
    )


# --------------------------------------------------------------------------------------------------------------
# Verification


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


def verify_file(path: str | os.PathLike[str], entry: WeightFile) -> VerifyResult:
    """Hash ``path`` and compare it with ``entry`` (size, then sha256; md5 where no sha256 is known).

    When only the md5 is known and it matches, the sha256 is recorded in the folder's ``.verified.json``.
    """
    p = Path(path)
    expected_size, expected_sha = _expected(entry, p.parent)
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
    _record_verified(p.parent, entry.name, size, sha)
    return VerifyResult(entry.name, p, True, size, sha, f"md5 (sha256 now recorded in {RECORD_NAME})")


# --------------------------------------------------------------------------------------------------------------
# Download


class _Retryable(Exception):
    """An attempt failed in a way that another attempt may fix."""


def _show_licence_once(entry: WeightFile, folder: Path) -> None:
    if not entry.non_commercial:
        return
    record = _read_record(folder)
    if entry.name in record["licences_shown"]:
        return
    text = entry.notice or f"{entry.name}: {entry.licence}, non-commercial use only. See {entry.licence_url}"
    print(f"vidrestore: licence notice: {text}", file=sys.stderr, flush=True)


def _mark_licence_shown(entry: WeightFile, folder: Path) -> None:
    if not entry.non_commercial:
        return
    record = _read_record(folder)
    if entry.name not in record["licences_shown"]:
        record["licences_shown"] = sorted({*record["licences_shown"], entry.name})
        _write_record(folder, record)


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
        _hash_into(part, sha, md5)
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
            _hash_into(part, sha, md5)
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


def _hash_into(path: Path, *hashes: Any) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            for h in hashes:
                h.update(chunk)


class _FetchFailed(Exception):
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
        return _download_locked(entry, folder, progress, options or DownloadOptions())
    except _FetchFailed as f:
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
        raise _FetchFailed(f"cannot create the lock file in {folder}: {e.strerror or e}") from e
    return lock


def _finished_copy(entry: WeightFile, final: Path) -> bool:
    """True when ``final`` exists and is the published file (size first, then the full hash)."""
    if not final.is_file():
        return False
    ok, _, _ = _size_matches(entry, final)
    return ok and verify_file(final, entry).ok


def _download_locked(entry: WeightFile, folder: Path, progress: bool | None, opts: DownloadOptions) -> Path:
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
    """Fetch, check and rename into place; the caller holds the lock. Raises :class:`_FetchFailed`."""
    url = weight_url(entry)
    final = folder / entry.name
    part = folder / (entry.name + ".part")
    expected_size, expected_sha = _expected(entry, folder)
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
                raise _FetchFailed(str(e)) from e
        else:
            raise _FetchFailed(f"{last} (after {max(1, opts.retries + 1)} attempts)")

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
        raise _FetchFailed(problem, checksum=True)
    os.replace(part, final)
    if expected_sha is None or entry.sha256 is None:
        _record_verified(folder, entry.name, size, digest)
    _mark_licence_shown(entry, folder)
    return final


# --------------------------------------------------------------------------------------------------------------
# Manifest (weights/manifest.json is generated from the registry; a test keeps the two equal)


def manifest_dict(files: Iterable[WeightFile] = WEIGHT_FILES) -> dict[str, Any]:
    """The registry as plain data, the content of ``weights/manifest.json``."""
    return {
        "comment": "Generated from vidrestore/weights.py (the source of truth): "
        "python -c 'import vidrestore.weights as w; print(w.manifest_json(), end=\"\")' > weights/manifest.json",
        "files": [asdict(w) for w in files],
    }


def manifest_json(files: Iterable[WeightFile] = WEIGHT_FILES) -> str:
    return json.dumps(manifest_dict(files), indent=2, ensure_ascii=False) + "\n"


def _main(argv: list[str] | None = None) -> int:  # pragma: no cover - convenience entry point
    from .cli_weights import build_parser, run

    return run(build_parser(prog="python -m vidrestore.weights").parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
