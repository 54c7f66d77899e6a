"""Encode restored frames, with every other stream of the source beside them (:mod:`.mux`).

The video is encoded with the frame timestamps it came with (VFR stays VFR), its sample aspect ratio,
rotation and colour metadata, in the pixel format :func:`.picture.output_pix_fmt` chooses. The non-video
streams are copied or converted by :class:`.mux.StreamCopier`, interleaved by time with the encoded video.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np
from av.video.frame import PictureType

from ..errors import MediaError, UsageError
from .mux import INTERLEAVE_S, StreamCopier, TimeCut, copy_tags
from .picture import CODECS, blend, codec_formats, from_rgb, from_source, output_color, output_pix_fmt
from .probe import MediaInfo, open_input
from .source import Frame

__all__ = ["CODECS", "CONTAINERS", "DEFAULT_CRF", "EncodeOptions", "VideoSink", "container_for", "nvenc_available",
           "output_pix_fmt"]

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".mov": "mov"}
DEFAULT_CRF = {"h264": 18, "h265": 20}


@dataclass(frozen=True)
class EncodeOptions:
    codec: str = "h264"
    crf: int | None = None
    preset: str = "medium"
    pix_fmt: str | None = None

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise UsageError(f"unknown codec {self.codec!r}; choose one of {', '.join(CODECS)}")
        if self.codec == "h264_nvenc" and not nvenc_available():
            raise UsageError("h264_nvenc needs an NVIDIA GPU and its driver, and this machine has none that FFmpeg "
                             "can open; use --codec h264")
        if self.crf is not None and not 0 <= self.crf <= 51:
            raise UsageError(f"--crf must be between 0 and 51, got {self.crf}")
        if self.pix_fmt is not None and self.pix_fmt not in codec_formats(self.codec):
            raise UsageError(
                f"--pix-fmt {self.pix_fmt} cannot be encoded with {self.codec}; choose one of "
                f"{', '.join(codec_formats(self.codec))}"
            )


def nvenc_available() -> bool:
    """Whether FFmpeg can open NVIDIA's H.264 encoder here (the encoder is in PyAV's build; the GPU and driver
    decide): a 256x256 encoder is opened and closed."""
    try:
        cc = av.CodecContext.create("h264_nvenc", "w")
        cc.width, cc.height, cc.pix_fmt, cc.time_base = 256, 256, "yuv420p", Fraction(1, 25)
        cc.open()
    except (av.FFmpegError, OSError, ValueError):
        return False
    return True


def container_for(path: Path) -> str:
    fmt = CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"{path}: unsupported output extension {path.suffix or '(none)'!r}; use .mp4, .mkv or .mov"
        )
    return fmt


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
        self.streams: StreamCopier | None = None  # the source's other streams (set up on entering)
        self._video = None
        self._started = False
        self.frames_written = 0
        self._copy_streams = copy_streams
        self._template = video_template
        self._rotation = rotation
        # --start/--end: seconds from the file's first timestamp. The first written frame becomes time 0 and
        # the other streams are cut to [that frame, end) and shifted by the same amount.
        self.cut = TimeCut.of(info, start, end)

    # -- set-up -------------------------------------------------------------------------------------------
    def __enter__(self) -> "VideoSink":
        try:
            self._out = av.open(str(self.path), mode="w", format=self.fmt)
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(f"{self.path}: cannot create the output file ({exc})") from None
        self.streams = StreamCopier(self._out, self.fmt, self.path, self.info, self.notice, self.cut)
        if not self._copy_streams:
            self._video = self._add_video()
            return self
        self.streams.open(open_input(self.info.path), self.info.video.index, self._add_source_video)
        return self

    @property
    def video(self):
        """The output's video stream (None before entering)."""
        return self._video

    def _add_source_video(self, stream) -> None:
        self._video = self._add_video()
        copy_tags(stream, self._video)

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
        self._color = output_color(self.info.video.color, source_fmt, stream.pix_fmt)
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
        if opts.codec == "h264_nvenc":  # constant quality as x264's CRF does (cq 19 ~ crf 18), NVENC's p5 preset
            options.update({"preset": "p5", "tune": "hq", "rc": "vbr", "b": "0",
                            "cq": str(opts.crf if opts.crf is not None else 19)})
        cc.options = options
        return stream

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
        self.streams.pump(frame.time + INTERLEAVE_S)

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
        self.streams.pump(seconds + INTERLEAVE_S)

    def _shift_for(self, first_ts: int, time_base: Fraction) -> int:
        """The --start shift in ``time_base`` units; set by the first video timestamp written (which becomes 0)."""
        if self.cut.shift is None:
            self.cut.shift = Fraction(first_ts) * Fraction(time_base)
        return round(self.cut.shift / Fraction(time_base))

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
            return from_source(src, self._video.pix_fmt, self.info.video.color, self._color)
        rgb = frame.rgb
        if rgb.shape[0] != self.height or rgb.shape[1] != self.width:
            raise MediaError(
                f"internal: frame {frame.index} is {rgb.shape[1]}x{rgb.shape[0]}, expected {self.width}x{self.height}"
            )
        if src is None:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            return from_rgb(vf, self._video.pix_fmt, self._color)
        return blend(src, frame.decoded_rgb(), rgb, self._video.pix_fmt, self.info.video.color, self._color)

    def _mux_video(self, packets) -> None:
        for packet in packets:
            self._out.mux(packet)

    def close(self) -> None:
        """Flush the encoder and every stream, then close the file."""
        if self._out is None:
            return
        try:
            if self._template is None:
                self._mux_video(self._video.encode(None))
            if self.cut.shift is None:  # no frame was written
                self.cut.shift = self.cut.start or Fraction(0)
            self.streams.finish()
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
        try:
            if out is not None:
                out.close()
        finally:
            if self.streams is not None:
                self.streams.close()
