"""Encode restored frames and mux them with every other stream of the source.

The video is encoded with the frame timestamps it came with (VFR stays VFR), its sample aspect ratio,
rotation and colour metadata. Every audio and subtitle stream is copied packet for packet when the output
container takes its codec; otherwise audio is transcoded to AAC and text subtitles to mov_text, each with a
one-line notice. Other streams are dropped with a notice, never silently. The non-video streams are read by
a second demuxer of the source and interleaved by time with the encoded video, so nothing accumulates.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np
from av.video.frame import PictureType

from ..errors import MediaError, UsageError
from .probe import MediaInfo, open_input
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

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise UsageError(f"unknown codec {self.codec!r}; choose one of {', '.join(CODECS)}")
        if self.crf is not None and not 0 <= self.crf <= 51:
            raise UsageError(f"--crf must be between 0 and 51, got {self.crf}")


def container_for(path: Path) -> str:
    fmt = CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"{path}: unsupported output extension {path.suffix or '(none)'!r}; use .mp4, .mkv or .mov"
        )
    return fmt


@dataclass
class _Aux:
    """How one non-video input stream reaches the output."""

    mode: str  # copy | aac | mov_text
    out: object
    resampler: av.AudioResampler | None = None


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
    ) -> None:
        self.path = Path(path)
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
        wanted = [s for s in self._aux_in.streams if s.index in self._aux]
        self._aux_iter = self._aux_in.demux(*wanted) if wanted else iter(())
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
        odd = self.width % 2 or self.height % 2
        if opts.codec == "ffv1":
            stream.pix_fmt = "yuv444p" if odd else "yuv420p"
        else:
            stream.pix_fmt = "yuv444p" if odd else "yuv420p"
            if odd:
                self.notice(
                    f"notice: {self.width}x{self.height} has an odd side; encoding 4:4:4 chroma to keep every pixel"
                )
        tb = self.info.video.time_base
        stream.time_base = tb
        cc = stream.codec_context
        cc.time_base = tb
        cc.sample_aspect_ratio = self.sar
        color = self.info.video.color
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
        codec = stream.codec_context.name if stream.codec_context else None
        if codec is None or codec not in self._out.supported_codecs:
            return False
        if self.fmt == "mp4" and stream.type == "audio":
            return codec in _MP4_AUDIO
        return True

    def _add_aux(self, stream) -> None:
        codec = stream.codec_context.name if stream.codec_context else "unknown"
        where = f"stream #{stream.index} ({stream.type}, {codec})"
        ext = self.path.suffix or self.fmt
        if stream.type in ("audio", "subtitle") or stream.type == "video":
            if self._accepts(stream):
                out = self._out.add_stream_from_template(stream)
                self._copy_tags(stream, out)
                self._aux[stream.index] = _Aux("copy", out)
                return
        if stream.type == "audio":
            cc = stream.codec_context
            out = self._out.add_stream("aac", rate=cc.sample_rate or 48000, layout=cc.layout or "stereo")
            self._copy_tags(stream, out)
            resampler = av.AudioResampler(format="fltp", layout=out.layout, rate=out.rate)
            self._aux[stream.index] = _Aux("aac", out, resampler)
            self.notice(f"notice: {where} cannot be copied into {ext}; transcoding it to AAC")
            return
        if stream.type == "subtitle" and codec in _TEXT_SUBTITLES and "mov_text" in self._out.supported_codecs:
            out = self._out.add_mux_stream("mov_text")
            out.time_base = stream.time_base
            self._copy_tags(stream, out)
            self._aux[stream.index] = _Aux("mov_text", out)
            self.notice(f"notice: {where} cannot be copied into {ext}; converting it to mov_text")
            return
        self.notice(f"notice: {where} cannot be stored in {ext} and is left out; use .mkv to keep it")

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

    # -- writing ------------------------------------------------------------------------------------------
    def write(self, frame: Frame) -> None:
        """Encode one frame (RGB uint8 of the output size) at its own timestamp."""
        if not self._started:
            if frame.rotation:
                self._video.set_display_rotation(frame.rotation)
            self._started = True
        vf = self._picture(frame)
        color = self.info.video.color
        vf.pict_type = PictureType.NONE  # the encoder picks frame types; a decoded picture's type is no order
        vf.pts = frame.pts
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
        packet.stream = self._video
        self._out.mux(packet)
        self.frames_written += 1
        self._pump(seconds + _INTERLEAVE_S)

    def _picture(self, frame: Frame) -> av.VideoFrame:
        """The picture to encode: the decoded one when nobody changed the frame and its format is the
        encoder's (no RGB round trip, no loss), else the frame's RGB converted with the source's matrix."""
        src = frame.source
        if (
            src is not None
            and src.width == self.width
            and src.height == self.height
            and src.format.name == self._video.pix_fmt
        ):
            return src
        rgb = frame.rgb
        if rgb.shape[0] != self.height or rgb.shape[1] != self.width:
            raise MediaError(
                f"internal: frame {frame.index} is {rgb.shape[1]}x{rgb.shape[0]}, expected {self.width}x{self.height}"
            )
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        color = self.info.video.color
        return vf.reformat(
            format=self._video.pix_fmt,
            dst_colorspace=sws_colorspace(color.space),
            src_color_range=2,
            dst_color_range=color.range or 1,
            interpolation=SWS_FLAGS,
        )

    def _mux_video(self, packets) -> None:
        for packet in packets:
            self._out.mux(packet)

    def _pump(self, until: float | None) -> None:
        """Mux the other streams' packets up to ``until`` seconds (all of them if None)."""
        while True:
            if self._pending is None:
                try:
                    self._pending = next(self._aux_iter)
                except StopIteration:
                    return
                except av.FFmpegError:
                    return  # a truncated source: what was read is kept
            packet = self._pending
            ts = packet.dts if packet.dts is not None else packet.pts
            if until is not None and ts is not None and float(ts * packet.time_base) > until:
                return
            self._pending = None
            self._route(packet)

    def _route(self, packet) -> None:
        aux = self._aux[packet.stream.index]
        if aux.mode == "copy":
            if packet.size == 0 or packet.dts is None and packet.pts is None:
                return
            packet.stream = aux.out
            self._out.mux(packet)
        elif aux.mode == "aac":
            try:
                frames = packet.decode()
            except av.FFmpegError:
                return
            for af in frames:
                af.pts = None
                for rf in aux.resampler.resample(af):
                    self._out.mux(aux.out.encode(rf))
        elif aux.mode == "mov_text":
            if packet.size == 0 or packet.pts is None:
                return
            out = av.Packet(_mov_text_payload(bytes(packet), packet.stream.codec_context.name))
            out.pts, out.dts = packet.pts, packet.pts
            out.duration = packet.duration
            out.time_base = packet.time_base
            out.stream = aux.out
            self._out.mux(out)

    def close(self) -> None:
        """Flush the encoder and every stream, then close the file."""
        if self._out is None:
            return
        try:
            if self._template is None:
                self._mux_video(self._video.encode(None))
            self._pump(None)
            for aux in self._aux.values():
                if aux.mode == "aac":
                    for rf in aux.resampler.resample(None):
                        self._out.mux(aux.out.encode(rf))
                    self._out.mux(aux.out.encode(None))
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
