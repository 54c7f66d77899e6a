"""The VHS clean-up: interlacing detected and removed with bwdif (frame and field rate), denoise, crop."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media import Audio, Clip, decoded_frames, make_clip, pattern, stream_digests, video_timestamps
from vidrestore.cli import batch as cli_batch
from vidrestore.batch import restore_folder
from vidrestore.errors import UsageError
from vidrestore.media.filters import FilterOptions, detect_interlace, plan_filters
from vidrestore.media.probe import probe

W, H, FPS = 128, 96, 25


def make_interlaced(path: Path, frames: int = 20, tff: bool = True, audio: bool = True) -> Path:
    """Interlaced H.264 (PAFF/MBAFF): each frame's two fields are taken 1/50 s apart, so motion combs."""
    tb = Fraction(1, FPS * 1000)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.time_base = v.codec_context.time_base = tb
        v.codec_context.sample_aspect_ratio = Fraction(16, 15)  # PAL 4:3 pixels
        order = "tff=1" if tff else "bff=1"
        v.codec_context.options = {"preset": "ultrafast", "crf": "12", "x264-params": f"interlaced=1:{order}"}
        a = out.add_stream("aac", rate=48000, layout="stereo") if audio else None
        for i in range(frames):
            first, second = pattern(4 * i, W, H), pattern(4 * i + 2, W, H)
            img = first.copy()
            rows = slice(1, None, 2) if tff else slice(0, None, 2)  # the later field
            img[rows] = second[rows]
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i * 1000, tb
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        if a is not None:
            n = frames * 48000 // FPS
            wave = (0.3 * np.sin(np.arange(n) * 0.05) * 32767).astype(np.int16)
            af = av.AudioFrame.from_ndarray(np.repeat(wave[None], 2, 0).reshape(1, -1, order="F"), format="s16",
                                            layout="stereo")
            af.sample_rate, af.pts = 48000, 0
            for p in [*a.encode(af), *a.encode()]:
                out.mux(p)
    return path


def comb(frame: np.ndarray) -> float:
    """How much each row differs from the mean of its neighbours (interlace combing), on the luma."""
    y = frame.astype(float) @ [0.299, 0.587, 0.114]
    return float(np.abs(y[1:-1] - (y[:-2] + y[2:]) / 2).mean())


@pytest.fixture(scope="module")
def tape(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("vhs_in")
    make_interlaced(d / "tape.mp4")
    return d


def test_probe_sees_interlacing_and_field_order(tmp_path, tape):
    info = probe(tape / "tape.mp4")
    found = detect_interlace(info)
    assert found.interlaced and found.top_field_first and found.flagged == found.sampled > 0
    bff = detect_interlace(probe(make_interlaced(tmp_path / "bff.mp4", frames=6, tff=False, audio=False)))
    assert bff.interlaced and not bff.top_field_first
    progressive = probe(make_clip(tmp_path / "p.mp4", Clip(frames=6)))
    assert not detect_interlace(progressive).interlaced
    assert plan_filters(progressive, FilterOptions(deinterlace="auto")).deinterlace is None
    assert plan_filters(info, FilterOptions(deinterlace="auto")).deinterlace == "frame"


def test_frame_mode_keeps_frames_and_timestamps_and_removes_combing(tape, tmp_path):
    r = restore_folder(tape, tmp_path / "out", model="none", filters=FilterOptions(deinterlace="frame"),
                       engine="inline", segment_seconds=0.4)
    assert r.exit_code == 0 and r.files[0].segments == 2
    src, out = tape / "tape.mp4", tmp_path / "out" / "tape.mp4"
    assert video_timestamps(out) == video_timestamps(src)  # times and SAR
    assert stream_digests(out) == stream_digests(src)
    before, after = decoded_frames(src), decoded_frames(out)
    assert len(after) == len(before) == 20
    assert np.mean([comb(f) for f in after[1:]]) < 0.5 * np.mean([comb(f) for f in before[1:]])


def test_field_mode_doubles_frames_at_exact_half_steps(tape, tmp_path):
    r = restore_folder(tape, tmp_path / "out", model="none", filters=FilterOptions(deinterlace="field"),
                       engine="inline", segment_seconds=0.4)
    assert r.exit_code == 0 and r.files[0].frames == 40
    t_in, sar_in = video_timestamps(tape / "tape.mp4")
    t_out, sar_out = video_timestamps(tmp_path / "out" / "tape.mp4")
    assert len(t_out) == 40 and sar_out == sar_in == Fraction(16, 15)
    half = 1 / (2 * FPS)
    assert t_out[0::2] == pytest.approx(t_in) and t_out[1::2] == pytest.approx([t + half for t in t_in])
    assert stream_digests(tmp_path / "out" / "tape.mp4") == stream_digests(tape / "tape.mp4")


def test_crop_bottom_keeps_an_even_cropped_size_and_the_sar(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "wide.mkv", Clip(frames=12, width=96, height=64, sar=Fraction(8, 9), audio=[Audio()]))
    r = restore_folder(src, tmp_path / "out", model="none", engine="inline",
                       filters=FilterOptions(crop_bottom=7, denoise="light"))
    assert r.exit_code == 0
    out = tmp_path / "out" / "wide.mkv"
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (96, 56)  # 64 - 7 = 57 is odd: 8 rows cut
    assert video_timestamps(out) == video_timestamps(src / "wide.mkv")  # same times, SAR 8:9 kept
    a, b = decoded_frames(src / "wide.mkv")[6], decoded_frames(out)[6]
    assert np.abs(a[:56].astype(int) - b).mean() < 6  # the top of the picture, lightly denoised


def test_profile_and_flags(tmp_path):
    args = cli_batch.build_parser().parse_args([str(tmp_path), "-o", str(tmp_path / "o"), "--profile", "vhs"])
    assert cli_batch.batch_options(args).filters == FilterOptions(deinterlace="auto", denoise="light")
    args = cli_batch.build_parser().parse_args(
        [str(tmp_path), "-o", "o", "--profile", "vhs", "--denoise", "off", "--deinterlace", "field", "--crop-bottom", "8"]
    )
    assert cli_batch.batch_options(args).filters == FilterOptions(deinterlace="field", denoise="off", crop_bottom=8)
    with pytest.raises(UsageError):
        FilterOptions(crop_bottom=-1)
    info = probe(make_clip(tmp_path / "s.mp4", Clip(frames=2, height=16)))
    with pytest.raises(UsageError):
        plan_filters(info, FilterOptions(crop_bottom=15))
