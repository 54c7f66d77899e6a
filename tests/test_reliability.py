"""Run control: any failure in any thread ends the run quickly with one line, the partial output removed;
SIGTERM is handled like Ctrl-C; partial files of killed runs are swept before a new run writes.

Every test is time-bounded (a subprocess timeout or a thread join with a timeout): a hang fails the test.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import av
import pytest

from media import Clip, make_clip
from vidrestore.errors import MediaError, OutputError
from vidrestore.media.sink import VideoSink
from vidrestore.media.source import VideoSource
from vidrestore.file import restore_video
from vidrestore.util import stale_partials, temporary_path

REPO = Path(__file__).resolve().parents[1]
RUN_S = 60  # bound for one small run; a hang fails at this point


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "in.mkv", Clip(frames=48, width=96, height=64))


def partials(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".partial" in p.name)


def bounded(fn, timeout: float = RUN_S) -> dict:
    """Call ``fn`` in a thread; fail if it has not returned or raised within ``timeout`` seconds."""
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the run hung (still running after {timeout} s)"
    result["seconds"] = time.monotonic() - started
    return result


def run_cli(args: list[str], patch: str = "", timeout: float = RUN_S, env: dict | None = None):
    """``vidrestore ARGS`` in a subprocess, after running ``patch`` (fault injection) in it."""
    code = "import sys\n" + textwrap.dedent(patch) + "\nfrom vidrestore.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})},
    )


def one_error_line(stderr: str) -> str:
    """The single ``vidrestore:`` line; every other stderr line must be a notice or warning, no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("vidrestore:")]
    assert len(errors) == 1, stderr
    others = [line for line in lines if line not in errors and not line.startswith(("notice:", "warning:"))]
    assert not others, stderr
    return errors[0]


# -- in-process: any thread's failure ends restore_video, no hang, no partial -------------------------------


def _failing_write(after: int, exc: BaseException):
    original = VideoSink.write

    def write(self, frame):
        if self.frames_written >= after:
            raise exc
        return original(self, frame)

    return write


@pytest.mark.parametrize(
    "exc, kind, words",
    [
        (OSError(errno.ENOSPC, "No space left on device"), OutputError, "no space left on device while writing"),
        (OSError(errno.EACCES, "Permission denied"), OutputError, "permission denied while writing"),
        (OSError(errno.EROFS, "Read-only file system"), OutputError, "read-only while writing"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), OutputError, "disk quota exceeded while writing"),
        (av.FFmpegError(22, "Invalid argument"), MediaError, "FFmpeg could not encode or write"),
        (RuntimeError("encoder bug"), RuntimeError, "encoder bug"),
    ],
)
def test_encoder_failure_mid_stream_ends_the_run(clip, tmp_path, monkeypatch, exc, kind, words):
    # The stage is faster than the failing encoder: before, the main thread then looped in _put forever.
    monkeypatch.setattr(VideoSink, "write", _failing_write(3, exc))
    out = tmp_path / "out.mkv"
    result = bounded(lambda: restore_video(clip, out, model="none"))
    error = result.get("error")
    assert isinstance(error, kind), error
    assert words in str(error)
    if kind is OutputError:
        assert str(out) in str(error)  # the name the user gave, not the temporary one
    assert result["seconds"] < 15
    assert not out.exists() and partials(tmp_path) == []


def test_failure_while_flushing_ends_the_run(clip, tmp_path, monkeypatch):
    def close(self):
        self.abort()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(VideoSink, "close", close)
    out = tmp_path / "out.mp4"
    result = bounded(lambda: restore_video(clip, out, model="none"))
    assert isinstance(result.get("error"), OutputError)
    assert str(result["error"]) == f"no space left on device while writing {out}"
    assert not out.exists() and partials(tmp_path) == []


def test_stage_failure_ends_the_run(clip, tmp_path):
    def stage(frames):
        for frame in frames:
            if frame.index == 5:
                raise ValueError("stage bug")
            yield frame

    out = tmp_path / "out.mkv"
    result = bounded(lambda: restore_video(clip, out, model="none", stage=stage))
    assert isinstance(result.get("error"), ValueError)
    assert not out.exists() and partials(tmp_path) == []


def test_stage_waiting_for_input_is_released_when_the_encoder_dies(clip, tmp_path, monkeypatch):
    # The decoder is slow: the stage sits in the decoded queue when the encoder dies.
    original = VideoSource.frames

    def slow_frames(self):
        for frame in original(self):
            time.sleep(0.05)
            yield frame

    monkeypatch.setattr(VideoSource, "frames", slow_frames)
    monkeypatch.setattr(VideoSink, "write", _failing_write(1, OSError(errno.EIO, "Input/output error")))
    out = tmp_path / "out.mkv"
    result = bounded(lambda: restore_video(clip, out, model="none"))
    assert isinstance(result.get("error"), OutputError)
    assert "input/output error while writing" in str(result["error"])
    assert result["seconds"] < 10
    assert partials(tmp_path) == []


def test_decoder_failure_mid_stream_ends_the_run(clip, tmp_path, monkeypatch):
    original = VideoSource.frames

    def failing_frames(self):
        for frame in original(self):
            if frame.index == 4:
                raise OSError(errno.EIO, "Input/output error")
            yield frame

    monkeypatch.setattr(VideoSource, "frames", failing_frames)
    out = tmp_path / "out.mkv"
    result = bounded(lambda: restore_video(clip, out, model="none"))
    assert isinstance(result.get("error"), MediaError)
    assert str(result["error"]) == f"cannot read {clip}: Input/output error"
    assert not out.exists() and partials(tmp_path) == []


def test_interrupt_during_a_long_stage_call_ends_the_run_at_once(clip, tmp_path):
    # The stage sits inside one long call (a model on a slow CPU); Ctrl-C must not wait for it.
    entered = threading.Event()

    def stage(frames):
        for frame in frames:
            if frame.index == 2:
                entered.set()
                time.sleep(30)
            yield frame

    out = tmp_path / "out.mkv"
    main = threading.main_thread().ident

    def interrupt() -> None:
        entered.wait(RUN_S)
        signal.pthread_kill(main, signal.SIGINT)

    killer = threading.Thread(target=interrupt, daemon=True)
    killer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        restore_video(clip, out, model="none", stage=stage)
    assert time.monotonic() - started < 10
    killer.join(5)
    assert not out.exists() and partials(tmp_path) == []


# -- the command line: one line, exit status, no traceback, no partial --------------------------------------

FAIL_WRITE = """
import errno, av
from vidrestore.media.sink import VideoSink
_write = VideoSink.write
def write(self, frame):
    if self.frames_written >= 5:
        raise {exc}
    return _write(self, frame)
VideoSink.write = write
"""

SLOW_STAGE = """
import time
import vidrestore.file as p
def slow(frames):
    for frame in frames:
        open({mark!r}, "w").close()  # the stage has started
        time.sleep({pause})
        yield frame
p.build_stage = lambda *a, **k: slow
"""


def test_cli_encoder_failure_one_line(clip, tmp_path):
    out = tmp_path / "out.mp4"
    proc = run_cli([clip, "-o", out, "--model", "none"],
                   patch=FAIL_WRITE.format(exc="av.FFmpegError(errno.EINVAL, 'Invalid argument')"))
    assert proc.returncode == 1, proc.stderr
    line = one_error_line(proc.stderr)
    assert line == f"vidrestore: FFmpeg could not encode or write {out}: Invalid argument"
    assert not out.exists() and partials(tmp_path) == []


def test_cli_stage_bug_one_line(clip, tmp_path):
    patch = """
import vidrestore.file as p
def broken(frames):
    for frame in frames:
        if frame.index == 7:
            raise RuntimeError("CUDA out of memory.\\nTried to allocate 2 GiB")
        yield frame
p.build_stage = lambda *a, **k: broken
"""
    out = tmp_path / "out.mkv"
    proc = run_cli([clip, "-o", out, "--model", "none"], patch=patch)
    assert proc.returncode == 1, proc.stderr
    line = one_error_line(proc.stderr)
    assert "internal error: RuntimeError: CUDA out of memory. Tried to allocate 2 GiB" in line
    assert not out.exists() and partials(tmp_path) == []


def test_cli_decoder_failure_one_line(clip, tmp_path):
    patch = """
import errno
from vidrestore.media.source import VideoSource
_frames = VideoSource.frames
def frames(self):
    for frame in _frames(self):
        if frame.index == 10:
            raise OSError(errno.EIO, "Input/output error")
        yield frame
VideoSource.frames = frames
"""
    out = tmp_path / "out.mkv"
    proc = run_cli([clip, "-o", out, "--model", "none"], patch=patch)
    assert proc.returncode == 1, proc.stderr
    assert one_error_line(proc.stderr) == f"vidrestore: cannot read {clip}: Input/output error"
    assert not out.exists() and partials(tmp_path) == []


def _tiny_tmpfs(folder: Path) -> bool:
    if os.geteuid() != 0:
        return False
    folder.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(folder)],
                          capture_output=True, timeout=30)
    return proc.returncode == 0


def test_cli_disk_full(tmp_path):
    """A real full disk (a 300 KiB tmpfs) when the test may mount one, else a write failing with ENOSPC."""
    src = make_clip(tmp_path / "big.mkv", Clip(frames=40, width=320, height=240, codec="ffv1", pix_fmt="yuv420p"))
    assert src.stat().st_size > 2 * 300 * 1024  # cannot fit
    disk = tmp_path / "disk"
    mounted = _tiny_tmpfs(disk)
    try:
        disk.mkdir(exist_ok=True)
        out = disk / "out.mkv"
        patch = "" if mounted else FAIL_WRITE.format(exc="OSError(errno.ENOSPC, 'No space left on device')")
        proc = run_cli([src, "-o", out, "--model", "none", "--codec", "ffv1"], patch=patch)
        assert proc.returncode == 1, proc.stderr
        assert one_error_line(proc.stderr) == f"vidrestore: no space left on device while writing {out}"
        assert not out.exists() and partials(disk) == []
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], capture_output=True, timeout=30)


def _wait_for(ready, proc: subprocess.Popen, timeout: float = RUN_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the signal: {proc.communicate()}")
        if ready():
            return
        time.sleep(0.05)
    pytest.fail("the run did not get going")


def _signal_mid_run(args: list, ready, signum: int, patch: str = "") -> tuple[subprocess.CompletedProcess, float]:
    """Start the CLI, wait until ``ready()`` (PyAV creates the file at the first packet), send ``signum``."""
    code = "import sys\n" + textwrap.dedent(patch) + "\nfrom vidrestore.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(ready, proc)
        time.sleep(0.1)
        sent = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("signum, status, words", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_cli_signal_mid_run(clip, tmp_path, signum, status, words):
    out = tmp_path / "out.mkv"
    mark = tmp_path / "started"
    proc, seconds = _signal_mid_run([clip, "-o", out, "--model", "none", "--codec", "ffv1"],
                                    lambda: partials(tmp_path), signum,
                                    patch=SLOW_STAGE.format(pause=0.2, mark=str(mark)))
    assert proc.returncode == status, proc.stderr
    line = one_error_line(proc.stderr)
    assert words in line and "partial output was removed" in line
    assert seconds < 10
    assert not out.exists() and partials(tmp_path) == []
    assert mark.exists()


def test_cli_sigterm_while_the_stage_is_inside_a_long_call(clip, tmp_path):
    out = tmp_path / "out.mkv"
    mark = tmp_path / "started"
    proc, seconds = _signal_mid_run([clip, "-o", out, "--model", "none"], mark.exists, signal.SIGTERM,
                                    patch=SLOW_STAGE.format(pause=60, mark=str(mark)))
    assert proc.returncode == 143, proc.stderr
    one_error_line(proc.stderr)
    assert seconds < 10
    assert not out.exists() and partials(tmp_path) == []


def test_cli_sigterm_real_run(tmp_path):
    """No fault injection: a real upscaling run, terminated half-way."""
    src = make_clip(tmp_path / "long.mkv", Clip(frames=900, width=160, height=120))
    work = tmp_path / "out"
    work.mkdir()
    out = work / "out.mkv"
    proc, seconds = _signal_mid_run(
        [src, "-o", out, "--model", "none", "--upscale", "2", "--bg-upsampler", "lanczos", "-q"],
        lambda: partials(work), signal.SIGTERM,
    )
    assert proc.returncode == 143, proc.stderr
    assert one_error_line(proc.stderr) == "vidrestore: terminated (SIGTERM); the partial output was removed"
    assert seconds < 10
    assert list(work.iterdir()) == []


def test_sigterm_handler_is_installed_only_while_main_runs(tmp_path):
    from vidrestore.cli import main

    before = signal.getsignal(signal.SIGTERM)
    assert main([str(tmp_path / "missing.mkv"), "--model", "none"]) == 1
    assert signal.getsignal(signal.SIGTERM) is before


# -- stale partials ------------------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


def test_partial_names_carry_the_writer_pid(tmp_path):
    tmp = temporary_path(tmp_path / "film.final.mp4")
    assert tmp.name.startswith(f".film.final.partial-{os.getpid()}-") and tmp.suffix == ".mp4"
    tmp.write_bytes(b"x")
    assert stale_partials(tmp_path / "film.final.mp4") == []  # its writer (this process) is alive


def test_stale_partials_are_removed_with_a_notice(clip, tmp_path):
    out = tmp_path / "out.mkv"
    dead = _dead_pid()
    killed = tmp_path / f".out.partial-{dead}-deadbeef.mkv"  # from a run that was SIGKILLed
    live = tmp_path / f".out.partial-{os.getpid()}-cafef00d.mkv"  # a run still writing (this process)
    old = tmp_path / ".out.partial-0badc0de.mkv"  # old-style name, untouched for an hour
    fresh = tmp_path / ".out.partial-12345678.mkv"  # old-style name, written a moment ago: maybe alive
    other = tmp_path / f".other.partial-{dead}-deadbeef.mkv"  # another output's
    for path in (killed, live, old, fresh, other):
        path.write_bytes(b"partial")
    os.utime(old, (time.time() - 3600, time.time() - 3600))

    proc = run_cli([clip, "-o", out, "--model", "none", "-q"])
    assert proc.returncode == 0, proc.stderr
    notices = [line for line in proc.stderr.splitlines() if "left by a run that was killed" in line]
    assert len(notices) == 1, proc.stderr
    assert killed.name in notices[0] and old.name in notices[0]
    assert not killed.exists() and not old.exists()
    assert live.exists() and fresh.exists() and other.exists()
    assert out.exists()
    assert sorted(p.name for p in partials(tmp_path)) == sorted(p.name for p in (live, fresh, other))
