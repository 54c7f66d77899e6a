"""Audio and subtitles into every container, --start/--end cuts, and truncation, on real-world codec pairings.

Every input is made here with PyAV's own encoders (DV/PCM in AVI, MJPEG/pcm_u8 in AVI, HEVC/Opus in MKV,
MPEG-2/MP2 in MPEG-PS, H.263/AAC in 3GP), tiny, and each CLI run carries a time bound so a hang fails.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media import pattern

import vidrestore
from vidrestore.errors import UsageError
from vidrestore.media.probe import probe
from vidrestore.media.audio import audio_layout
from vidrestore.media.sink import EncodeOptions, VideoSink
from vidrestore.media.source import VideoSource, check_range

REPO = Path(__file__).resolve().parents[1]


def make_av(path, fmt, vcodec, acodec, *, size=(96, 64), fps=25, frames=25, rate=48000, layout="stereo",
            pix_fmt="yuv420p", vopts=None):
    """A clip with one video and one audio stream (a 440 Hz tone) in container ``fmt``."""
    w, h = size
    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream(vcodec, rate=fps)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        if vopts:
            v.codec_context.options = vopts
        a = out.add_stream(acodec, rate=rate, layout=layout)
        afmt = a.codec_context.codec.audio_formats[0].name
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(pattern(i, w, h), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            out.mux(v.encode(f))
        out.mux(v.encode())
        n = int(frames / fps * rate)
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate) * 32767).astype(np.int16)
        ch = 1 if layout == "mono" else 2
        frame = av.AudioFrame.from_ndarray(np.repeat(wave[None, :], ch, 0).reshape(1, -1, order="F"),
                                           format="s16", layout=layout)
        frame.sample_rate, frame.pts = rate, 0
        res = av.AudioResampler(format=afmt, layout=layout, rate=rate)
        for rf in res.resample(frame) + res.resample(None):
            out.mux(a.encode(rf))
        out.mux(a.encode())
    return Path(path)


SOURCES = {
    "dv.avi": dict(fmt="avi", vcodec="dvvideo", acodec="pcm_s16le", size=(720, 576), frames=10),
    "mjpeg.avi": dict(fmt="avi", vcodec="mjpeg", acodec="pcm_u8", pix_fmt="yuvj420p", rate=8000, layout="mono"),
    "hevc.mkv": dict(fmt="matroska", vcodec="libx265", acodec="libopus",
                     vopts={"preset": "ultrafast", "x265-params": "log-level=error"}),
    "mpeg2.mpg": dict(fmt="mpeg", vcodec="mpeg2video", acodec="mp2"),
    "h263.3gp": dict(fmt="3gp", vcodec="h263", acodec="aac", size=(128, 96), rate=8000, layout="mono", fps=15,
                     frames=15),
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("streams")
    return {name: make_av(d / name, **kw) for name, kw in SOURCES.items()}


def packets(path: Path, kind: str = "audio") -> list[tuple[float, float, bytes]]:
    """(start s, end s, payload) of every packet of the first stream of ``kind``."""
    with av.open(str(path)) as c:
        s = c.streams.get(**{kind: 0})[0]
        return [(float(p.pts * s.time_base), float((p.pts + (p.duration or 0)) * s.time_base), bytes(p))
                for p in c.demux(s) if p.size and p.pts is not None]


def span(path: Path, kind: str) -> tuple[float, float]:
    """When the stream starts and ends as a player presents it (decoded: an encoder's priming is trimmed)."""
    with av.open(str(path)) as c:
        s = c.streams.get(**{kind: 0})[0]
        if kind == "audio":
            t = [(float(f.pts * f.time_base), float(f.pts * f.time_base) + f.samples / f.sample_rate)
                 for f in c.decode(s) if f.pts is not None]
        else:
            t = [(float(f.pts * f.time_base), float((f.pts + (f.duration or 0)) * f.time_base)) for f in c.decode(s)]
    return min(a for a, _ in t), max(b for _, b in t)


def digest(ps) -> str:
    return hashlib.sha256(b"".join(p[2] for p in ps)).hexdigest()


def run_cli(src: Path, dst: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "vidrestore", str(src), "-o", str(dst), "--model", "none", "--preset",
           "ultrafast", "--overwrite", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)  # a hang fails the test


# (source, output extension, what becomes of the audio: None = copied bit-exact, else the codec in the notice)
CASES = [
    ("dv.avi", ".mp4", "AAC"),  # PCM with no channel layout: the layout comes from the channel count
    ("dv.avi", ".mkv", None),
    ("mjpeg.avi", ".mp4", "AAC"),
    ("hevc.mkv", ".mov", "AAC"),  # MOV holds no Opus
    ("mpeg2.mpg", ".mp4", None),  # MP2 is taken by MP4
    ("h263.3gp", ".mkv", None),
]


@pytest.mark.parametrize("name,ext,converted", CASES, ids=[f"{c[0]}->{c[1]}" for c in CASES])
def test_audio_into_any_container(sources, tmp_path, name, ext, converted):
    src = sources[name]
    dst = tmp_path / f"out{ext}"
    r = run_cli(src, dst)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    if converted is None:
        assert digest(packets(dst)) == digest(packets(src))  # bit-exact copy
        assert "audio" not in r.stderr
    else:
        assert f"converting it to {converted}" in r.stderr, r.stderr
        with av.open(str(dst)) as c:
            assert c.streams.audio[0].codec_context.name == converted.lower()
    if converted is None:  # the copied packets sit where they sat against the picture (priming included)
        for path in (src, dst):
            v0, v1 = span(path, "video")
            ps = packets(path)
            offsets = (round(ps[0][0] - v0, 3), round(ps[-1][1] - v1, 3))
            if path == src:
                expected = offsets
        assert offsets[0] == pytest.approx(expected[0], abs=0.002)  # start: exact
        assert offsets[1] == pytest.approx(expected[1], abs=0.03)  # end: Matroska rounds durations to 1 ms
    else:  # as played: converted audio starts and ends with the picture
        v0, v1 = span(dst, "video")
        a0, a1 = span(dst, "audio")
        assert abs(a0 - v0) < 0.01 and abs(a1 - v1) < 0.07


def test_lossless_audio_into_mov_becomes_pcm(tmp_path):
    src = make_av(tmp_path / "flac.mkv", "matroska", "libx264", "flac", vopts={"preset": "ultrafast"})
    notices = []
    vidrestore.restore_video(src, tmp_path / "out.mov", model="none", notice=notices.append)
    assert any("converting it to pcm_s16le (lossless" in n for n in notices), notices
    with av.open(str(src)) as a, av.open(str(tmp_path / "out.mov")) as b:
        before = np.concatenate([f.to_ndarray() for f in a.decode(audio=0)], axis=1)
        after = np.concatenate([f.to_ndarray() for f in b.decode(audio=0)], axis=1)
    assert before.size and np.array_equal(before.reshape(-1), after.reshape(-1))


def test_default_layout_for_a_bare_channel_count(sources):
    with av.open(str(sources["dv.avi"])) as c:
        cc = c.streams.audio[0].codec_context
        assert cc.layout.name == "2 channels"  # what DV in AVI states
        assert audio_layout(cc) == "stereo"


def cut(src: Path, dst: Path, start: float | None, end: float | None, notices: list) -> VideoSource:
    info = probe(src)
    start, end = check_range(info, start, end)
    with VideoSource(info, start=start, end=end) as source, VideoSink(
        dst, info, EncodeOptions(codec="ffv1"), notices.append, start=start, end=end
    ) as sink:
        for frame in source.frames():
            sink.write(frame)
        sink.close()
    return source


def test_start_end_copied_audio_is_cut_at_packets_in_sync(sources, tmp_path):
    """MPEG-PS starts at 0.5 s: 0.2..0.6 s of it comes out as 10 frames from 0, the MP2 copied packet-exact."""
    src, dst, notices = sources["mpeg2.mpg"], tmp_path / "cut.mkv", []
    source = cut(src, dst, 0.2, 0.6, notices)
    with av.open(str(dst)) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    assert source.stats.frames == 10 and times == pytest.approx([i / 25 for i in range(10)], abs=1e-3)
    kept = packets(dst)
    origin = probe(src).start_time
    wanted = [p for p in packets(src) if origin + 0.2 - 1e-3 <= p[0] < origin + 0.6]
    assert [p[2] for p in kept] == [p[2] for p in wanted]  # bit-exact, whole packets inside the range
    assert kept[0][0] >= 0 and kept[0][0] < 0.025 and abs(kept[-1][1] - 0.4) < 0.025
    assert any("cut at its own packet boundaries" in n for n in notices)


def test_start_end_pcm_is_cut_to_the_sample(sources, tmp_path):
    src, dst = sources["mjpeg.avi"], tmp_path / "cut.mkv"
    source = cut(src, dst, 0.2, 0.6, [])
    assert source.stats.frames == 10
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        before = np.concatenate([f.to_ndarray() for f in a.decode(audio=0)], axis=1).reshape(-1)
        after = np.concatenate([f.to_ndarray() for f in b.decode(audio=0)], axis=1).reshape(-1)
        assert b.streams.audio[0].codec_context.name == "pcm_u8"
    assert np.array_equal(after, before[1600:4800])  # 0.2 s .. 0.6 s at 8 kHz, exactly
    assert span(dst, "audio") == pytest.approx((0.0, 0.4), abs=1e-3)


def test_start_end_converted_audio_in_sync(sources, tmp_path):
    dst = tmp_path / "cut.mov"
    info = probe(sources["hevc.mkv"])
    with VideoSource(info, start=0.4, end=0.8) as source, VideoSink(
        dst, info, EncodeOptions(preset="ultrafast"), start=0.4, end=0.8
    ) as sink:
        for frame in source.frames():
            sink.write(frame)
        sink.close()
    assert source.stats.frames == 10
    assert span(dst, "video") == pytest.approx((0.0, 0.4), abs=1e-3)
    assert span(dst, "audio") == pytest.approx((0.0, 0.4), abs=0.025)


def test_range_errors(sources):
    info = probe(sources["mjpeg.avi"])
    with pytest.raises(UsageError, match="--start must be 0 or more"):
        check_range(info, -1, None)
    with pytest.raises(UsageError, match="must come after --start"):
        check_range(info, 0.5, 0.5)
    with pytest.raises(UsageError, match="past the end"):
        check_range(info, 5.0, None)
    assert check_range(info, 0.2, 99.0) == (0.2, None)


@pytest.fixture(scope="module")
def long_avi(tmp_path_factory):
    d = tmp_path_factory.mktemp("trunc")
    return make_av(d / "long.avi", "avi", "mjpeg", "pcm_s16le", pix_fmt="yuvj420p", frames=100, rate=8000,
                   layout="mono")


def test_truncated_file_says_how_much_is_missing(long_avi, tmp_path):
    cut_file = tmp_path / "cut.avi"
    data = long_avi.read_bytes()
    cut_file.write_bytes(data[: int(len(data) * 0.7)])  # cut before the index: the header still says 100 frames
    notices = []
    stats = vidrestore.restore_video(cut_file, tmp_path / "out.mkv", model="none", notice=notices.append)
    missing = 4.0 - stats.frames / 25
    assert stats.truncated and stats.missing_seconds == pytest.approx(missing, abs=0.05) and missing > 1.5
    assert any(f"{missing:.1f} s" in n and "truncated" in n for n in notices), notices


def test_corrupt_middle_is_counted_not_called_truncated(long_avi, tmp_path):
    with av.open(str(long_avi)) as c:
        where = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    bad = bytearray(long_avi.read_bytes())
    for pos, size in where[40:43]:
        bad[pos + 8 : pos + size - 2] = bytes(b ^ 0x5A for b in bad[pos + 8 : pos + size - 2])
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(bytes(bad))
    notices = []
    stats = vidrestore.restore_video(corrupt, tmp_path / "out.mkv", model="none", notice=notices.append)
    assert stats.frames == 97 and stats.skipped_packets == 3
    assert not stats.truncated and not any("truncated" in n for n in notices), notices
