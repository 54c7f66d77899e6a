"""Photos in a batch: each restored whole by the photo door (no segments), into the mirrored tree under the same
name and extension, recorded in the same manifest (skipped when done with the same options, retried when failed
for a reason outside the file). The models are loaded once for all the photos of a run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .failures import aborted, failure_kind, one_line
from .manifest import Manifest, earlier, new_entry, occupied
from .records import FileNotes, FileResult

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".heic", ".heif"}


@dataclass
class PhotoPending:
    rel: str
    entry: dict[str, Any]
    path: Path
    output: Path


def prepare_photo(path: Path, rel: str, options: Any, key: str, fingerprint: dict[str, Any], manifest: Manifest,
                  out_dir: Path, taken: dict[str, str]) -> tuple[dict[str, Any], Any]:
    """The manifest entry of one photo and either its FileResult (done earlier, failed earlier) or the work."""
    output = out_dir / rel
    entry, failed = new_entry(path, rel, key, fingerprint, output)
    if failed is not None:
        return entry, failed
    taken[Path(rel).as_posix()] = rel
    done = earlier(manifest, entry, options.retry_failed, frames=1) or occupied(manifest, entry,
                                                                               options.restore.overwrite)
    return entry, done or PhotoPending(rel, entry, path, output)


def _models(options: Any, cache: dict[str, Any]) -> dict[str, Any]:
    """The detector, restorer, parser and upscaler every photo of the run shares (loaded on first use)."""
    if "extra" not in cache:
        from ..photo import PhotoOptions, _stage_options
        from ..pipeline import RestoreStats, build_stage

        stage = build_stage(_stage_options(options.restore, PhotoOptions()), RestoreStats(Path(), Path()),
                            lambda _m: None)
        names = ("detector", "restorer", "parser", "upscaler")
        cache["extra"] = {n: getattr(stage, n) for n in names if getattr(stage, n, None) is not None}
    return cache["extra"]


def finish_photo(item: PhotoPending, options: Any, say: Callable[[str], None], out_dir: Path,
                 cache: dict[str, Any]) -> Any:
    from ..photo import restore_image

    started = time.perf_counter()
    note = FileNotes(item.rel, say)

    try:
        item.output.parent.mkdir(parents=True, exist_ok=True)
        # an archive keeps every page of a multi-page TIFF (a scanned album, a fax): written as one again
        pages = "all" if item.output.suffix.lower() in (".tif", ".tiff") else "first"
        stats = restore_image(item.path, item.output, options=options.restore, overwrite=True, notice=note,
                              pages=pages, **_models(options, cache))
    except Exception as exc:  # noqa: BLE001 - expected errors fail the photo, others stop the batch
        kind = failure_kind(exc)
        if kind is None:
            raise aborted(out_dir, item.rel, exc) from exc
        return FileResult(item.rel, "failed", error=one_line(exc), kind=kind, seconds=time.perf_counter() - started)
    return FileResult(item.rel, "ok", output=str(stats.output), frames=1, seconds=time.perf_counter() - started,
                      notices=note.lines)
