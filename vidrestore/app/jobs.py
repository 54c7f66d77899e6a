"""The job queue of the web app, kept in the work folder so that it outlives the app.

Each job lives in ``WORKDIR/jobs/<id>/``: ``job.json`` (what to do and how far it got, rewritten atomically),
``input/`` (the uploaded copy) and ``output/`` (results; a video's finished segments too). One thread runs the
jobs one after the other (one job on the accelerator at a time). A restarted app reads every ``job.json``: finished
jobs are shown again, unfinished ones are queued again — a video carries on after its last finished segment.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from ..errors import VidrestoreError
from ..util import write_atomic

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


@dataclass
class Job:
    id: str
    kind: str  # photo | video
    name: str  # the safe file name
    settings: dict[str, Any]
    status: str = QUEUED
    error: str | None = None
    output: str | None = None  # relative to the job folder
    compare: str | None = None
    frames_done: int = 0
    frames_total: int = 0
    s_per_frame: float | None = None
    runs: int = 0  # how many times a run started (more than one: resumed after a restart)
    resumed_segments: int = 0
    notices: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)

    @property
    def input(self) -> str:
        return f"input/{self.name}"

    def eta(self) -> float | None:
        if self.s_per_frame is None or not self.frames_total:
            return None
        return max(0, self.frames_total - self.frames_done) * self.s_per_frame

    def row(self) -> list[Any]:
        """The jobs table's row: name, kind, status, frames, s/frame, ETA."""
        frames = f"{self.frames_done}/{self.frames_total}" if self.frames_total else ""
        spf = f"{self.s_per_frame:.2f}" if self.s_per_frame is not None else ""
        eta = self.eta()
        status = self.status if self.status != FAILED else f"failed: {self.error}"
        return [self.id, self.name, self.kind, status, frames, spf, "" if eta is None else f"{eta:.0f} s"]


class JobStore:
    """The jobs under ``WORKDIR/jobs``; every path it hands out is inside that folder."""

    def __init__(self, workdir: Path) -> None:
        self.root = (workdir / "jobs").resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.jobs: dict[str, Job] = {}

    def folder(self, job: Job) -> Path:
        return self.root / job.id

    def path(self, job: Job, rel: str | None) -> Path | None:
        """``rel`` (a path the job recorded) inside the job's folder, or None."""
        if not rel:
            return None
        path = (self.folder(job) / rel).resolve()
        return path if path.is_relative_to(self.folder(job)) and path.is_file() else None

    def new(self, kind: str, name: str, settings: dict[str, Any]) -> Job:
        job = Job(id=f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}", kind=kind, name=name,
                  settings=settings)
        (self.folder(job) / "output").mkdir(parents=True, exist_ok=True)
        return job

    def save(self, job: Job) -> None:
        with self.lock:
            self.jobs[job.id] = job
            write_atomic(self.folder(job) / "job.json", json.dumps(asdict(job), indent=1), fsync=False)

    def load(self) -> list[Job]:
        """Every job recorded in the work folder (unreadable records are passed over), oldest first."""
        known = {f.name for f in fields(Job)}
        for record in sorted(self.root.glob("*/job.json")):
            try:
                doc = json.loads(record.read_text())
                job = Job(**{k: v for k, v in doc.items() if k in known})
            except (OSError, ValueError, TypeError):
                continue
            if job.id == record.parent.name:
                self.jobs[job.id] = job
        return self.ordered()

    def ordered(self) -> list[Job]:
        with self.lock:
            return sorted(self.jobs.values(), key=lambda j: (j.created, j.id))


class Runner:
    """Runs queued jobs one at a time in a daemon thread with ``execute(job, save)``."""

    def __init__(self, store: JobStore, execute: Callable[[Job, Callable[[], None]], None]) -> None:
        self.store = store
        self.execute = execute
        self.todo: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="vidrestore-app-jobs", daemon=True)

    def start(self) -> None:
        """Queue again what an earlier app left unfinished, then start working."""
        for job in self.store.load():
            if job.status in (QUEUED, RUNNING):
                job.status = QUEUED
                self.store.save(job)
                self.todo.put(job.id)
        self.thread.start()

    def submit(self, job: Job) -> None:
        job.status = QUEUED
        self.store.save(job)
        self.todo.put(job.id)

    def _loop(self) -> None:
        while True:
            job = self.store.jobs.get(self.todo.get())
            if job is None or job.status != QUEUED:
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        job.status, job.error, job.runs = RUNNING, None, job.runs + 1
        self.store.save(job)
        try:
            self.execute(job, lambda: self.store.save(job))
            job.status = DONE
        except VidrestoreError as exc:
            job.status, job.error = FAILED, " ".join(str(exc).split())
        except Exception as exc:  # noqa: BLE001 - a bug: the job fails with one line, the app carries on
            job.status, job.error = FAILED, f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"
        self.store.save(job)
