"""The I/O options in every door (single file, batch, still), batch's error policy, colour tags through
batch segments, and progress on a slow run."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media import Audio, Clip, make_clip, stream_digests, video_timestamps
from test_vhs import comb, make_interlaced
import vidrestore.batch.run as batch_run
import vidrestore.file
from vidrestore import batch, pipeline
from vidrestore.batch.engines import Inline
from vidrestore.cli import batch as cli_batch
from vidrestore.batch import BatchAborted, restore_folder
from vidrestore.errors import MediaError, OutputError, WeightsError
from vidrestore.options import RestoreOptions
from vidrestore.file import restore_video
from vidrestore.util import FrameProgress, RateEstimator, format_rate

REPO = Path(__file__).resolve().parents[1]
FAST = ["--model", "none", "--preset", "ultrafast"]


def cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "vidrestore", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    proc.wall = time.monotonic() - started  # type: ignore[attr-defined]
    return proc


def one_line(proc: subprocess.CompletedProcess, needle: str, code: int = 1) -> None:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def frames_of(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return [f for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("options")
    return {
        "tape": make_interlaced(d / "tape.mp4", frames=12),
        "clip": make_clip(d / "clip.mkv", Clip(frames=24, audio=[Audio()])),  # 1 s at 24 fps
    }


# -- single file: every flag on a tiny clip -------------------------------------------------------------------------
@pytest.mark.parametrize("mode,factor", [("frame", 1), ("field", 2)])
def test_deinterlace_in_the_single_file_command(media, tmp_path, mode, factor):
    out = tmp_path / "out.mkv"
    proc = cli(media["tape"], "-o", out, "--deinterlace", mode, *FAST)
    assert proc.returncode == 0 and proc.wall < 60, proc.stderr
    before, after = frames_of(media["tape"]), frames_of(out)
    assert len(after) == factor * len(before)
    assert not any(f.interlaced_frame for f in after)  # deinterlaced: never flagged interlaced
    a, b = before[6].to_ndarray(format="rgb24"), after[6 * factor].to_ndarray(format="rgb24")
    assert comb(b) < 0.6 * comb(a)


def test_denoise_alone_keeps_the_interlacing_flags(media, tmp_path):
    """Denoised but not deinterlaced: the fields are still there, so the output stays flagged interlaced."""
    out = tmp_path / "out.mkv"
    proc = cli(media["tape"], "-o", out, "--denoise", "light", *FAST)
    assert proc.returncode == 0, proc.stderr
    with av.open(str(out)) as c:
        order = c.streams.video[0].codec_context.field_order
        first = next(c.decode(video=0))
    assert order == 2 and first.interlaced_frame  # top field first, as the tape


def test_denoise_and_vhs_profile_in_the_single_file_command(media, tmp_path):
    out = tmp_path / "out.mkv"
    proc = cli(media["clip"], "-o", out, "--denoise", "light", *FAST)
    assert proc.returncode == 0 and proc.wall < 60, proc.stderr
    assert len(frames_of(out)) == 24
    # the VHS profile on a progressive clip: auto finds no interlacing, so the frame count and timestamps stay
    out2 = tmp_path / "vhs.mkv"
    proc = cli(media["clip"], "-o", out2, "--profile", "vhs", "--crop-bottom", "8", *FAST)
    assert proc.returncode == 0, proc.stderr
    frames = frames_of(out2)
    assert len(frames) == 24 and (frames[0].width, frames[0].height) == (96, 56)
    assert video_timestamps(out2)[0] == video_timestamps(media["clip"])[0]


@pytest.mark.parametrize("flags,first,count", [
    (["--start", "0.5"], 12, 12),
    (["--start", "0:00.25", "--end", "0.75"], 6, 12),
    (["--start", "0.25", "--duration", "0.5"], 6, 12),
    (["--end", "0.5"], 0, 12),
])
def test_start_end_duration(media, tmp_path, flags, first, count):
    out = tmp_path / "part.mkv"
    proc = cli(media["clip"], "-o", out, *flags, *FAST)
    assert proc.returncode == 0 and proc.wall < 60, proc.stderr
    times, _sar = video_timestamps(out)
    assert len(times) == count
    assert times[0] == pytest.approx(0.0, abs=1e-6)  # the output starts at 0
    src = decoded(media["clip"])
    got = decoded(out)
    assert np.abs(got[0].astype(int) - src[first]).mean() < 3  # the right frame came first


def decoded(path: Path) -> list[np.ndarray]:
    return [f.to_ndarray(format="rgb24") for f in frames_of(path)]


@pytest.mark.parametrize("flags,needle,code", [
    (["--start", "0.8", "--end", "0.2"], "must be after --start", 1),
    (["--start", "soon"], "--start 'soon' is not a time", 1),
    (["--duration", "0"], "--duration must be more than 0", 1),
    (["--end", "1", "--duration", "1"], "not allowed with argument", 2),
    (["--start", "0:05"], "past the end of the video", 1),
    (["--pix-fmt", "nv99"], "--pix-fmt nv99", 1),
])
def test_bad_ranges_are_one_line(media, tmp_path, flags, needle, code):
    one_line(cli(media["clip"], "-o", tmp_path / "x.mkv", *flags, *FAST), needle, code)


def test_pix_fmt(media, tmp_path):
    out = tmp_path / "p.mkv"
    proc = cli(media["clip"], "-o", out, "--pix-fmt", "yuv444p", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert frames_of(out)[0].format.name == "yuv444p"


def test_still_counts_at_from_start(media, tmp_path):
    png = tmp_path / "s.png"
    proc = cli("still", media["clip"], "--at", "0.25", "--start", "0.5", "-o", png, "--model", "none")
    assert proc.returncode == 0, proc.stderr
    one_line(cli("still", media["clip"], "--at", "0.5", "--start", "0.25", "--end", "0.5", "-o", png, "--model",
                 "none", "--overwrite"), "after the part chosen")


def test_batch_takes_the_range(media, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mkv", Clip(frames=24, audio=[Audio()]))
    r = restore_folder(src, tmp_path / "out", model="none", preset="ultrafast", engine="inline",
                       segment_seconds=0.25, start=0.25, end=0.75)
    assert r.exit_code == 0, r.failed
    times, _ = video_timestamps(tmp_path / "out" / "a.mkv")
    assert len(times) == 12 and times[0] == pytest.approx(0.0, abs=1e-6)
    # the same part as a single-file run: same frame times, same audio packets (cut and shifted alike)
    single = restore_video(src / "a.mkv", tmp_path / "single.mkv", model="none", preset="ultrafast",
                           start=0.25, end=0.75).output
    assert video_timestamps(single) == video_timestamps(tmp_path / "out" / "a.mkv")
    assert stream_digests(single) == stream_digests(tmp_path / "out" / "a.mkv")
    assert stream_digests(single)[0].packets < stream_digests(src / "a.mkv")[0].packets
    # a part that a file does not reach fails that file in one line
    r = restore_folder(src, tmp_path / "out2", model="none", preset="ultrafast", engine="inline", start=5)
    assert r.files[0].status == "failed" and "past the end of the video" in r.files[0].error


# -- colour tags through batch segments ---------------------------------------------------------------------------
def colour(path: Path) -> tuple[int, int, int, int]:
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        return (cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc)


@pytest.mark.parametrize("tags", [
    dict(color_range=1),  # tv range alone: x264 writes no VUI for it and the segment .mp4 no colr box
    dict(color_range=1, colorspace=6, color_primaries=6, color_trc=6),
    dict(color_range=2, colorspace=1, color_primaries=1, color_trc=1),
])
def test_batch_keeps_colour_tags_like_a_single_file(tmp_path, tags):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mkv", Clip(frames=12, color=tags))
    single = restore_video(src / "a.mkv", tmp_path / "single.mkv", model="none", preset="ultrafast").output
    r = restore_folder(src, tmp_path / "out", model="none", preset="ultrafast", engine="inline",
                       segment_seconds=0.2)
    assert r.exit_code == 0 and r.files[0].segments > 1
    assert colour(tmp_path / "out" / "a.mkv") == colour(single) == colour(src / "a.mkv")
    assert colour(single)[0] == tags["color_range"]


# -- batch: which errors fail a file, which stop the batch --------------------------------------------------------
def _folder(tmp_path: Path, names=("a.mkv", "b.mkv")) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    for n in names:
        make_clip(src / n, Clip(frames=6))
    return src


def _failing_on(name: str, exc: BaseException, calls: list):
    def factory(options, stats, notice):
        calls.append(str(stats.input))
        if str(stats.input).endswith(name):
            raise exc
        return pipeline.identity_stage

    return factory


@pytest.mark.parametrize("exc", [TypeError("'NoneType' object is not subscriptable"), MemoryError()])
def test_a_programming_error_stops_the_batch_with_a_log(tmp_path, exc):
    src = _folder(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(BatchAborted) as info:
        restore_folder(src, out, model="none", preset="ultrafast", engine="inline",
                       stage_factory=_failing_on("b.mkv", exc, []))
    message = str(info.value)
    assert "\n" not in message and "b.mkv" in message and type(exc).__name__ in message
    log = info.value.log
    assert log is not None and log.is_file() and str(log) in message
    assert "Traceback" in log.read_text() and type(exc).__name__ in log.read_text()
    entries = json.loads((out / batch.MANIFEST).read_text())["files"]
    assert entries["a.mkv"]["status"] == "ok" and "b.mkv" not in entries  # b is tried again by the next run


def test_a_programming_error_on_the_command_line_is_one_line(tmp_path, capsys, monkeypatch):
    src = _folder(tmp_path)
    monkeypatch.setattr(batch_run, "make_engine", lambda *_a: Inline())
    args = cli_batch.build_parser().parse_args([str(src), "-o", str(tmp_path / "out"), "-q", *FAST])
    code = cli_batch.run(args, stage_factory=_failing_on("a.mkv", KeyError("track"), []))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "internal error on a.mkv: KeyError" in err[0], err
    assert re.search(r"vidrestore-error-[\d-]+\.log", err[0])


def test_expected_errors_fail_only_their_file(tmp_path):
    src = _folder(tmp_path, ("a.mkv", "b.mkv", "c.mkv"))
    calls: list = []

    def factory(options, stats, notice):
        if str(stats.input).endswith("a.mkv"):
            raise MediaError("a.mkv: the decoder gave up")
        if str(stats.input).endswith("b.mkv"):
            raise av.InvalidDataError(1094995529, "Invalid data found when processing input")
        return pipeline.identity_stage

    r = restore_folder(src, tmp_path / "out", model="none", preset="ultrafast", engine="inline",
                       stage_factory=factory)
    kinds = {f.input: (f.status, f.kind) for f in r.files}
    assert kinds == {"a.mkv": ("failed", "input"), "b.mkv": ("failed", "input"), "c.mkv": ("ok", None)}


@pytest.mark.parametrize("exc", [WeightsError("GFPGANv1.4.pth is missing: run 'vidrestore weights fetch'"),
                                 OutputError("no space left on device while writing out.mkv")])
def test_an_environmental_failure_is_retried_by_a_plain_rerun(tmp_path, capsys, exc):
    src = _folder(tmp_path, ("a.mkv",))
    out = tmp_path / "out"
    kw = dict(model="none", preset="ultrafast", engine="inline")
    r = restore_folder(src, out, stage_factory=_failing_on("a.mkv", exc, []), **kw)
    assert [(f.status, f.kind) for f in r.files] == [("failed", "environment")]
    assert json.loads((out / batch.MANIFEST).read_text())["files"]["a.mkv"]["kind"] == "environment"
    calls: list = []
    r = restore_folder(src, out, stage_factory=_failing_on("nothing", exc, calls), **kw)  # weights now there
    assert [f.status for f in r.files] == ["ok"] and calls, "the environmental failure was not retried"


def test_rerun_names_retry_failed_for_files_that_failed_earlier(tmp_path, capsys, monkeypatch):
    src = _folder(tmp_path, ("a.mkv",))
    (src / "bad.mp4").write_bytes(b"\x00" * 4000)
    monkeypatch.setattr(batch_run, "make_engine", lambda *_a: Inline())
    argv = [str(src), "-o", str(tmp_path / "out"), "-q", *FAST]
    assert cli_batch.run(cli_batch.build_parser().parse_args(argv)) == 1
    capsys.readouterr()
    assert cli_batch.run(cli_batch.build_parser().parse_args(argv)) == 1
    err = capsys.readouterr().err
    assert "pass --retry-failed" in err and "Traceback" not in err


# -- progress --------------------------------------------------------------------------------------------------------
def test_rate_estimator_is_steady_under_bursts():
    """8 frames arrive together every 9.6 s (a batching stage at 1.2 s/frame): the pace stays 1.2 s/frame, and
    the ETA never swings by more than a few x (rich's windowed speed swung by 100x)."""
    now = [0.0]
    est = RateEstimator(clock=lambda: now[0])
    total, done, etas = 400, 0, []
    for _burst in range(20):
        for _ in range(8):  # while waiting the count does not change
            now[0] += 1.2
            est.update(done)
            if done:
                etas.append((est.eta(total), (total - done) * 1.2 - 0))
        done += 8
        est.update(done)
    assert est.seconds_per_frame == pytest.approx(1.2, rel=0.01)
    for eta, truth in etas[8:]:
        assert truth / 3 < eta < truth * 3
    assert format_rate(1.2) == "1.2 s/frame" and format_rate(0.04) == "25.0 fps"


def test_progress_shows_loading_then_seconds_per_frame_and_a_sane_eta(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "slow.mkv", Clip(frames=6, fps=6))

    def slow(frames):
        for f in frames:
            time.sleep(1.2)
            yield f

    def build_stage(options, stats, notice, info=None):
        time.sleep(0.6)  # loading models
        return slow

    monkeypatch.setattr(vidrestore.file, "build_stage", build_stage)
    buf = io.StringIO()
    from rich.console import Console

    console = Console(file=buf, force_terminal=True, width=160, color_system=None)
    started = time.monotonic()
    with FrameProgress(enabled=True, console=console) as bar:
        stats = restore_video(clip, tmp_path / "out.mkv", RestoreOptions(model="gfpgan-1.4", preset="ultrafast"),
                              progress=bar.update, phase=bar.phase,
                              on_start=lambda info, dst: bar.start(info.estimated_frames, dst.name))
    assert stats.frames == 6 and time.monotonic() - started < 60
    text = buf.getvalue()
    assert "loading models…" in text
    assert text.index("loading models…") < text.index("out.mkv")
    assert re.search(r"1\.\d s/frame", text), text[-2000:]
    etas = [int(m) * 60 + int(s) for m, s in re.findall(r"ETA (\d\d):(\d\d)", text)]
    assert etas and max(etas) <= 12  # 6 frames at 1.2 s: never minutes
    assert any(e >= 2 for e in etas)  # and not "3 s when 8 minutes remain": it counted the frames left
