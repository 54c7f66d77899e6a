"""``restore_folder``: restore every video under a folder into a mirrored tree, resumably.

See the package docstring (:mod:`vidrestore.batch`) for what is skipped, retried and recorded.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

import av

from ..errors import MediaError, UsageError, VidrestoreError
from ..media.filters import plan_filters
from ..media.probe import probe
from ..media.source import check_range
from ..options import BatchOptions, RestoreOptions
from .discover import NOT_MEDIA_SUFFIXES, NOT_VIDEO_FORMATS, VIDEO_SUFFIXES, output_name, walk
from .engines import make_engine
from .failures import aborted, failure_kind, one_line
from .manifest import MANIFEST, Manifest, earlier, new_entry, occupied, record
from .photos import PHOTO_SUFFIXES, PhotoPending, finish_photo, prepare_photo
from .records import BatchProgress, BatchResult, FileNotes, FileResult
from .segments import FileJob, StageFactory, prepare_file

__all__ = ["WORK_DIR", "restore_folder"]

WORK_DIR = ".vidrestore-work"


@dataclass
class _Pending:
    rel: str
    entry: dict[str, Any]
    job: FileJob
    handles: list[Any] = field(default_factory=list)
    resumed: int = 0
    resumed_frames: int = 0


def restore_folder(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: BatchOptions | None = None,
    *,
    stage_factory: StageFactory | None = None,
    progress: BatchProgress | None = None,
    notice: Callable[[str], None] | None = None,
    **overrides: Any,
) -> BatchResult:
    """Restore every video under ``in_dir`` into the same tree under ``out_dir``; see the module docstring.

    ``overrides`` are ``BatchOptions`` fields (``workers=2``) or ``RestoreOptions`` fields (``model="none"``).
    ``stage_factory(options, stats, notice) -> FaceStage`` replaces ``pipeline.build_stage`` (it must pickle
    for the process and Ray engines).
    """
    options = _with_overrides(options or BatchOptions(), overrides)
    in_path, out_path = _folders(Path(in_dir), Path(out_dir))
    progress = progress or BatchProgress()
    say = notice or (lambda _m: None)
    manifest = Manifest(out_path / MANIFEST)
    result = BatchResult(in_path, out_path, manifest.path)
    started = time.perf_counter()
    key = options.key()
    fingerprint = options.fingerprint()

    candidates = list(walk(in_path, out_path))
    taken: dict[str, str] = {}
    # workers spread over the GPUs when the run wants CUDA (an I/O-only run never imports torch for that)
    device = options.restore.device if options.restore.model != "none" else "cpu"
    engine = make_engine(options.engine, options.workers, options.address, device)
    pending: list[tuple[dict[str, Any], _Pending | PhotoPending | FileResult]] = []
    photo_models: dict[str, Any] = {}  # loaded once, on the first photo
    try:
        for path in candidates:
            rel = path.relative_to(in_path).as_posix()
            try:
                item = _prepare(path, rel, options, key, fingerprint, manifest, out_path, taken, stage_factory)
            except Exception as exc:  # noqa: BLE001 - _prepare returns every expected failure as a row
                raise aborted(out_path, rel, exc) from exc
            if item is None:
                result.not_video.append(rel)
                continue
            entry, item = item
            if isinstance(item, _Pending):
                jobs = item.job.jobs()
                todo = {j.segment.index for j in jobs}
                item.handles = [engine.submit(j) for j in jobs]
                item.resumed = len(item.job.segments) - len(jobs)
                item.resumed_frames = sum(s.frames for s in item.job.segments if s.index not in todo)
            pending.append((entry, item))
        progress.found(len(pending))
        for entry, item in pending:
            if isinstance(item, FileResult):
                if item.status == "failed":
                    record(manifest, item.input, entry, item, in_path)
                result.files.append(item)
                progress.file_done(item)
                continue
            if isinstance(item, PhotoPending):
                progress.file_started(item.rel, 1)
                fr = finish_photo(item, options, say, out_path, photo_models)
                progress.segment_done(1)
            else:
                fr = _finish(item, engine, options, progress, say, out_path)
            record(manifest, item.rel, item.entry, fr, in_path)
            result.files.append(fr)
            progress.file_done(fr)
    finally:
        engine.close()
        try:
            (out_path / WORK_DIR).rmdir()  # only when empty: nothing left to resume
        except OSError:
            pass
    result.seconds = time.perf_counter() - started
    return result


def _with_overrides(options: BatchOptions, overrides: dict[str, Any]) -> BatchOptions:
    """``options`` with ``overrides`` (BatchOptions or RestoreOptions fields), checked before any work."""
    batch_fields = {f.name for f in fields(BatchOptions)}
    restore_fields = {f.name for f in fields(RestoreOptions)}
    unknown = set(overrides) - batch_fields - restore_fields
    if unknown:
        raise UsageError(f"unknown option(s): {', '.join(sorted(unknown))}")
    restore = replace(options.restore, **{k: v for k, v in overrides.items() if k in restore_fields})
    options = replace(options, restore=restore, **{k: v for k, v in overrides.items() if k in batch_fields})
    options = _one_filter_source(options)
    options.restore.encode_options()  # validates codec and crf before any work
    options.restore.time_range()
    return options


def _folders(in_path: Path, out_path: Path) -> tuple[Path, Path]:
    """The input and output folders, checked; the output folder is created."""
    if not in_path.is_dir():
        raise UsageError(f"{in_path} is not a folder")
    if out_path.exists() and not out_path.is_dir():
        raise UsageError(f"{out_path} exists and is not a folder")
    if in_path.resolve() == out_path.resolve():
        raise UsageError("the output folder is the input folder; choose another -o (inputs are never written)")
    out_path.mkdir(parents=True, exist_ok=True)
    return in_path, out_path


def _one_filter_source(options: BatchOptions) -> BatchOptions:
    """The clean-up filters live in ``options.filters``; ones given as ``RestoreOptions`` fields (``deinterlace=``,
    as the single-file API takes them) are moved there, so they run once per segment and key the manifest once."""
    restore = options.restore
    filters = options.filters
    if not filters.active and restore.filter_options().active:
        filters = restore.filter_options()
    return replace(options, filters=filters, restore=replace(restore, deinterlace="off", denoise="off", crop_bottom=0))


def _prepare(
    path: Path,
    rel: str,
    options: BatchOptions,
    key: str,
    fingerprint: dict[str, Any],
    manifest: Manifest,
    out_dir: Path,
    taken: dict[str, str],
    stage_factory: StageFactory | None,
) -> tuple[dict[str, Any], _Pending | FileResult] | None:
    """Probe, fingerprint and plan one input: None (not a video), else its manifest entry and either a
    FileResult (done earlier, or failed already) or the work to do."""
    suffix = path.suffix.lower()
    if suffix in PHOTO_SUFFIXES:
        return prepare_photo(path, rel, options, key, fingerprint, manifest, out_dir, taken)
    if suffix in NOT_MEDIA_SUFFIXES:
        return None
    out_rel = output_name(Path(rel))
    if out_rel.as_posix() in taken:  # a.avi and a.mkv side by side: keep the source extension in the name
        out_rel = out_rel.with_name(f"{Path(rel).stem}_{suffix.lstrip('.')}{out_rel.suffix}")
    output = out_dir / out_rel
    entry, failed = new_entry(path, rel, key, fingerprint, output)
    if failed is not None:
        return entry, failed
    done = earlier(manifest, entry, options.retry_failed)
    if done is not None:
        if done.status == "skipped":
            taken[out_rel.as_posix()] = rel
        return entry, done
    try:
        info = probe(path)
        if info.format in NOT_VIDEO_FORMATS or info.format.endswith("_pipe"):
            raise MediaError(f"{path} is a still image, not a video")
    except VidrestoreError as exc:
        if suffix not in VIDEO_SUFFIXES:
            return None
        return entry, FileResult(rel, "failed", error=one_line(exc), kind=failure_kind(exc) or "input")
    taken[out_rel.as_posix()] = rel
    digest = entry["hash"]
    taken_over = occupied(manifest, entry, options.restore.overwrite)
    if taken_over is not None:
        return entry, taken_over
    try:
        start, end = options.restore.time_range()
        if start is not None or end is not None:
            check_range(info, start, end)  # a part that is not in this file fails it in one line
        filters = plan_filters(info, options.filters)
        # per input path too: two copies of one file are two jobs with two outputs
        work = out_dir / WORK_DIR / hashlib.sha256(f"{rel}:{digest}:{key}".encode()).hexdigest()[:16]
        job = prepare_file(info, output, work, options.restore, filters, options.segment_seconds, stage_factory)
    except (VidrestoreError, OSError, av.FFmpegError) as exc:
        return entry, FileResult(rel, "failed", error=one_line(exc), kind=failure_kind(exc) or "input")
    return entry, _Pending(rel, entry, job)


def _finish(
    item: _Pending, engine, options: BatchOptions, progress: BatchProgress, say, out_dir: Path
) -> FileResult:
    job = item.job
    progress.file_started(item.rel, sum(s.frames for s in job.segments))
    progress.segment_done(item.resumed_frames)  # finished by an earlier run
    started = time.perf_counter()
    note = FileNotes(item.rel, say)

    handles = list(item.handles)
    try:
        while handles:
            seg_result = engine.result(handles[0])
            handles.pop(0)
            progress.segment_done(seg_result.frames)
        frames, _results = job.finish(note, keep_work=options.keep_work)
    except Exception as exc:  # noqa: BLE001 - sorted below: expected errors fail the file, others stop the batch
        for h in handles:
            engine.cancel(h)
        kind = failure_kind(exc)
        if kind is None:
            raise aborted(out_dir, item.rel, exc) from exc
        return FileResult(item.rel, "failed", error=one_line(exc), segments=len(job.segments), kind=kind,
                          resumed_segments=item.resumed, seconds=time.perf_counter() - started)
    return FileResult(
        item.rel, "ok", output=str(job.output), frames=frames, seconds=time.perf_counter() - started,
        segments=len(job.segments), resumed_segments=item.resumed, notices=note.lines,
    )
