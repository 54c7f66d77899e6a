"""Archive formats through `--model none`: pixel format, picture quality vs FFmpeg's own encode, SAR, field order.

Media are made by tests/media_formats.py with PyAV's encoders (tiny: 64x48, DV's fixed 720x480, a few frames).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media_formats import FORMATS, decode, ffmpeg_baseline, make_format, planes, psnr
from vidrestore import restore_video
from vidrestore.errors import UsageError
from vidrestore.media.picture import output_pix_fmt
from vidrestore.media.sink import EncodeOptions

# what FFmpeg's CLI writes for each (checked with Debian's ffmpeg 5.1: `ffmpeg -i SRC -c:v libx264 out.mkv`)
EXPECTED = {  # name: (pix_fmt out, SAR, stream field order in .mkv: 1 progressive, 2 tt, 3 bb)
    "dv": ("yuv422p", Fraction(8, 9), 3),
    "dv_mov": ("yuv422p", Fraction(10, 11), 3),  # container (pasp) 10:11 wins over the bitstream's 8:9
    "mpeg2": ("yuv420p", Fraction(1), 2),
    "prores": ("yuv422p10le", Fraction(1), 1),
    "hevc10": ("yuv420p10le", Fraction(1), 1),
    "mjpeg": ("yuvj422p", Fraction(1), 1),
    "h263": ("yuv420p", Fraction(1), 1),  # container 1:1 wins over the bitstream's 12:11
    "ffv1_422": ("yuv422p", Fraction(1), 1),
    "rgb": ("yuv444p", Fraction(1), 1),
}
CASES = [(n, ext) for n in EXPECTED for ext in (".mkv", ".mp4")]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    made: dict[str, tuple[Path, float]] = {}

    def get(name: str) -> tuple[Path, float]:
        if name not in made:
            f = FORMATS[name]
            src = make_format(root / f"{name}{f.ext}", f)
            base = psnr(decode(src), decode(ffmpeg_baseline(src, root / f"{name}_base.mkv")))
            made[name] = (src, base)
        return made[name]

    return get


@pytest.mark.parametrize("name,ext", CASES)
def test_format_kept(media, tmp_path, name, ext):
    src, baseline = media(name)
    out = tmp_path / f"out{ext}"
    notes: list[str] = []
    restore_video(src, out, model="none", overwrite=True, notice=notes.append)
    pix_fmt, sar, order = EXPECTED[name]
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        assert v.codec_context.format.name == pix_fmt
        assert v.sample_aspect_ratio == sar
        if ext == ".mkv":
            assert int(v.codec_context.field_order) == order
    ref = decode(src)
    assert [f.interlaced_frame for f in frames] == [f.interlaced_frame for f in ref]
    ours = psnr(ref, frames)
    # libx264 is not run-to-run reproducible here (threads): on clips this small one encode's PSNR moves by up to
    # ~0.7 dB, so the test allows 1 dB; bench/io.py checks the issue's -0.5 dB target. The picture losses this
    # guards against (10-bit to 8-bit, 4:2:2 to 4:2:0, clipping) cost 8-25 dB.
    assert ours >= baseline - 1.0, (ours, baseline)
    if pix_fmt != ref[0].format.name:
        assert any(pix_fmt in n for n in notes), notes


def _stage(edit):
    def stage(frames):
        for frame in frames:
            edit(frame)
            yield frame

    return stage


def test_in_place_edit_is_encoded(media, tmp_path):
    src, _ = media("ffv1_422")

    def edit(frame):
        if frame.index == 2:
            frame.rgb[10:20, 10:20] = 255  # in place: the array the frame handed out

    out = tmp_path / "edited.mkv"
    restore_video(src, out, model="none", codec="ffv1", overwrite=True, stage=_stage(edit))
    got, ref = decode(out), decode(src)
    assert got[0].format.name == "yuv422p"
    white = got[2].to_ndarray(format="rgb24")[12:18, 12:18]
    assert white.min() >= 250
    for i in (0, 1, 3):  # untouched frames: bit-exact through FFV1
        assert all(np.array_equal(a, b) for a, b in zip(planes(ref[i]), planes(got[i])))


def test_ten_bit_change_stays_ten_bit_and_exact_elsewhere(media, tmp_path):
    src, _ = media("prores")

    def edit(frame):
        if frame.index == 1:
            rgb = frame.rgb.copy()
            rgb[8:24, 8:24] = (200, 60, 30)
            frame.rgb = rgb

    out = tmp_path / "ten.mkv"
    restore_video(src, out, model="none", codec="ffv1", overwrite=True, stage=_stage(edit))
    got, ref = decode(out), decode(src)
    assert got[1].format.name == "yuv422p10le"
    for i in (0, 2, 3):
        assert all(np.array_equal(a, b) for a, b in zip(planes(ref[i]), planes(got[i])))
    y_ref, u_ref, _ = planes(ref[1])
    y_got, u_got, _ = planes(got[1])
    outside = np.ones(y_ref.shape, bool)
    outside[8:24, 8:24] = False
    assert np.array_equal(y_ref[outside], y_got[outside])
    far = np.ones(u_ref.shape, bool)
    far[6:26, 3:14] = False  # chroma: the change's columns 4..12 of 32, widened by the filter's reach
    assert np.array_equal(u_ref[far], u_got[far])
    assert not np.array_equal(y_ref[8:24, 8:24], y_got[8:24, 8:24])
    assert np.any(y_got % 4 != 0)  # real 10-bit samples, not 8-bit ones shifted


def test_frame_knows_when_its_pixels_changed(media):
    from vidrestore.media.probe import probe
    from vidrestore.media.source import VideoSource

    src, _ = media("ffv1_422")
    with VideoSource(probe(src)) as source:
        a, b, c = list(source.frames())[:3]
    assert not a.changed
    _ = a.rgb
    assert not a.changed  # read only
    b.rgb[0, 0] = b.rgb[0, 0] ^ 1
    assert b.changed  # edited in place
    c.rgb = c.rgb.copy()
    assert c.changed  # assigned (equal pixels, but the stage said so)


def test_rgb_frames_are_progressive(media, tmp_path):
    """Frames with no decoded picture (what the deinterlace filter yields) are encoded progressive."""
    src, _ = media("mpeg2")

    def stage(frames):
        for frame in frames:
            yield frame.with_rgb(frame.rgb)

    out = tmp_path / "prog.mkv"
    restore_video(src, out, model="none", overwrite=True, stage=stage)
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert not any(f.interlaced_frame for f in c.decode(v))
        assert int(v.codec_context.field_order) == 1


def test_pix_fmt_override_and_choice(media, tmp_path):
    with pytest.raises(UsageError, match="--pix-fmt"):
        EncodeOptions(pix_fmt="yuv411p")  # libx264 cannot
    with pytest.raises(UsageError, match="--pix-fmt"):
        EncodeOptions(pix_fmt="nonsense")
    assert output_pix_fmt("h264", "yuv411p", 720, 480) == "yuv422p"
    assert output_pix_fmt("h264", "gbrp", 64, 48) == "yuv444p"
    assert output_pix_fmt("ffv1", "gbrp", 64, 48) == "bgr0"  # FFV1's 8-bit RGB
    assert output_pix_fmt("h264", "yuv420p", 63, 48) == "yuv444p"  # odd side
    assert output_pix_fmt("h264", "yuv444p12le", 64, 48) == "yuv444p10le"
    src, _ = media("ffv1_422")
    out = tmp_path / "o.mkv"
    restore_video(src, out, model="none", overwrite=True, pix_fmt="yuv444p")
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.format.name == "yuv444p"


def test_rgb_source_tagged(media, tmp_path):
    src, _ = media("rgb")
    out = tmp_path / "rgb.mkv"
    restore_video(src, out, model="none", codec="ffv1", overwrite=True)
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert cc.format.name == "bgr0" and int(cc.colorspace) == 0  # RGB ('gbr') matrix tag
    out = tmp_path / "yuv.mkv"
    restore_video(src, out, model="none", overwrite=True)
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert cc.format.name == "yuv444p" and int(cc.colorspace) == 1 and int(cc.color_range) == 1  # BT.709, tv


def test_changed_frame_of_packed_rgb_source_is_exact(tmp_path):
    """A packed RGB source (FFV1 bgr0): the frame a stage changed is encoded exactly as the stage left it
    (the change is merged per pixel across all channels of the packed plane), the others untouched."""
    import numpy as np

    src = tmp_path / "src.mkv"
    with av.open(str(src), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "bgr0"
        for i in range(4):
            a = np.zeros((48, 64, 3), np.uint8)
            a[..., 0], a[..., 1], a[..., 2] = np.arange(64) * 3, i * 40, 100
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    seen = {}

    def edit(frame):
        if frame.index == 1:
            rgb = frame.rgb.copy()
            rgb[10:20, 10:30] = (200, 60, 30)
            frame.rgb = rgb
        seen[frame.index] = frame.rgb.copy()

    out = tmp_path / "out.mkv"
    restore_video(src, out, model="none", codec="ffv1", overwrite=True, stage=_stage(edit))
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.format.name == "bgr0"
        got = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(got) == 4
    for i, frame in enumerate(got):
        assert np.array_equal(frame, seen[i]), i
