"""Encode restored frames and mux them with every other stream of the source.

The video is encoded with the frame timestamps it came with (VFR stays VFR), its sample aspect ratio,
rotation and colour metadata. Every audio and subtitle stream is copied packet for packet when the output
container takes its codec; otherwise audio is transcoded to AAC and text subtitles to mov_text, each with a
one-line notice. Other streams are dropped with a notice, never silently. The non-video streams are read by
a second demuxer of the source and interleaved by time with the encoded video, so nothing accumulates.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import Interpolation

from ..errors import MediaError, UsageError
from .probe import ColorInfo, MediaInfo, open_input
from .source import SWS_FLAGS, Frame, sws_colorspace

CODECS = {"h264": "libx264", "h265": "libx265", "ffv1": "ffv1"}
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".mov": "mov"}
DEFAULT_CRF = {"h264": 18, "h265": 20}
# Audio codecs that players expect in MP4 (FFmpeg also muxes PCM into MP4, but few players read it).
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac", "mp2"}
_TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "mov_text", "text", "webvtt"}
_DERIVED_TAGS = {"duration", "encoder", "vendor_id", "bps", "statistics_tags", "statistics_writing_app",
                 "statistics_writing_date_utc", "creation_time"}
_INTERLEAVE_S = 0.5  # how far ahead of the video the copied streams are muxed


@dataclass(frozen=True)
class EncodeOptions:
    codec: str = "h264"
    crf: int | None = None
    preset: str = "medium"
    pix_fmt: str | None = None

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise UsageError(f"unknown codec {self.codec!r}; choose one of {', '.join(CODECS)}")
        if self.crf is not None and not 0 <= self.crf <= 51:
            raise UsageError(f"--crf must be between 0 and 51, got {self.crf}")
        if self.pix_fmt is not None and self.pix_fmt not in codec_formats(self.codec):
            raise UsageError(
                f"--pix-fmt {self.pix_fmt} cannot be encoded with {self.codec}; choose one of "
                f"{', '.join(codec_formats(self.codec))}"
            )


def codec_formats(codec: str) -> tuple[str, ...]:
    """The pixel formats the encoder behind ``codec`` (h264/h265/ffv1) takes, as FFmpeg lists them."""
    return tuple(f.name for f in av.codec.Codec(CODECS[codec], "w").video_formats or ())


def _shape(name: str) -> tuple[bool, bool, bool, int, int, int]:
    """(rgb, gray, alpha, depth, chroma width, chroma height) of a pixel format, chroma size on a 12x12 picture."""
    fmt = av.VideoFormat(name, 12, 12)
    comps = fmt.components
    gray = len(comps) - (1 if any(c.is_alpha for c in comps) else 0) == 1
    alpha = any(c.is_alpha for c in comps)
    chroma = next((c for c in comps if c.is_chroma), comps[0])
    return fmt.is_rgb, gray, alpha, max(c.bits for c in comps), chroma.width, chroma.height


def output_pix_fmt(codec: str, source: str | None, width: int, height: int, override: str | None = None) -> str:
    """The pixel format to encode in: ``override``, else the source's own where the encoder takes it (and the
    picture size allows its chroma subsampling), else the nearest one it takes — never less chroma resolution
    or bit depth when the encoder has more (4:1:1 → 4:2:2, gbrp → 4:4:4 for libx264), then the least extra."""
    if override:
        return override
    allowed = codec_formats(codec)
    source = source or "yuv420p"
    try:
        rgb, gray, alpha, depth, cw, ch = _shape(source)
    except (ValueError, av.FFmpegError):
        rgb, gray, alpha, depth, cw, ch = _shape("yuv420p")

    def fits(name: str) -> bool:
        _r, _g, _a, _d, w, h = _shape(name)
        return (width % 2 == 0 or w == 12) and (height % 2 == 0 or h == 12)

    if source in allowed and fits(source):
        return source

    def cost(name: str):
        r, g, a, d, w, h = _shape(name)
        planar = av.VideoFormat(name).is_planar
        return (
            not fits(name),
            (w < cw) + (h < ch) if not gray else 0,  # chroma resolution lost
            max(0, depth - d),  # bit depth lost
            g != gray,
            r != rgb,
            a and not alpha,
            max(0, d - depth),
            not planar or name.startswith(("nv", "p0", "p2")),
            name.startswith("yuvj"),
            (w > cw) + (h > ch),
            name,
        )

    return min(allowed, key=cost)


def container_for(path: Path) -> str:
    fmt = CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"{path}: unsupported output extension {path.suffix or '(none)'!r}; use .mp4, .mkv or .mov"
        )
    return fmt


# Format-to-format conversion of a decoded picture (4:1:1 → 4:2:2, gbrp → 4:4:4, ...): bicubic chroma,
# accurately rounded; no RGB in between.
CHROMA_FLAGS = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP


def _depth(name: str) -> int:
    return max(c.bits for c in av.VideoFormat(name).components)


def _sample_type(vf: av.VideoFrame):
    return np.uint16 if _depth(vf.format.name) > 8 else np.uint8


def _plane_view(plane, dtype, channels: int = 1) -> np.ndarray:
    """A writable (height, width × channels) view of a plane's samples, row padding cut off."""
    itemsize = np.dtype(dtype).itemsize
    rows = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // itemsize)
    return rows[:, : plane.width * channels]


def _plane_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Which samples of a plane of ``shape`` a change at the pixels in ``mask`` can reach: the pixel itself on
    full-size planes; on subsampled chroma planes every sample whose footprint, widened by the resampling
    filter's reach (2 pixels), holds a changed pixel."""
    h, w = mask.shape
    if shape == (h, w):
        return mask
    grown = mask.copy()
    for _ in range(2):
        g = grown.copy()
        g[1:] |= grown[:-1]
        g[:-1] |= grown[1:]
        g[:, 1:] |= grown[:, :-1]
        g[:, :-1] |= grown[:, 1:]
        grown = g
    sy, sx = -(-h // shape[0]), -(-w // shape[1])
    pad = np.zeros((shape[0] * sy, shape[1] * sx), bool)
    pad[:h, :w] = grown
    return pad.reshape(shape[0], sy, shape[1], sx).any(axis=(1, 3))


def _output_color(color: ColorInfo, source_fmt: str | None, out_fmt: str) -> ColorInfo:
    """The colour tags of the output: the source's, except across RGB ↔ YUV. An RGB output is tagged RGB (the
    'gbr' matrix, AVCOL_SPC_RGB); a YUV output of an RGB source is converted with, and tagged, BT.709 in video
    (tv) range — the matrix of HD video, chosen over BT.601 because nothing in an RGB file says SD."""
    out_rgb = av.VideoFormat(out_fmt).is_rgb
    src_rgb = bool(source_fmt) and av.VideoFormat(source_fmt).is_rgb
    if out_rgb:
        return replace(color, space=0)
    if src_rgb or color.space == 0:
        return replace(color, space=1, range=1)
    return color


@dataclass
class _Aux:
    """How one non-video input stream reaches the output, and what happened to it."""

    mode: str  # copy (packets as they are) | encode (decoded, re-encoded: audio) | mov_text
    out: object
    where: str = ""
    resampler: av.AudioResampler | None = None
    next_pts: int | None = None  # encode: the output sample the next decoded sample lands on
    lost: int = 0  # packets that could not be decoded (encode mode)
    lead: Fraction | None = None  # copy with a cut: where the first kept packet starts after the picture
    packet_s: Fraction | None = None  # copy with a cut: the longest packet kept
    src_next: Fraction | None = None  # encode: where the next decoded frame starts when it carries no pts


# Muxer refusals measured with FFmpeg 8.1 (PyAV 18.1), beyond what ``supported_codecs`` says: MOV takes no
# Opus, FLAC or Vorbis; MP4 takes no PCM (the header is refused) nor ADPCM/AMR. MP2 and AC-3 are taken by all.
_REFUSED_AUDIO = {"mov": {"opus", "flac", "vorbis"}}
# Codecs whose decoded samples are the whole signal: converted to PCM (bit-exact samples) where the output
# container takes PCM, rather than to a lossy AAC.
_LOSSLESS_AUDIO = ("pcm_", "adpcm_", "flac", "alac", "wavpack", "tta", "truehd", "mlp")
_PCM_FOR = {"u8": "pcm_u8", "s16": "pcm_s16le", "s32": "pcm_s32le", "flt": "pcm_f32le", "dbl": "pcm_f64le",
            "s64": "pcm_s64le"}
# FFmpeg's default layout per channel count (av_channel_layout_default), for PCM that states none (DV in AVI).
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_CUT_READ_ON_S = 5.0  # how far past --end the other streams are still read (they are interleaved loosely)
_MAX_READ_ERRORS = 32  # consecutive demuxer errors on the copied streams before the rest is given up


def audio_layout(cc) -> str:
    """The stream's channel layout, or FFmpeg's default for its channel count where it states none."""
    layout = cc.layout
    name = layout.name if layout is not None else ""
    if name and not name.endswith("channels"):  # "2 channels": a count with no order (DV/AVI PCM)
        return name
    count = layout.nb_channels if layout is not None else 0
    return _DEFAULT_LAYOUTS.get(count or 2, name)


def _muxer_takes(fmt: str, stream) -> bool:
    """Whether ``fmt``'s muxer writes a header for a copy of ``stream`` (a dry run in memory)."""
    try:
        with av.logging.Capture():
            out = av.open(io.BytesIO(), mode="w", format=fmt)
            try:
                out.add_stream_from_template(stream)
                out.start_encoding()
            finally:
                try:
                    out.close()
                except (av.FFmpegError, ValueError, OSError):
                    pass
        return True
    except (av.FFmpegError, ValueError, OSError):
        return False


def _can_encode(codec: str) -> bool:
    try:
        av.Codec(codec, "w")
        return True
    except (av.FFmpegError, ValueError):
        return False


def _trim(af: av.AudioFrame, a: int, b: int) -> av.AudioFrame:
    """Samples ``[a, b)`` of ``af`` as a new frame (same format and layout)."""
    arr = af.to_ndarray()
    if af.format.is_planar:
        arr = arr[:, a:b]
    else:
        ch = af.layout.nb_channels
        arr = arr[:, a * ch : b * ch]
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=af.format.name, layout=af.layout)
    out.sample_rate = af.sample_rate
    return out


def _ceil(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


def _ass_text(line: str) -> str:
    # An ASS event packet is "ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text".
    parts = line.split(",", 8)
    text = parts[-1] if len(parts) == 9 else line
    text = re.sub(r"\{[^}]*\}", "", text)
    return text.replace("\\N", "\n").replace("\\n", "\n")


def _mov_text_payload(data: bytes, codec: str) -> bytes:
    text = data.decode("utf-8", errors="replace").rstrip("\x00")
    if codec in ("ass", "ssa"):
        text = _ass_text(text)
    raw = text.encode("utf-8")[:65535]
    return struct.pack(">H", len(raw)) + raw


class VideoSink:
    """Write frames to ``path`` (normally a temporary name) in container ``fmt``.

    ``notice`` receives one-line messages about streams that could not be copied as they are.
    ``copy_streams=False`` writes the video alone (a segment of a longer job). ``video_template``, an input
    video stream of already-encoded packets, replaces the encoder: the video is then remuxed packet for packet
    with :meth:`write_packet` (joining segments), shown with ``rotation``, and the other streams are copied
    around it as usual.
    """

    def __init__(
        self,
        path: Path,
        info: MediaInfo,
        options: EncodeOptions,
        notice: Callable[[str], None] = lambda _m: None,
        size: tuple[int, int] | None = None,
        sar: Fraction | None = None,
        *,
        copy_streams: bool = True,
        video_template=None,
        rotation: int = 0,
        start: float | None = None,
        end: float | None = None,
        progressive: bool | None = None,
    ) -> None:
        self.path = Path(path)
        # True: frames were deinterlaced (never flag interlacing); False: filters ran but kept the fields (code and
        # flag as the source's field order says, though the frames come from RGB); None: the frames say
        self._progressive = progressive
        self.info = info
        self.options = options
        self.notice = notice
        self.fmt = container_for(self.path) if self.path.suffix.lower() in CONTAINERS else "matroska"
        self.width, self.height = size or (info.video.width, info.video.height)
        self.sar = sar if sar is not None else info.video.sar
        self._out = None
        self._aux_in = None
        self._aux: dict[int, _Aux] = {}
        self._pending = None
        self._aux_iter = None
        self._video = None
        self._started = False
        self.frames_written = 0
        self._copy_streams = copy_streams
        self._template = video_template
        self._rotation = rotation
        # --start/--end: seconds from the file's first timestamp. The first written frame becomes time 0 and
        # the other streams are cut to [that frame, end) and shifted by the same amount.
        origin = Fraction(info.start_time or 0.0).limit_denominator(1_000_000)
        self._start = None if start is None else origin + Fraction(start).limit_denominator(1_000_000)
        self._end = None if end is None else origin + Fraction(end).limit_denominator(1_000_000)
        self._shift: Fraction | None = None if start is not None else Fraction(0)  # seconds taken off every stream
        self._video_shift = 0  # the same in the video's time base
        self._aux_streams: list = []
        self._read_errors = 0
        self.aux_read_errors = 0

    # -- set-up -------------------------------------------------------------------------------------------
    def __enter__(self) -> "VideoSink":
        try:
            self._out = av.open(str(self.path), mode="w", format=self.fmt)
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(f"{self.path}: cannot create the output file ({exc})") from None
        if not self._copy_streams:
            self._video = self._add_video()
            self._aux_iter = iter(())
            return self
        self._aux_in = open_input(self.info.path)
        for stream in self._aux_in.streams:
            if stream.index == self.info.video.index:
                self._video = self._add_video()
                self._copy_tags(stream, self._video)
            else:
                self._add_aux(stream)
        self._aux_streams = [s for s in self._aux_in.streams if s.index in self._aux]
        if self._start is not None and self._aux_streams:
            try:  # near the cut (a little before: streams are interleaved loosely); packets before it are dropped
                self._aux_in.seek(max(0, int((self._start - 2) * 1_000_000)), backward=True)
            except av.FFmpegError:
                pass  # unseekable: read from the beginning
        self._aux_iter = self._aux_in.demux(*self._aux_streams) if self._aux_streams else iter(())
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if exc_type is not None:
            self.abort()

    def _add_video(self):
        if self._template is not None:
            stream = self._out.add_stream_from_template(self._template)
            if self._rotation:
                stream.set_display_rotation(self._rotation)
            return stream
        opts = self.options
        codec = CODECS[opts.codec]
        if codec not in self._out.supported_codecs and opts.codec != "h265":
            raise UsageError(f"{self.path.suffix} files cannot hold {opts.codec} video; use .mkv")
        rate = self.info.video.rate or Fraction(25)
        stream = self._out.add_stream(codec, rate=rate)
        stream.width, stream.height = self.width, self.height
        source_fmt = self.info.video.pix_fmt
        stream.pix_fmt = output_pix_fmt(opts.codec, source_fmt, self.width, self.height, opts.pix_fmt)
        if stream.pix_fmt != source_fmt and not opts.pix_fmt:
            odd = self.width % 2 or self.height % 2
            why = f"{self.width}x{self.height} has an odd side" if odd else f"{codec} cannot hold {source_fmt}"
            self.notice(f"notice: {why}; encoding {stream.pix_fmt}")
        self._color = _output_color(self.info.video.color, source_fmt, stream.pix_fmt)
        tb = self.info.video.time_base
        stream.time_base = tb
        cc = stream.codec_context
        cc.time_base = tb
        cc.sample_aspect_ratio = self.sar
        color = self._color
        cc.color_primaries = color.primaries
        cc.color_trc = color.trc
        cc.colorspace = color.space
        cc.color_range = color.range
        options: dict[str, str] = {}
        if opts.codec in DEFAULT_CRF:
            options["crf"] = str(opts.crf if opts.crf is not None else DEFAULT_CRF[opts.codec])
            options["preset"] = opts.preset
        if opts.codec == "h265":
            options["x265-params"] = "log-level=error"
        if opts.codec == "ffv1":
            options["level"] = "3"
        cc.options = options
        return stream

    def _accepts(self, stream) -> bool:
        """Whether the output container holds a bit-exact copy of ``stream`` (its muxer writes it)."""
        codec = stream.codec_context.name if stream.codec_context else None
        if codec is None or codec not in self._out.supported_codecs:
            return False
        if stream.type == "audio":
            if self.fmt == "mp4" and codec not in _MP4_AUDIO:
                return False
            if codec in _REFUSED_AUDIO.get(self.fmt, ()):
                return False
        return _muxer_takes(self.fmt, stream)

    def _add_aux(self, stream) -> None:
        codec = stream.codec_context.name if stream.codec_context else "unknown"
        where = f"stream #{stream.index} ({stream.type}, {codec})"
        ext = self.path.suffix or self.fmt
        cut = self._start is not None or self._end is not None
        if stream.type in ("audio", "subtitle", "video") and self._accepts(stream):
            if stream.type == "audio" and cut and codec.startswith("pcm_") and _can_encode(codec):
                # PCM is cut to the sample: decoded and written again in its own codec (the same samples)
                aux = self._add_encoded(stream, codec, where)
                if aux is not None:
                    self._aux[stream.index] = aux
                    return
            out = self._out.add_stream_from_template(stream)
            self._copy_tags(stream, out)
            self._aux[stream.index] = _Aux("copy", out, where)
            return
        if stream.type == "audio":
            target = self._audio_target(stream)
            aux = self._add_encoded(stream, target, where)
            if aux is None and target != "aac":
                target, aux = "aac", self._add_encoded(stream, "aac", where)
            if aux is None:
                self.notice(f"notice: {where} cannot be stored in {ext} nor converted to AAC and is left out; "
                            "use .mkv to keep it")
                return
            self._aux[stream.index] = aux
            if target == "aac":
                hint = "; use .mkv or .mov to keep it lossless" if codec.startswith(_LOSSLESS_AUDIO) else ""
                self.notice(f"notice: {where} cannot be copied into {ext}; converting it to AAC{hint}")
            else:
                self.notice(f"notice: {where} cannot be copied into {ext}; converting it to {target} "
                            "(lossless: the decoded samples are kept exactly)")
            return
        if stream.type == "subtitle" and codec in _TEXT_SUBTITLES and "mov_text" in self._out.supported_codecs:
            out = self._out.add_mux_stream("mov_text")
            out.time_base = stream.time_base
            self._copy_tags(stream, out)
            self._aux[stream.index] = _Aux("mov_text", out, where)
            self.notice(f"notice: {where} cannot be copied into {ext}; converting it to mov_text")
            return
        self.notice(f"notice: {where} cannot be stored in {ext} and is left out; use .mkv to keep it")

    def _audio_target(self, stream) -> str:
        """What an audio stream the container refuses becomes: PCM for lossless sources where the container
        holds PCM (MOV, Matroska), else AAC (MP4, and lossy sources everywhere)."""
        cc = stream.codec_context
        if self.fmt != "mp4" and cc.name.startswith(_LOSSLESS_AUDIO):
            base = cc.format.name.rstrip("p") if cc.format is not None else "s16"
            pcm = _PCM_FOR.get(base, "pcm_s16le")
            if pcm in self._out.supported_codecs:
                return pcm
        return "aac"

    def _add_encoded(self, stream, codec: str, where: str) -> _Aux | None:
        """An output stream that ``codec`` encodes the decoded audio of ``stream`` into, or None if the encoder
        takes none of: the source's rate and layout, 48 kHz with that layout, 48 kHz stereo."""
        cc = stream.codec_context
        layout = audio_layout(cc)
        rate = cc.sample_rate or 48000
        for r, lay in dict.fromkeys(((rate, layout), (48000, layout), (48000, "stereo"))):
            try:  # try the encoder on its own first: a stream added to the output cannot be taken back
                probe_cc = av.CodecContext.create(codec, "w")
                probe_cc.sample_rate, probe_cc.layout = r, lay
                probe_cc.format = probe_cc.codec.audio_formats[0]
                probe_cc.time_base = Fraction(1, r)
                probe_cc.open()
            except (av.FFmpegError, ValueError, TypeError):
                continue
            out = self._out.add_stream(codec, rate=r, layout=lay)
            self._copy_tags(stream, out)
            out.codec_context.open()
            resampler = av.AudioResampler(format=out.format.name, layout=out.layout.name, rate=out.rate)
            return _Aux("encode", out, where, resampler)
        return None

    @staticmethod
    def _copy_tags(src, dst) -> None:
        for key, value in src.metadata.items():
            low = key.lower()
            if low == "name":  # MP4/MOV hand a track title back as "name"; the muxers write it from "title"
                dst.metadata["title"] = value
            elif low not in _DERIVED_TAGS and not low.startswith("_statistics") and not low.startswith("number_of"):
                dst.metadata[key] = value
        try:
            dst.disposition = src.disposition
        except (AttributeError, TypeError, ValueError):
            pass

    def _set_interlacing(self, frame: Frame) -> None:
        """Before the encoder opens: interlaced coding and the field order tag when the first frame is an
        interlaced decoded picture; progressive when it is not, or when it came from RGB (deinterlaced)."""
        cc = self._video.codec_context
        if self._progressive is None:
            interlaced = frame.interlaced
        else:  # frames from a filter graph carry no flags: the source's stated field order decides
            interlaced = not self._progressive and self.info.video.field_order in (2, 3, 4, 5)
        if not interlaced:
            cc.field_order = 1
            return
        order = self.info.video.field_order
        if order not in (2, 3, 4, 5):  # unstated: DV is bottom field first, the rest top (as bwdif assumes)
            order = 3 if self.info.video.codec == "dvvideo" else 2
        cc.field_order = order
        if self.options.codec == "h264":  # x264 then takes each field's order from the frame's own flag
            cc.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me

    # -- writing ------------------------------------------------------------------------------------------
    def write(self, frame: Frame) -> None:
        """Encode one frame (RGB uint8 of the output size) at its own timestamp."""
        if not self._started:
            if frame.rotation:
                self._video.set_display_rotation(frame.rotation)
            self._set_interlacing(frame)
            self._started = True
        vf = self._picture(frame)
        color = self._color
        vf.pict_type = PictureType.NONE  # the encoder picks frame types; a decoded picture's type is no order
        vf.pts = frame.pts - self._shift_for(frame.pts, frame.time_base)
        vf.time_base = frame.time_base
        vf.duration = frame.duration
        vf.color_primaries = color.primaries
        vf.color_trc = color.trc
        vf.colorspace = color.space
        vf.color_range = color.range
        self._mux_video(self._video.encode(vf))
        self.frames_written += 1
        self._pump(frame.time + _INTERLEAVE_S)

    def write_packet(self, packet) -> None:
        """Mux one encoded video packet (``video_template`` mode) at its own timestamps."""
        if packet.size == 0 or packet.pts is None and packet.dts is None:
            return
        ts = packet.pts if packet.pts is not None else packet.dts
        seconds = float(ts * packet.time_base)
        shift = self._shift_for(ts, packet.time_base)
        if shift:
            packet.pts = None if packet.pts is None else packet.pts - shift
            packet.dts = None if packet.dts is None else packet.dts - shift
        packet.stream = self._video
        self._out.mux(packet)
        self.frames_written += 1
        self._pump(seconds + _INTERLEAVE_S)

    def _shift_for(self, first_ts: int, time_base: Fraction) -> int:
        """The --start shift in ``time_base`` units; set by the first video timestamp written (which becomes 0)."""
        if self._shift is None:
            self._shift = Fraction(first_ts) * Fraction(time_base)
        return round(self._shift / Fraction(time_base))

    def _picture(self, frame: Frame) -> av.VideoFrame:
        """The picture to encode.

        * Unchanged frame: the decoded picture itself when the encoder takes its format (no loss at all), else
          converted straight to the nearest format with accurate chroma (no RGB round trip).
        * Changed frame with its decoded picture (faces restored): the stage's 8-bit change is added onto the
          picture in RGB of the source's depth (rgb48 for > 8-bit: ``src16 + (new8 - orig8) * 257``, which keeps
          the source's finer steps under a soft-edged change instead of snapping it to 8-bit), converted to the
          output format, and only the samples the change reaches are taken from it: everywhere else the
          unchanged picture's samples stay exact (out-of-range values included).
        * A frame with no decoded picture of this size (deinterlaced, upscaled, made from RGB): its RGB,
          converted with the output's matrix.
        """
        src = frame.source
        if src is not None and (src.width, src.height) != (self.width, self.height):
            src = None
        if src is not None and not frame.changed:
            return self._from_source(src)
        rgb = frame.rgb
        if rgb.shape[0] != self.height or rgb.shape[1] != self.width:
            raise MediaError(
                f"internal: frame {frame.index} is {rgb.shape[1]}x{rgb.shape[0]}, expected {self.width}x{self.height}"
            )
        if src is None:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            return self._from_rgb(vf)
        return self._blend(src, frame.decoded_rgb(), rgb)

    def _from_source(self, src: av.VideoFrame) -> av.VideoFrame:
        out = self._video.pix_fmt
        if src.format.name == out:
            return src
        scolor = self.info.video.color
        return src.reformat(
            format=out,
            src_colorspace=sws_colorspace(scolor.space),
            dst_colorspace=sws_colorspace(self._color.space),
            src_color_range=src.color_range or scolor.range or None,
            dst_color_range=self._color.range or None,
            interpolation=CHROMA_FLAGS,
        )

    def _from_rgb(self, vf: av.VideoFrame) -> av.VideoFrame:
        """An RGB picture (rgb24 or rgb48le, full range) in the output format with the output's matrix."""
        return vf.reformat(
            format=self._video.pix_fmt,
            dst_colorspace=sws_colorspace(self._color.space),
            src_color_range=2,
            dst_color_range=self._color.range or 1,
            interpolation=SWS_FLAGS,
        )

    def _blend(self, src: av.VideoFrame, orig: np.ndarray, new: np.ndarray) -> av.VideoFrame:
        deep = _depth(src.format.name) > 8
        scolor = self.info.video.color
        # an RGB picture made from the source frame itself, so it carries the source's flags (field order)
        carrier = src.reformat(
            format="rgb48le" if deep else "rgb24",
            src_colorspace=sws_colorspace(scolor.space),
            src_color_range=src.color_range or scolor.range or None,
            dst_color_range=2,
            interpolation=SWS_FLAGS,
        )
        mask = np.any(new != orig, axis=2)
        pixels = _plane_view(carrier.planes[0], np.uint16 if deep else np.uint8, 3).reshape(self.height, self.width, 3)
        if deep:
            delta = (new.astype(np.int32) - orig.astype(np.int32)) * 257
            blended = np.clip(pixels.astype(np.int32) + delta, 0, 65535).astype(np.uint16)
            pixels[mask] = blended[mask]
        else:
            pixels[:] = new
        changed = self._from_rgb(carrier)
        base = self._from_source(src)
        for plane_out, plane_base in zip(changed.planes, base.planes):
            out_view = _plane_view(plane_out, _sample_type(changed))
            base_view = _plane_view(plane_base, _sample_type(base))
            keep = ~_plane_mask(mask, out_view.shape)
            out_view[keep] = base_view[keep]
        return changed

    def _mux_video(self, packets) -> None:
        for packet in packets:
            self._out.mux(packet)

    def _pump(self, until: float | None) -> None:
        """Mux the other streams' packets up to ``until`` seconds (all of them if None)."""
        while True:
            if self._pending is None:
                try:
                    self._pending = next(self._aux_iter)
                    self._read_errors = 0
                except StopIteration:
                    return
                except av.FFmpegError:
                    # A damaged spot: count it and read on after it; many in a row mean the rest is unreadable.
                    self.aux_read_errors += 1
                    self._read_errors += 1
                    if self._read_errors >= _MAX_READ_ERRORS:
                        self._aux_iter = iter(())
                        return
                    self._aux_iter = self._aux_in.demux(*self._aux_streams)
                    continue
            packet = self._pending
            ts = packet.dts if packet.dts is not None else packet.pts
            seconds = None if ts is None else float(ts * packet.time_base)
            if until is not None and seconds is not None and seconds > until:
                return
            self._pending = None
            if self._end is not None and seconds is not None and seconds > self._end + _CUT_READ_ON_S:
                self._aux_iter = iter(())  # far past --end: nothing later belongs to the range
                return
            self._route(packet)

    def _route(self, packet) -> None:
        aux = self._aux[packet.stream.index]
        if aux.mode == "encode":
            try:
                frames = packet.decode()
            except av.FFmpegError:
                if packet.size:
                    aux.lost += 1
                return
            for af in frames:
                self._encode_audio(aux, af)
            return
        if packet.size == 0 or packet.dts is None and packet.pts is None:
            return
        if aux.mode == "mov_text" and packet.pts is None:
            return
        if (self._start is not None or self._end is not None) and not self._cut(aux, packet):
            return
        if aux.mode == "copy":
            packet.stream = aux.out
            self._mux_aux(aux, packet)
        elif aux.mode == "mov_text":
            out = av.Packet(_mov_text_payload(bytes(packet), packet.stream.codec_context.name))
            out.pts, out.dts = packet.pts, packet.pts
            out.duration = packet.duration
            out.time_base = packet.time_base
            out.stream = aux.out
            self._mux_aux(aux, out)

    def _cut(self, aux: _Aux, packet) -> bool:
        """Keep ``packet`` only inside the --start/--end range, shifted as the video is. Audio (and any other
        copied stream) keeps whole packets that start inside the range; a subtitle overlapping an edge is
        shortened to it."""
        tb = Fraction(packet.time_base)
        ts = packet.pts if packet.pts is not None else packet.dts
        t = ts * tb
        dur = (packet.duration or 0) * tb
        lo = self._shift if self._start is not None else None
        hi = self._end
        if packet.stream.type == "subtitle":
            if (lo is not None and t + dur <= lo and (dur or t < lo)) or (hi is not None and t >= hi):
                return False
            start = t if lo is None else max(t, lo)
            stop = t + dur if hi is None or not dur else min(t + dur, hi)
            new_pts = _ceil(start / tb)
            if packet.duration:
                packet.duration = max(1, int((stop - start) / tb))
            if packet.dts is not None:
                packet.dts += new_pts - ts
            if packet.pts is not None:
                packet.pts = new_pts
        else:
            if (lo is not None and t < lo) or (hi is not None and t >= hi):
                return False
            if aux.lead is None:
                aux.lead = t - (lo or Fraction(0))
            aux.packet_s = max(aux.packet_s or Fraction(0), dur)
        shift = round(self._shift / tb)
        if shift:
            packet.pts = None if packet.pts is None else packet.pts - shift
            packet.dts = None if packet.dts is None else packet.dts - shift
        return True

    def _encode_audio(self, aux: _Aux, af: av.AudioFrame) -> None:
        """Encode one decoded audio frame, cut to the sample at --start/--end, at the time it plays (shifted
        as the video is), so a converted track stays in sync even when it starts later than the picture."""
        rate = af.sample_rate
        if af.pts is not None and af.time_base is not None:
            t = Fraction(af.pts) * Fraction(af.time_base)
        else:
            t = aux.src_next if aux.src_next is not None else Fraction(0)
        n = af.samples
        aux.src_next = t + Fraction(n, rate)
        lo = self._shift if self._start is not None else None
        a = 0 if lo is None else min(n, max(0, _ceil((lo - t) * rate)))
        b = n if self._end is None else min(n, max(0, _ceil((self._end - t) * rate)))
        if a >= b:
            return
        if (a, b) != (0, n):
            af = _trim(af, a, b)
        else:
            af.pts = None
        if aux.next_pts is None:
            aux.next_pts = round((t + Fraction(a, rate) - self._shift) * aux.out.rate)
        for rf in aux.resampler.resample(af):
            self._encode_frame(aux, rf)

    def _encode_frame(self, aux: _Aux, rf: av.AudioFrame | None) -> None:
        if rf is not None:
            rf.pts = aux.next_pts
            rf.time_base = Fraction(1, aux.out.rate)
            aux.next_pts += rf.samples
        for p in aux.out.encode(rf):
            self._mux_aux(aux, p)

    def _mux_aux(self, aux: _Aux, packet) -> None:
        try:
            self._out.mux(packet)
        except av.error.ArgumentError:
            aux.lost += 1  # a packet the muxer refuses (bad timestamps in a damaged file); a full disk still raises

    def _report(self) -> None:
        """One line for every loss and every approximation in the other streams; nothing is dropped silently."""
        if self.aux_read_errors:
            self.notice(
                f"warning: {self.aux_read_errors} read error(s) in the audio/subtitle streams of "
                f"{Path(self.info.path).name}; the packets there are missing from the output"
            )
        for aux in self._aux.values():
            if aux.lost:
                self.notice(f"warning: {aux.where}: {aux.lost} packet(s) could not be decoded or written and are "
                            "missing from the output")
            if aux.lead is not None and aux.mode == "copy" and (self._start is not None or self._end is not None):
                self.notice(
                    f"notice: {aux.where} is copied bit-exact, so it is cut at its own packet boundaries: it starts "
                    f"{1000 * float(aux.lead):.0f} ms after the picture (packets of up to "
                    f"{1000 * float(aux.packet_s or 0):.0f} ms)"
                )

    def close(self) -> None:
        """Flush the encoder and every stream, then close the file."""
        if self._out is None:
            return
        try:
            if self._template is None:
                self._mux_video(self._video.encode(None))
            if self._shift is None:  # no frame was written
                self._shift = self._start or Fraction(0)
            self._pump(None)
            for aux in self._aux.values():
                if aux.mode == "encode":
                    for rf in aux.resampler.resample(None):
                        self._encode_frame(aux, rf)
                    self._encode_frame(aux, None)
            self._report()
        finally:
            self._close_containers()

    def abort(self) -> None:
        """Close without flushing (the file is about to be deleted)."""
        try:
            self._close_containers()
        except Exception:  # noqa: BLE001 - nothing useful can be done about a failing close on abort
            pass

    def _close_containers(self) -> None:
        out, self._out = self._out, None
        aux_in, self._aux_in = self._aux_in, None
        try:
            if out is not None:
                out.close()
        finally:
            if aux_in is not None:
                aux_in.close()
