"""Where segments run: worker processes (``local``), Ray tasks (``ray``), or the calling thread (``inline``, API
only: it accepts stage factories that cannot be pickled). Each engine has ``submit(job) -> handle``,
``result(handle)``, ``cancel(handle)`` and ``close()``."""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Callable

from ..errors import MediaError, UsageError
from .segments import SegmentJob, SegmentResult, run_segment

class Inline:
    """Runs each segment in the calling thread when its result is asked for."""

    def submit(self, job: SegmentJob) -> Callable[[], SegmentResult]:
        return lambda: run_segment(job)

    def result(self, handle) -> SegmentResult:
        return handle()

    def cancel(self, handle) -> None:
        pass

    def close(self) -> None:
        pass


def cuda_devices(device: str | None) -> list[str]:
    """The CUDA devices a run on ``device`` may spread its workers over: the visible ones when it asks for
    ``cuda`` or the default device, none for ``cpu``, ``cuda:N`` (the user chose one) or a machine without CUDA."""
    if device not in (None, "cuda") or importlib.util.find_spec("torch") is None:
        return []
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return (visible or [str(i) for i in range(n)])[:n]


def _pin_gpu(counter: Any, gpus: list[str]) -> None:
    """Worker initializer: the k-th worker started sees only GPU ``gpus[k % len(gpus)]`` (its ``cuda``)."""
    with counter.get_lock():
        k = counter.value
        counter.value += 1
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus[k % len(gpus)]


class Local:
    """A process pool (spawned workers: no inherited threads or locks).

    A worker that dies (a codec crash, the OOM killer) breaks the pool: it is replaced, and each job whose
    result is then asked for runs once more in the new pool, so only a job that crashes twice fails.
    With several GPUs (``gpus``, from :func:`cuda_devices`) each worker gets one of its own, in turn, instead of
    every worker loading its models on the first.
    """

    def __init__(self, workers: int, gpus: list[str] | None = None) -> None:
        import multiprocessing

        self.workers = workers
        self.context = multiprocessing.get_context("spawn")
        self.gpus = list(gpus or [])
        self._started = self.context.Value("i", 0)
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        if len(self.gpus) < 2:
            return ProcessPoolExecutor(max_workers=self.workers, mp_context=self.context)
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=self.context, initializer=_pin_gpu,
                                   initargs=(self._started, self.gpus))

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


class Ray:
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


def make_engine(engine: str, workers: int, address: str | None = None, device: str | None = None):
    if engine == "ray":
        return Ray(workers, address)
    if engine == "inline":
        return Inline()
    return Local(workers, cuda_devices(device) if workers > 1 else [])
