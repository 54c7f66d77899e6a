"""What the page asks of the app, free of any web framework: take uploads as jobs, run a job, list results,
pack them in a zip. Every file it reads or writes is inside the work folder."""

from __future__ import annotations

import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from .engine import EngineOptions, Models, Settings, VideoProgress, run_photo, run_video, write_compare
from .jobs import DONE, Job, JobStore, Runner
from .uploads import UploadRefused, admit


@dataclass(frozen=True)
class ServiceOptions:
    workdir: Path
    engine: EngineOptions = EngineOptions()
    max_upload_bytes: int = 4 << 30


class Service:
    def __init__(self, options: ServiceOptions) -> None:
        self.options = options
        self.workdir = options.workdir.resolve()
        self.store = JobStore(self.workdir)
        self.models = Models(options.engine)
        self.runner = Runner(self.store, self.execute)

    def start(self) -> None:
        self.runner.start()

    # -- taking work ------------------------------------------------------------------------------------------------
    def submit(self, paths: Iterable[str | Path], settings: Settings) -> tuple[list[Job], list[str]]:
        """A job per acceptable upload; the refused ones as one line each."""
        jobs: list[Job] = []
        refused: list[str] = []
        for path in paths:
            job = self.store.new("?", "upload", asdict(settings))
            try:
                upload = admit(path, self.store.folder(job) / "input", self.options.max_upload_bytes)
            except UploadRefused as exc:
                refused.append(str(exc))
                _remove_tree(self.store.folder(job))
                continue
            except OSError as exc:
                refused.append(f"{Path(path).name}: {exc.strerror or exc}")
                _remove_tree(self.store.folder(job))
                continue
            job.kind, job.name = upload.kind, upload.name
            self.runner.submit(job)
            jobs.append(job)
        return jobs, refused

    # -- doing it ---------------------------------------------------------------------------------------------------
    def execute(self, job: Job, save) -> None:
        settings = Settings.from_dict(job.settings)
        folder = self.store.folder(job)
        src = folder / job.input
        out = folder / "output"
        if job.kind == "photo":
            dst = run_photo(src, out, settings, self.models)
            job.frames_done = job.frames_total = 1
            job.output = dst.relative_to(folder).as_posix()
            return

        def update(done: int, total: int, spf: float | None) -> None:
            job.frames_done, job.frames_total, job.s_per_frame = done, total, spf
            save()

        restored, resumed = run_video(src, out, settings, self.models, VideoProgress(update))
        job.resumed_segments += resumed
        job.output = restored.relative_to(folder).as_posix()
        save()
        compare = write_compare(src, restored, out / f"{Path(job.name).stem}_compare.mp4")
        job.compare = compare.relative_to(folder).as_posix()

    # -- showing it -------------------------------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        return self.store.ordered()

    def job(self, job_id: str | None) -> Job | None:
        return self.store.jobs.get(job_id or "")

    def files(self, job: Job) -> dict[str, Path | None]:
        return {
            "input": self.store.path(job, job.input),
            "output": self.store.path(job, job.output),
            "compare": self.store.path(job, job.compare),
        }

    def zip_results(self) -> Path | None:
        """Every finished result in one zip (``WORKDIR/results.zip``), or None when there is none yet."""
        done = [(j, self.files(j)["output"]) for j in self.jobs() if j.status == DONE]
        done = [(j, p) for j, p in done if p is not None]
        if not done:
            return None
        dst = self.workdir / "results.zip"
        tmp = dst.with_name(".results.zip.partial")
        names: set[str] = set()
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
            for job, path in done:
                name = path.name if path.name not in names else f"{job.id}_{path.name}"
                names.add(name)
                z.write(path, name)
        tmp.replace(dst)
        return dst


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
