"""Resolving weight files a run needs: found in the search folders (cheap size check) or downloaded.

:func:`resolve_many` resolves every file a run needs before any work starts and names all missing ones in one
message.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import ChecksumError, WeightsError
from .download import DownloadOptions, FetchFailed, download_locked, download_weights
from .locate import ENV_DIRS, download_dir, search_dirs, weight_url
from .registry import REGISTRY, WeightFile, lookup
from .verify import expected_checks, size_matches, verify_file

__all__ = ["resolve_weights", "resolve_many"]


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
        ok, actual, expected = size_matches(entry, p)
        if not ok:
            raise ChecksumError(
                f"{p} has {actual:,} bytes but {entry.name} has {expected:,}: it is incomplete or another "
                f"file; delete it or run `vidrestore weights fetch {entry.name}` to replace it"
            )
        if entry.sha256 is None and expected_checks(entry, d)[1] is None:
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
                path = download_locked(entry, folder, progress, options or DownloadOptions())
        except FetchFailed as f:
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

