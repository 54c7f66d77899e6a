"""The command line as a user meets it: real processes, real files, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from media import Audio, Clip, make_clip, stream_digests, video_timestamps


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The CLI in a fresh process; I/O-only (``--model none``) unless a test names a model."""
    extra = [] if "--model" in args else ["--model", "none"]
    return subprocess.run(
        [sys.executable, "-m", "vidrestore", *args, *extra], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, needle: str, code: int = 1) -> None:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("cli") / "movie.mp4", Clip(frames=12, audio=[Audio()]))


def test_default_run_writes_beside_the_input(tmp_path):
    src = make_clip(tmp_path / "home movie.mp4", Clip(frames=12, audio=[Audio()]))
    proc = run(str(src))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "home movie_restored.mp4"
    assert out.is_file()
    # not a terminal: no animation, just the summary line
    assert proc.stdout.count("\n") == 1 and "restored 12 frames" in proc.stdout and str(out) in proc.stdout
    assert "\x1b[" not in proc.stdout
    assert len(video_timestamps(out)[0]) == 12
    assert stream_digests(out) == stream_digests(src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home movie.mp4", "home movie_restored.mp4"]


def test_quiet_prints_nothing_and_options_apply(clip, tmp_path):
    out = tmp_path / "o.mkv"
    proc = run(str(clip), "-o", str(out), "--codec", "h265", "--crf", "28", "--preset", "ultrafast", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "hevc"


def test_existing_output_needs_overwrite(clip, tmp_path):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"precious")
    assert_one_line_error(run(str(clip), "-o", str(out)), "--overwrite")
    assert out.read_bytes() == b"precious"
    assert run(str(clip), "-o", str(out), "--overwrite", "-q").returncode == 0
    assert out.read_bytes() != b"precious"


def test_output_equal_to_input_is_refused(clip):
    before = clip.read_bytes()
    assert_one_line_error(run(str(clip), "-o", str(clip), "--overwrite"), "is the input")
    assert clip.read_bytes() == before


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda d: d / "nope.mp4", "no such file"),
        (lambda d: d, "is a folder"),
        (lambda d: _write(d / "empty.mp4", b""), "empty"),
        (lambda d: _write(d / "noise.mp4", np.random.default_rng(1).bytes(40_000)), "not a media file"),
    ],
    ids=["missing", "directory", "zero-bytes", "random-bytes"],
)
def test_bad_inputs_give_one_line(tmp_path, make, needle):
    assert_one_line_error(run(str(make(tmp_path))), needle)
    assert not list(tmp_path.glob("*_restored*"))


def test_audio_only_input(tmp_path):
    path = tmp_path / "song.m4a"
    with av.open(str(path), "w") as out:
        s = out.add_stream("aac", rate=48000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 9600), np.int16), format="s16", layout="stereo")
        f.sample_rate, f.pts = 48000, 0
        for p in [*s.encode(f), *s.encode()]:
            out.mux(p)
    assert_one_line_error(run(str(path)), "no video stream")


def test_unwritable_output_folder(clip, tmp_path):
    assert_one_line_error(run(str(clip), "-o", str(tmp_path / "no" / "such" / "dir.mp4")), "does not exist")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(run(str(clip), "-o", str(blocker / "out.mp4")), "not a folder")


def test_unknown_codec_and_bad_extension(clip, tmp_path):
    assert_one_line_error(run(str(clip), "--codec", "vp9"), "invalid choice", code=2)
    assert_one_line_error(run(str(clip), "-o", str(tmp_path / "x.avi")), "extension")


def test_nvenc_is_offered_and_refused_in_one_line_without_an_nvidia_gpu(clip, tmp_path):
    """--codec h264_nvenc is offered (PyAV's FFmpeg has the encoder); where no NVIDIA GPU and driver can open it, the
    run is refused in one line before anything is written. (bench/gpu_check.sh encodes with it on a GPU.)"""
    from vidrestore.media.picture import codec_formats
    from vidrestore.media.sink import nvenc_available

    assert "yuv420p" in codec_formats("h264_nvenc") and "cuda" not in codec_formats("h264_nvenc")
    if nvenc_available():
        out = tmp_path / "nv.mp4"
        assert run(str(clip), "--codec", "h264_nvenc", "-o", str(out)).returncode == 0 and out.is_file()
        return
    proc = run(str(clip), "--codec", "h264_nvenc", "-o", str(tmp_path / "nv.mp4"))
    assert proc.returncode != 0 and "NVIDIA" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_truncated_file_restores_what_decodes_with_a_warning(tmp_path):
    src = make_clip(tmp_path / "tape.mkv", Clip(frames=40, width=128, height=96, audio=[Audio()]))
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.5)])
    proc = run(str(cut), "-o", str(tmp_path / "cut_out.mkv"))
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stderr and "Traceback" not in proc.stderr
    assert 5 < len(video_timestamps(tmp_path / "cut_out.mkv")[0]) < 40


def test_console_script_and_help():
    exe = Path(sys.executable).with_name("vidrestore")
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--codec" in proc.stdout and "--overwrite" in proc.stdout
