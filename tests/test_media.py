"""The streaming spine through the Python API: frames, timestamps, streams and metadata survive."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media import Audio, Clip, decoded_frames, make_clip, stream_digests, video_timestamps
import functools

import vidrestore
from vidrestore.errors import MediaError, OutputError, UsageError


# the spine's tests run without face restoration (--model none): the face stages have their own tests
restore_video = functools.partial(vidrestore.restore_video, model="none")


def _same_streams(a: Path, b: Path) -> None:
    assert stream_digests(a) == stream_digests(b)


def _close_pixels(a: np.ndarray, b: np.ndarray) -> None:
    """Re-encoded at high quality: no colour shift, only 4:2:0 chroma loss on the pattern's hard edges."""
    d = a.astype(int) - b.astype(int)
    assert np.abs(d.mean(axis=(0, 1))).max() < 1.0
    assert np.abs(d).mean() < 4.0


def test_h264_aac_round_trip(tmp_path):
    src = make_clip(tmp_path / "in.mp4", Clip(audio=[Audio()]))
    stats = restore_video(src)
    out = tmp_path / "in_restored.mp4"
    assert stats.output == out and out.is_file()
    t_in, _ = video_timestamps(src)
    t_out, _ = video_timestamps(out)
    assert stats.frames == len(t_in) == len(t_out) == 24
    assert t_out == t_in
    _same_streams(src, out)
    # the pixels are the input's, re-encoded at high quality
    _close_pixels(decoded_frames(src)[5], decoded_frames(out)[5])
    with av.open(str(src)) as ci, av.open(str(out)) as co:
        assert abs(co.duration - ci.duration) <= 1_000_000 / 24


def test_two_audio_tracks_keep_order_language_and_title(tmp_path):
    src = make_clip(
        tmp_path / "two.mkv",
        Clip(audio=[Audio(language="eng", title="Main"), Audio(freq=880, language="fra", title="Commentary")]),
    )
    out = tmp_path / "two_out.mkv"
    restore_video(src, out)
    digests = stream_digests(out)
    assert [(d.language, d.title) for d in digests] == [("eng", "Main"), ("fra", "Commentary")]
    _same_streams(src, out)


def test_pcm_in_mov_is_copied(tmp_path):
    src = make_clip(tmp_path / "pcm.mov", Clip(audio=[Audio(codec="pcm_s16le", layout="mono", rate=16000)]))
    out = tmp_path / "pcm_out.mov"
    stats = restore_video(src, out)
    assert stats.notices == []
    _same_streams(src, out)


def test_pcm_into_mp4_is_transcoded_with_a_notice(tmp_path):
    src = make_clip(tmp_path / "pcm.mov", Clip(audio=[Audio(codec="pcm_s16le", layout="mono", rate=16000)]))
    out = tmp_path / "pcm_out.mp4"
    stats = restore_video(src, out)
    assert len(stats.notices) == 1 and "AAC" in stats.notices[0] and "\n" not in stats.notices[0]
    (digest,) = stream_digests(out)
    assert digest.codec == "aac" and digest.packets > 5
    # the audio is still there and still a 440 Hz tone of the same length
    with av.open(str(out)) as c:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    assert abs(len(samples) / 16000 - 1.0) < 0.15
    spectrum = np.abs(np.fft.rfft(samples[2000:14000]))
    assert abs(np.argmax(spectrum) * 16000 / 12000 - 440) < 10


def test_vfr_timestamps_are_kept(tmp_path):
    pts = [0, 40, 80, 200, 240, 400, 440, 480, 700, 720]
    src = make_clip(tmp_path / "vfr.mkv", Clip(frames=len(pts), pts=pts, time_base=Fraction(1, 1000), audio=[Audio()]))
    for ext in (".mkv", ".mp4", ".mov"):
        out = tmp_path / f"vfr_out{ext}"
        restore_video(src, out)
        t_out, _ = video_timestamps(out)
        assert t_out == pytest.approx([p / 1000 for p in pts], abs=1e-6), ext


@pytest.mark.parametrize("size", [(97, 61), (33, 48)])
def test_odd_frame_sizes(tmp_path, size):
    w, h = size
    src = make_clip(tmp_path / "odd.mkv", Clip(width=w, height=h, codec="ffv1", pix_fmt="yuv444p"))
    out = tmp_path / "odd_out.mp4"
    restore_video(src, out)
    frames = decoded_frames(out)
    assert len(frames) == 24 and frames[0].shape == (h, w, 3)
    _close_pixels(decoded_frames(src)[10], frames[10])


def test_anamorphic_sar_rotation_and_colour_metadata(tmp_path):
    color = {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 1}
    src = make_clip(
        tmp_path / "dv.mp4",
        Clip(width=720, height=480, frames=6, sar=Fraction(8, 9), rotation=90, color=color, audio=[Audio()]),
    )
    for ext in (".mp4", ".mkv", ".mov"):
        out = tmp_path / f"dv_out{ext}"
        restore_video(src, out)
        with av.open(str(out)) as c:
            v = c.streams.video[0]
            cc = v.codec_context
            assert cc.sample_aspect_ratio == Fraction(8, 9), ext
            assert (cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range) == (1, 1, 1, 1), ext
            frame = next(c.decode(v))
            assert frame.rotation == 90, ext


def test_full_range_bt709_pixels_survive(tmp_path):
    color = {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 2}
    src = make_clip(tmp_path / "full.mkv", Clip(frames=4, pix_fmt="yuvj420p" if False else "yuv420p", color=color))
    out = tmp_path / "full_out.mkv"
    restore_video(src, out)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.color_range == 2
    _close_pixels(decoded_frames(src)[2], decoded_frames(out)[2])


def test_subtitles_in_mkv_are_copied_and_converted_for_mp4(tmp_path):
    src = make_clip(tmp_path / "sub.mkv", Clip(audio=[Audio()], subtitles=[("eng", "Hello"), ("deu", "Hallo")]))
    out = tmp_path / "sub_out.mkv"
    assert restore_video(src, out).notices == []
    _same_streams(src, out)
    mp4 = tmp_path / "sub_out.mp4"
    stats = restore_video(src, mp4)
    assert sum("mov_text" in n for n in stats.notices) == 2
    digests = stream_digests(mp4)
    assert [d.type for d in digests] == ["audio", "subtitle", "subtitle"]
    assert [d.language for d in digests[1:]] == ["eng", "deu"]
    with av.open(str(mp4)) as c:
        texts = [bytes(p)[2:].decode() for p in c.demux(c.streams.subtitles[1]) if p.size]
    assert [t for t in texts if t] == ["Hallo 0", "Hallo 1"]  # mov_text fills gaps with empty samples


def test_codecs_and_containers(tmp_path):
    src = make_clip(tmp_path / "in.mp4", Clip(frames=8, audio=[Audio()]))
    for codec, ext in (("h265", ".mp4"), ("ffv1", ".mkv"), ("h264", ".mov")):
        out = tmp_path / f"o_{codec}{ext}"
        restore_video(src, out, codec=codec, crf=30 if codec != "ffv1" else None, preset="ultrafast")
        with av.open(str(out)) as c:
            assert c.streams.video[0].codec_context.name == {"h265": "hevc"}.get(codec, codec)
        assert len(video_timestamps(out)[0]) == 8
        _same_streams(src, out)


def test_output_rules(tmp_path):
    src = make_clip(tmp_path / "in.mp4", Clip(frames=4))
    with pytest.raises(UsageError, match="is the input"):
        restore_video(src, src)
    with pytest.raises(UsageError, match="is the input"):
        restore_video(src, tmp_path / "." / "in.mp4", overwrite=True)
    restore_video(src)
    out = tmp_path / "in_restored.mp4"
    before = out.stat().st_mtime_ns
    with pytest.raises(OutputError, match="--overwrite"):
        restore_video(src)
    assert out.stat().st_mtime_ns == before
    restore_video(src, overwrite=True)
    with pytest.raises(OutputError, match="does not exist"):
        restore_video(src, tmp_path / "missing" / "x.mp4")
    with pytest.raises(UsageError, match="extension"):
        restore_video(src, tmp_path / "x.avi")
    with pytest.raises(UsageError, match="codec"):
        restore_video(src, tmp_path / "y.mp4", codec="vp9")


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_mid_stream_leaves_no_file_and_keeps_the_input(tmp_path, exc):
    src = make_clip(tmp_path / "in.mkv", Clip(frames=30, audio=[Audio()]))
    data = src.read_bytes()

    def failing(frames):
        for frame in frames:
            if frame.index == 12:
                raise exc("boom")
            yield frame

    with pytest.raises(exc):
        restore_video(src, tmp_path / "out.mkv", stage=failing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]
    assert src.read_bytes() == data


def test_stage_sees_frames_in_order_and_bounded(tmp_path):
    """The face stage gets every frame once, in order, and decoding never runs far ahead of it."""
    import time

    src = make_clip(tmp_path / "in.mkv", Clip(frames=60))
    seen = []

    def slow(frames):
        for frame in frames:
            seen.append(frame.index)
            if frame.index == 0:
                time.sleep(0.5)  # decoding could race ahead here if the queue were unbounded
            yield frame

    import vidrestore.media.source as source_mod

    decoded_when_first_done = {}
    orig = source_mod.VideoSource.frames

    def counting(self):
        for frame in orig(self):
            decoded_when_first_done.setdefault("max", 0)
            decoded_when_first_done["max"] = frame.index
            if len(seen) == 1:
                decoded_when_first_done["during_sleep"] = frame.index
            yield frame

    source_mod.VideoSource.frames = counting
    try:
        stats = restore_video(src, tmp_path / "out.mkv", stage=slow)
    finally:
        source_mod.VideoSource.frames = orig
    assert seen == list(range(60)) and stats.frames == 60
    assert decoded_when_first_done["during_sleep"] <= 12


def test_no_video_stream_and_not_media(tmp_path):
    audio_only = tmp_path / "a.mka"
    with av.open(str(audio_only), "w") as out:
        s = out.add_stream("aac", rate=48000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 4800 * 2), np.int16), format="s16", layout="stereo")
        f.sample_rate, f.pts = 48000, 0
        for p in s.encode(f):
            out.mux(p)
        for p in s.encode():
            out.mux(p)
    with pytest.raises(MediaError, match="no video stream"):
        restore_video(audio_only)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match="not a media file"):
        restore_video(junk)


def test_truncated_and_corrupt_input_restores_what_decodes(tmp_path):
    src = make_clip(tmp_path / "in.mkv", Clip(frames=48, width=128, height=96, audio=[Audio()]))
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    stats = restore_video(cut, tmp_path / "cut_out.mkv")
    n = len(video_timestamps(tmp_path / "cut_out.mkv")[0])
    assert 10 < n < 48 and stats.frames == n


def test_corrupt_packets_are_skipped_and_counted(tmp_path):
    """Packets whose payload is scrambled fail to decode; they are counted and the rest goes on."""
    src = make_clip(tmp_path / "in.mkv", Clip(frames=30, audio=[Audio()]))
    with av.open(str(src)) as c:
        packets = [(p.pos, p.size, p.pts) for p in c.demux(video=0) if p.size]
    bad = bytearray(src.read_bytes())
    damaged = [packets[10], packets[20]]
    for pos, size, _ in damaged:
        bad[pos + 4 : pos + size - 2] = bytes(b ^ 0x5A for b in bad[pos + 4 : pos + size - 2])
    corrupt = tmp_path / "corrupt.mkv"
    corrupt.write_bytes(bytes(bad))
    stats = restore_video(corrupt, tmp_path / "out.mkv")
    assert stats.frames == 28 and stats.skipped_packets == 2
    assert any(n.startswith("warning: 2 corrupt packet") for n in stats.notices)
    times, _ = video_timestamps(tmp_path / "out.mkv")
    expected = [p[2] / 1000 for p in packets if p not in damaged]
    assert times == pytest.approx(expected, abs=1e-3)
    _same_streams(src, tmp_path / "out.mkv")
