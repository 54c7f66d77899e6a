"""``vidrestore batch IN_DIR -o OUT_DIR``: restore every video under a folder, resumably.

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

Every file is restored in segments (:mod:`vidrestore.segments`) in ``OUT_DIR/.vidrestore-work/<key>/``, so a
crash or SIGKILL loses at most the segments in flight: the same command continues after the last finished
segment. Segments run in worker processes (engine ``local``), as Ray tasks (engine ``ray``), or in the calling
thread (engine ``inline``, API only: it accepts stage factories that cannot be pickled). One bad file never stops
the others.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import av

from .errors import CheckpointError, DeviceError, MediaError, OutputError, UsageError, VidrestoreError, WeightsError
from .media.filters import FilterOptions, plan_filters
from .media.probe import probe
from .media.source import check_range
from .options import RestoreOptions
from .segments import FileJob, SegmentJob, SegmentResult, StageFactory, prepare_file, run_segment, write_atomic

__all__ = [
    "BatchAborted", "BatchOptions", "BatchResult", "FileResult", "build_parser", "failure_kind", "restore_folder",
    "run", "quick_hash",
]

MANIFEST = "vidrestore-manifest.json"
WORK_DIR = ".vidrestore-work"
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
_NOT_VIDEO_FORMATS = {"tty", "image2", "apng", "gif", "ico", "webp_pipe"}
# Restore options that do not change the output bytes, left out of the options fingerprint.
_NOT_IN_KEY = {"overwrite", "device", "batch_size", "weights_dir", "report", "extra"}
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class BatchOptions:
    """How a folder is restored. ``restore`` and ``filters`` apply to every file."""

    restore: RestoreOptions = field(default_factory=RestoreOptions)
    filters: FilterOptions = field(default_factory=FilterOptions)
    segment_seconds: float = 60.0
    retry_failed: bool = False
    engine: str = "local"  # local | ray | inline
    workers: int = 1
    address: str | None = None
    keep_work: bool = False

    def __post_init__(self) -> None:
        if self.engine not in ("local", "ray", "inline"):
            raise UsageError(f"unknown --engine {self.engine!r}; choose local or ray")
        if self.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {self.workers}")
        if self.segment_seconds < 0:
            raise UsageError(f"--segment-seconds must be 0 (no segments) or more, got {self.segment_seconds}")
        if self.address and self.engine != "ray":
            raise UsageError("--address is for --engine ray")

    def fingerprint(self) -> dict[str, Any]:
        """What shapes the output bytes: a changed value means a file is restored again."""
        restore = {k: v for k, v in asdict(replace(self.restore, extra={})).items() if k not in _NOT_IN_KEY}
        return {"restore": restore, "filters": asdict(self.filters), "segment_seconds": float(self.segment_seconds)}

    def key(self) -> str:
        text = json.dumps(self.fingerprint(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class FileResult:
    """The outcome for one input. ``status``: ok, failed, skipped (done earlier), failed-earlier."""

    input: str  # relative to the input folder
    status: str
    output: str | None = None
    error: str | None = None
    frames: int = 0
    seconds: float = 0.0
    segments: int = 0
    resumed_segments: int = 0
    notices: list[str] = field(default_factory=list)
    kind: str | None = None  # of a failure: "input" (the file) or "environment" (retried on rerun)

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "skipped")


@dataclass
class BatchResult:
    in_dir: Path
    out_dir: Path
    manifest: Path
    files: list[FileResult] = field(default_factory=list)
    not_video: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if not f.ok]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    @property
    def frames(self) -> int:
        return sum(f.frames for f in self.files if f.status == "ok")


# -- finding and fingerprinting inputs -----------------------------------------------------------------------
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


def _walk(in_dir: Path, out_dir: Path) -> Iterator[Path]:
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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    if isinstance(exc, VidrestoreError):
        return line or type(exc).__name__
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


_ENV_ERRORS = (WeightsError, DeviceError, OutputError, CheckpointError)
_ENV_ERRNO = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOMEM}


class BatchAborted(VidrestoreError):
    """An unexpected error (a bug, or out of memory) stopped the batch; ``log`` holds its traceback."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


def failure_kind(exc: BaseException) -> str | None:
    """``environment`` (the file is not to blame: retried on rerun), ``input`` (the file itself), or None for an
    error nobody expects (a bug, ``MemoryError``), which stops the batch."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    if any(isinstance(c, _ENV_ERRORS) for c in chain):
        return "environment"
    if any(isinstance(c, OSError) and (not isinstance(c, av.FFmpegError) or c.errno in _ENV_ERRNO) for c in chain):
        return "environment"
    if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError: the device, not the file
        return "environment"
    if isinstance(exc, (VidrestoreError, av.FFmpegError)):
        return "input"
    return None


def _write_log(out_dir: Path, rel: str, exc: BaseException) -> Path | None:
    import traceback

    path = out_dir / f"vidrestore-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        path.write_text(f"vidrestore batch stopped on {rel}\n\n{text}")
    except OSError:
        return None
    return path


def _abort(out_dir: Path, rel: str, exc: BaseException) -> BatchAborted:
    log = _write_log(out_dir, rel, exc)
    where = f"; the traceback is in {log}" if log else ""
    return BatchAborted(f"internal error on {rel}: {_one_line(exc)}{where} (please report it); "
                        "the batch stopped, rerun to continue", log)


# -- the manifest ----------------------------------------------------------------------------------------------
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


# -- engines ---------------------------------------------------------------------------------------------------
class _Inline:
    """Runs each segment in the calling thread when its result is asked for."""

    def submit(self, job: SegmentJob) -> Callable[[], SegmentResult]:
        return lambda: run_segment(job)

    def result(self, handle) -> SegmentResult:
        return handle()

    def cancel(self, handle) -> None:
        pass

    def close(self) -> None:
        pass


class _Local:
    """A process pool (spawned workers: no inherited threads or locks).

    A worker that dies (a codec crash, the OOM killer) breaks the pool: it is replaced, and each job whose
    result is then asked for runs once more in the new pool, so only a job that crashes twice fails.
    """

    def __init__(self, workers: int) -> None:
        import multiprocessing

        self.workers = workers
        self.context = multiprocessing.get_context("spawn")
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=self.context)

    def submit(self, job: SegmentJob) -> tuple[SegmentJob, Future]:
        return job, self.pool.submit(run_segment, job)

    def result(self, handle: tuple[SegmentJob, Future]) -> SegmentResult:
        from concurrent.futures.process import BrokenProcessPool

        job, future = handle
        try:
            return future.result()
        except BrokenProcessPool:
            if getattr(self.pool, "_broken", False):
                self.pool.shutdown(wait=False, cancel_futures=True)
                self.pool = self._new_pool()
            try:
                return self.pool.submit(run_segment, job).result()
            except BrokenProcessPool:
                raise MediaError(f"{job.info.path}: a worker process died restoring segment {job.segment.index}") from None

    def cancel(self, handle: tuple[SegmentJob, Future]) -> None:
        handle[1].cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _Ray:
    """Segments as Ray tasks; one GPU per task when the cluster has GPUs. The driver joins."""

    def __init__(self, workers: int, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError("the ray engine needs Ray: install vidrestore[ray]") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": workers}
            ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
            self.started = True
        gpus = ray.cluster_resources().get("GPU", 0)
        self.task = ray.remote(num_gpus=1 if gpus else 0, num_cpus=1, max_retries=1)(run_segment)

    def submit(self, job: SegmentJob):
        return self.task.remote(job)

    def result(self, handle) -> SegmentResult:
        from ray.exceptions import RayTaskError

        try:
            return self.ray.get(handle)
        except RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            raise (cause if isinstance(cause, BaseException) else exc) from None

    def cancel(self, handle) -> None:
        try:
            self.ray.cancel(handle)
        except Exception:  # noqa: BLE001 - cancelling is best effort
            pass

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def _engine(options: BatchOptions):
    if options.engine == "ray":
        return _Ray(options.workers, options.address)
    if options.engine == "inline":
        return _Inline()
    return _Local(options.workers)


# -- progress ----------------------------------------------------------------------------------------------------
class BatchProgress:
    """Callbacks ``restore_folder`` reports to; the default does nothing."""

    def found(self, total: int) -> None: ...

    def file_started(self, rel: str, frames: int) -> None: ...

    def segment_done(self, frames: int) -> None: ...

    def file_done(self, result: FileResult) -> None: ...


class RichProgress(BatchProgress):
    """Overall (files) and per-file (frames) bars on a terminal."""

    def __init__(self) -> None:
        from rich.progress import Progress

        from .progress import bar_columns

        self.progress = Progress(*bar_columns(), transient=True)
        self.overall = None
        self.current = None
        self.estimator = None

    def __enter__(self) -> "RichProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def found(self, total: int) -> None:
        self.overall = self.progress.add_task("files", total=total)

    def file_started(self, rel: str, frames: int) -> None:
        if self.current is not None:
            self.progress.remove_task(self.current)
        self.estimator = None
        self.current = self.progress.add_task(rel, total=frames or None)

    def segment_done(self, frames: int) -> None:
        from .progress import RateEstimator

        if self.current is None:
            return
        self.progress.advance(self.current, frames)
        done = int(next(t.completed for t in self.progress.tasks if t.id == self.current))
        if self.estimator is None:  # the first call reports the frames an earlier run finished
            self.estimator = RateEstimator(done=done)
            self.progress.update(self.current, estimator=self.estimator)
        else:
            self.estimator.update(done)

    def file_done(self, result: FileResult) -> None:
        if self.overall is not None:
            self.progress.advance(self.overall)


# -- the run -------------------------------------------------------------------------------------------------------
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
    options = options or BatchOptions()
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
    in_path, out_path = Path(in_dir), Path(out_dir)
    if not in_path.is_dir():
        raise UsageError(f"{in_path} is not a folder")
    if out_path.exists() and not out_path.is_dir():
        raise UsageError(f"{out_path} exists and is not a folder")
    if in_path.resolve() == out_path.resolve():
        raise UsageError("the output folder is the input folder; choose another -o (inputs are never written)")
    out_path.mkdir(parents=True, exist_ok=True)
    progress = progress or BatchProgress()
    say = notice or (lambda _m: None)
    manifest = Manifest(out_path / MANIFEST)
    result = BatchResult(in_path, out_path, manifest.path)
    started = time.perf_counter()
    key = options.key()
    fingerprint = options.fingerprint()

    candidates = list(_walk(in_path, out_path))
    taken: dict[str, str] = {}
    engine = _engine(options)
    pending: list[tuple[dict[str, Any], _Pending | FileResult]] = []
    try:
        for path in candidates:
            rel = path.relative_to(in_path).as_posix()
            try:
                item = _prepare(path, rel, options, key, fingerprint, manifest, out_path, taken, stage_factory)
            except Exception as exc:  # noqa: BLE001 - _prepare returns every expected failure as a row
                raise _abort(out_path, rel, exc) from exc
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
                    _record(manifest, item.input, entry, item, in_path)
                result.files.append(item)
                progress.file_done(item)
                continue
            fr = _finish(item, engine, options, progress, say, out_path)
            _record(manifest, item.rel, item.entry, fr, in_path)
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
    if suffix in NOT_MEDIA_SUFFIXES:
        return None
    entry: dict[str, Any] = {"input": rel, "options": fingerprint, "options_key": key}
    out_rel = output_name(Path(rel))
    if out_rel.as_posix() in taken:  # a.avi and a.mkv side by side: keep the source extension in the name
        out_rel = out_rel.with_name(f"{Path(rel).stem}_{suffix.lstrip('.')}{out_rel.suffix}")
    output = out_dir / out_rel
    try:
        st = path.stat()
        entry.update(size=st.st_size, mtime=st.st_mtime, hash=quick_hash(path), output=str(output))
    except OSError as exc:
        return entry, FileResult(rel, "failed", error=f"{path}: {exc.strerror or exc}", kind="environment")
    old = manifest.entries.get(rel)
    same = bool(old) and old.get("hash") == entry["hash"] and old.get("options_key") == key
    if same and old.get("status") == "ok" and output.is_file():
        taken[out_rel.as_posix()] = rel
        return entry, FileResult(rel, "skipped", output=str(output), frames=int(old.get("frames", 0)),
                                 seconds=float(old.get("seconds", 0.0)))
    if same and old.get("status") == "failed" and not options.retry_failed and old.get("kind") != "environment":
        return entry, FileResult(rel, "failed-earlier", error=old.get("error"), kind=old.get("kind"))
    try:
        info = probe(path)
        if info.format in _NOT_VIDEO_FORMATS or info.format.endswith("_pipe"):
            raise MediaError(f"{path} is a still image, not a video")
    except VidrestoreError as exc:
        if suffix not in VIDEO_SUFFIXES:
            return None
        return entry, FileResult(rel, "failed", error=_one_line(exc), kind=failure_kind(exc) or "input")
    taken[out_rel.as_posix()] = rel
    digest = entry["hash"]
    ours = bool(old) and old.get("output") == str(output)
    if output.exists() and not (options.restore.overwrite or ours):
        return entry, FileResult(rel, "failed", error=f"{output} already exists; pass --overwrite to replace it",
                                 kind="environment")
    try:
        start, end = options.restore.time_range()
        if start is not None or end is not None:
            check_range(info, start, end)  # a part that is not in this file fails it in one line
        filters = plan_filters(info, options.filters)
        # per input path too: two copies of one file are two jobs with two outputs
        work = out_dir / WORK_DIR / hashlib.sha256(f"{rel}:{digest}:{key}".encode()).hexdigest()[:16]
        job = prepare_file(info, output, work, options.restore, filters, options.segment_seconds, stage_factory)
    except (VidrestoreError, OSError, av.FFmpegError) as exc:
        return entry, FileResult(rel, "failed", error=_one_line(exc), kind=failure_kind(exc) or "input")
    return entry, _Pending(rel, entry, job)


def _finish(
    item: _Pending, engine, options: BatchOptions, progress: BatchProgress, say, out_dir: Path
) -> FileResult:
    job = item.job
    progress.file_started(item.rel, sum(s.frames for s in job.segments))
    progress.segment_done(item.resumed_frames)  # finished by an earlier run
    started = time.perf_counter()
    notices: list[str] = []

    def note(message: str) -> None:
        notices.append(message)
        say(f"{item.rel}: {message}")

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
            raise _abort(out_dir, item.rel, exc) from exc
        return FileResult(item.rel, "failed", error=_one_line(exc), segments=len(job.segments), kind=kind,
                          resumed_segments=item.resumed, seconds=time.perf_counter() - started)
    return FileResult(
        item.rel, "ok", output=str(job.output), frames=frames, seconds=time.perf_counter() - started,
        segments=len(job.segments), resumed_segments=item.resumed, notices=notices,
    )


def _record(manifest: Manifest, rel: str, entry: dict[str, Any], fr: FileResult, in_dir: Path) -> None:
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


# -- the command line ------------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(prog: str = "vidrestore batch") -> argparse.ArgumentParser:
    from .cli_options import add_clean_arguments, add_encode_arguments, add_face_arguments, add_range_arguments

    p = _Parser(
        prog=prog,
        description="Restore every video under a folder into a mirrored tree; rerun the same command to resume.",
        epilog=f"The manifest {MANIFEST} in OUT_DIR records every input and result. Exit status: 0 all ok, "
        "1 some files failed (listed), 2 usage error.",
    )
    p.add_argument("in_dir", type=Path, metavar="IN_DIR", help="folder searched recursively for videos (never modified)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="output folder (created)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist and this batch did not make")
    p.add_argument("--retry-failed", action="store_true", help="try again the files an earlier run failed on")
    add_encode_arguments(p)
    add_face_arguments(p)
    add_clean_arguments(p)
    add_range_arguments(p)
    run_ = p.add_argument_group("running")
    run_.add_argument("--segment-seconds", type=float, default=60.0, metavar="S",
                      help="restore in segments of about S seconds, each saved as it finishes, so a crash loses "
                      "at most the segments in flight (default 60; 0: one segment per file)")
    run_.add_argument("--engine", choices=("local", "ray"), default="local",
                      help="local: worker processes on this machine; ray: Ray tasks (pip install vidrestore[ray])")
    run_.add_argument("--workers", type=int, default=1, help="segments restored at once (default 1)")
    run_.add_argument("--address", help="Ray cluster address (default: start Ray on this machine)")
    run_.add_argument("--keep-work", action="store_true", help="keep the segment files after joining")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary table")
    return p


def _options(args: argparse.Namespace) -> BatchOptions:
    from .cli_options import filter_options, restore_options

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    filters = filter_options(args)
    restore = replace(restore_options(args), deinterlace="off", denoise="off", crop_bottom=0)
    restore.encode_options()
    return BatchOptions(
        restore=restore, filters=filters, segment_seconds=args.segment_seconds, retry_failed=args.retry_failed,
        engine=args.engine, workers=args.workers, address=args.address, keep_work=args.keep_work,
    )


def _summary(result: BatchResult, console) -> None:
    from rich.table import Table

    table = Table(title=f"vidrestore batch: {result.in_dir} -> {result.out_dir}", title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("result", no_wrap=True)
    table.add_column("frames", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("output / error", overflow="fold")
    style = {"ok": "green", "skipped": "dim", "failed": "bold red", "failed-earlier": "red"}
    for f in result.files:
        label = {"skipped": "done before", "failed-earlier": "failed before"}.get(f.status, f.status)
        if f.status == "ok" and f.resumed_segments:
            label = f"ok (resumed {f.resumed_segments}/{f.segments})"
        table.add_row(
            f.input, f"[{style[f.status]}]{label}[/]", str(f.frames) if f.frames else "",
            f"{f.seconds:.1f}" if f.status == "ok" else "", (f.output or "") if f.ok else (f.error or ""),
        )
    console.print(table)
    ok = sum(1 for f in result.files if f.status == "ok")
    skipped = sum(1 for f in result.files if f.status == "skipped")
    fps = result.frames / result.seconds if result.seconds > 0 else 0.0
    console.print(
        f"{ok} restored, {skipped} done before, {len(result.failed)} failed, {len(result.not_video)} not video; "
        f"{result.frames} frames in {result.seconds:.1f} s ({fps:.1f} fps); manifest {result.manifest}",
        highlight=False,
    )


def run(args: argparse.Namespace, *, stage_factory: StageFactory | None = None) -> int:
    """Run ``vidrestore batch``; returns the exit status (0 all ok, 1 some failed, 2 usage error)."""
    from rich.console import Console

    def err(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        options = _options(args)
        show = not args.quiet and sys.stdout.isatty()
        if show:
            with RichProgress() as bar:
                result = restore_folder(args.in_dir, args.output, options, stage_factory=stage_factory,
                                        progress=bar, notice=err)
        else:
            result = restore_folder(args.in_dir, args.output, options, stage_factory=stage_factory, notice=err)
    except UsageError as exc:
        err(f"vidrestore batch: {exc}")
        return 2
    except BatchAborted as exc:
        err(f"vidrestore batch: {exc}")
        return 1
    if not args.quiet:
        console = Console()
        _summary(result, console if console.is_terminal else Console(width=1000))
    for f in result.failed:
        err(f"failed: {f.input}: {f.error}")
    earlier = sum(1 for f in result.files if f.status == "failed-earlier")
    if earlier:
        err(f"{earlier} file(s) failed in an earlier run and were not tried again; pass --retry-failed to retry them")
    return result.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m vidrestore.batch``)."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
