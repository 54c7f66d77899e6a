"""Archive-format test media made with PyAV, plane-exact PSNR, and FFmpeg's own libx264 baseline.

Every clip is a handful of small frames written sample by sample in its own pixel format (no RGB round trip),
with values outside the legal video range, so a loss anywhere in an I/O path shows up. Shared by
tests/test_formats.py and bench/io.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import PictureType

from vidrestore.media.source import sws_colorspace


@dataclass(frozen=True)
class Fmt:
    name: str
    ext: str  # container extension of the source
    codec: str
    pix_fmt: str
    width: int
    height: int
    rate: Fraction
    frames: int = 6
    sar: Fraction | None = None
    options: dict = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    audio: str | None = None  # audio codec written beside the video (pcm_s16le, ...)
    field_order: str | None = None  # what the source is: "tt", "bb" or None (progressive)
    container_sar: Fraction | None = None  # written by the container, unlike the bitstream's ``sar``


FORMATS = {
    f.name: f
    for f in (
        Fmt("dv", ".avi", "dvvideo", "yuv411p", 720, 480, Fraction(30000, 1001),
            audio="pcm_s16le", field_order="bb"),
        # PyAV cannot write AVI's vprp (it reads AVStream.sample_aspect_ratio, which PyAV never sets); MOV's
        # pasp comes from the codec parameters, so the container-over-bitstream SAR case is made in MOV
        Fmt("dv_mov", ".mov", "dvvideo", "yuv411p", 720, 480, Fraction(30000, 1001), frames=3,
            container_sar=Fraction(10, 11), field_order="bb"),
        Fmt("mpeg2", ".mpg", "mpeg2video", "yuv420p", 64, 48, Fraction(25), options={"b": "4M"},
            flags=("interlaced_dct", "interlaced_me"), field_order="tt"),
        Fmt("prores", ".mov", "prores_ks", "yuv422p10le", 64, 48, Fraction(25)),
        Fmt("hevc10", ".mkv", "libx265", "yuv420p10le", 64, 48, Fraction(25),
            options={"x265-params": "log-level=error", "crf": "8"}),
        Fmt("mjpeg", ".avi", "mjpeg", "yuvj422p", 64, 48, Fraction(25), options={"q": "2"}),
        Fmt("h263", ".3gp", "h263", "yuv420p", 128, 96, Fraction(25), sar=Fraction(12, 11), options={"b": "1M"},
            container_sar=Fraction(1)),
        Fmt("ffv1_422", ".mkv", "ffv1", "yuv422p", 64, 48, Fraction(25)),
        Fmt("rgb", ".avi", "utvideo", "gbrp", 192, 144, Fraction(25), frames=12),  # larger: x264 run-to-run variance is ~1 dB at 64x48
    )
}


def _plane_arrays(vf: av.VideoFrame) -> list[np.ndarray]:
    """Each plane as a (height, width) array of its samples (uint8 or uint16), padding cut off."""
    depth = max(c.bits for c in vf.format.components)
    dtype = np.uint16 if depth > 8 else np.uint8
    out = []
    for p in vf.planes:
        rows = np.frombuffer(p, dtype).reshape(p.height, p.line_size // dtype().itemsize)
        out.append(rows[:, : p.width * (1 if not _packed(vf) else len(vf.format.components))])
    return out


def _packed(vf: av.VideoFrame) -> bool:
    return not vf.format.is_planar


def planes(vf: av.VideoFrame) -> list[np.ndarray]:
    return [a.copy() for a in _plane_arrays(vf)]


def bit_depth(pix_fmt: str) -> int:
    return max(c.bits for c in av.VideoFormat(pix_fmt).components)


def synth_frame(fmt: str, width: int, height: int, i: int) -> av.VideoFrame:
    """A moving pattern written straight into ``fmt``'s planes, with out-of-range values (below 16 / above 235)."""
    vf = av.VideoFrame(width, height, fmt)
    peak = (1 << bit_depth(fmt)) - 1
    for k, p in enumerate(_plane_arrays(vf)):
        h, w = p.shape
        y, x = np.mgrid[0:h, 0:w]
        ramp = (x / max(1, w - 1) * 0.7 + y / max(1, h - 1) * 0.25 + (i * 0.03 + 0.1 * k)) % 1.0
        val = 0.01 + 0.98 * ramp  # from ~1 % to 99 % of the code range: outside [16, 235] at both ends
        if k == 0:
            s = max(4, min(w, h) // 4)
            cx = (i * 3) % max(1, w - s)
            val[h // 3 : h // 3 + s, cx : cx + s] = 0.9
        p[:] = np.round(val * peak).astype(p.dtype)
    return vf


def _set_field(vf: av.VideoFrame, order: str) -> av.VideoFrame:
    """``vf`` flagged interlaced, top or bottom field first (PyAV cannot set the flags: the setfield filter can)."""
    graph = av.filter.Graph()
    src = graph.add_buffer(template=None, width=vf.width, height=vf.height, format=vf.format.name,
                           time_base=vf.time_base)
    node = graph.add("setfield", f"mode={'tff' if order == 'tt' else 'bff'}")
    sink = graph.add("buffersink")
    src.link_to(node)
    node.link_to(sink)
    graph.configure()
    graph.push(vf)
    return graph.pull()


def make_format(path: Path, f: Fmt) -> Path:
    """Write ``f`` to ``path`` with PyAV's encoders (``container_sar``: encoded first, then remuxed with it)."""
    if f.container_sar is None:
        return _encode(path, f)
    tmp = _encode(path.with_name(path.stem + ".bitstream" + path.suffix), f)
    with av.open(str(tmp)) as inp, av.open(str(path), "w") as out:
        streams = {}
        for s in inp.streams:
            o = out.add_stream_from_template(s)
            if s.type == "video":
                o.codec_context.sample_aspect_ratio = f.container_sar
            streams[s.index] = o
        for pk in inp.demux():
            if pk.size:
                pk.stream = streams[pk.stream.index]
                out.mux(pk)
    tmp.unlink()
    return path


def _encode(path: Path, f: Fmt) -> Path:
    with av.open(str(path), "w") as out:
        v = out.add_stream(f.codec, rate=f.rate)
        v.width, v.height, v.pix_fmt = f.width, f.height, f.pix_fmt
        cc = v.codec_context
        cc.time_base = 1 / f.rate
        if f.sar is not None:
            cc.sample_aspect_ratio = f.sar
        for flag in f.flags:
            cc.flags |= getattr(av.codec.context.Flags, flag)
        if f.options:
            cc.options = dict(f.options)
        a = out.add_stream(f.audio, rate=48000, layout="stereo") if f.audio else None
        for i in range(f.frames):
            vf = synth_frame(f.pix_fmt, f.width, f.height, i)
            vf.pts = i
            vf.time_base = 1 / f.rate
            if f.field_order == "tt":
                vf = _set_field(vf, f.field_order)
            for pk in v.encode(vf):
                out.mux(pk)
        for pk in v.encode():
            out.mux(pk)
        if a is not None:
            n = int(48000 * f.frames / f.rate)
            wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000) * 32767).astype(np.int16)
            af = av.AudioFrame.from_ndarray(np.repeat(wave[None], 2, 0).reshape(1, -1, order="F"), format="s16",
                                            layout="stereo")
            af.sample_rate, af.pts = 48000, 0
            for pk in a.encode(af):
                out.mux(pk)
            for pk in a.encode():
                out.mux(pk)
    return path


def decode(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return list(c.decode(video=0))


def psnr(ref: list[av.VideoFrame], test: list[av.VideoFrame]) -> float:
    """PSNR over every plane sample of ``test`` converted to ``ref``'s own pixel format (no RGB)."""
    assert len(ref) == len(test), (len(ref), len(test))
    fmt = ref[0].format.name
    peak = (1 << bit_depth(fmt)) - 1
    err = count = 0
    for r, t in zip(ref, test):
        if t.format.name != fmt:
            t = t.reformat(format=fmt, src_colorspace=sws_colorspace(t.colorspace),
                           dst_colorspace=sws_colorspace(r.colorspace), src_color_range=t.color_range or None,
                           dst_color_range=r.color_range or None, interpolation="BICUBIC")
        for a, b in zip(_plane_arrays(r), _plane_arrays(t)):
            d = a.astype(np.float64) - b.astype(np.float64)
            err += float((d * d).sum())
            count += d.size
    mse = err / count
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)


# what FFmpeg 5.1's CLI picks for libx264 when the source's format is not one libx264 takes
# (avcodec_find_best_pix_fmt_of_list, checked with `ffmpeg -i SRC -c:v libx264 out.mkv`)
_X264_FALLBACK = {"yuv411p": "yuv422p", "gbrp": "yuv444p"}


def ffmpeg_baseline(src: Path, dst: Path, crf: int = 18, preset: str = "medium") -> Path:
    """FFmpeg's own ``-c:v libx264 -crf 18``: the decoded picture, converted only if libx264 cannot take it."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vcc = vin.codec_context
        fmt = _X264_FALLBACK.get(vcc.format.name, vcc.format.name)
        v = out.add_stream("libx264", rate=vin.average_rate or vin.guessed_rate)
        v.width, v.height, v.pix_fmt = vcc.width, vcc.height, fmt
        v.codec_context.time_base = vin.time_base
        v.time_base = vin.time_base
        v.codec_context.options = {"crf": str(crf), "preset": preset}
        for vf in inp.decode(vin):
            if vf.format.name != fmt:
                vf = vf.reformat(format=fmt, interpolation="BICUBIC")
            vf.pict_type = PictureType.NONE  # as the CLI does: a decoded frame's type is not forced on x264
            for pk in v.encode(vf):
                out.mux(pk)
        for pk in v.encode():
            out.mux(pk)
    return dst
