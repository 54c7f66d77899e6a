"""The source's other streams beside the encoded video: audio, subtitles and the rest, copied or converted.

Every audio and subtitle stream is copied packet for packet when the output container takes its codec;
otherwise audio is transcoded (AAC, or PCM for lossless audio where the container holds it) and text subtitles
to mov_text, each with a one-line notice. Other streams are dropped with a notice, never silently. The streams
are read by a second demuxer of the source and interleaved by time with the video (:meth:`StreamCopier.pump`),
so nothing accumulates; with ``--start``/``--end`` they are cut to the range and shifted as the video is.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import av

from .audio import LOSSLESS_AUDIO, audio_target, can_encode, ceil, encoder_settings, trim
from .probe import MediaInfo

INTERLEAVE_S = 0.5  # how far ahead of the video the copied streams are muxed


@dataclass
class TimeCut:
    """``--start``/``--end`` in seconds of the source's clock (None: open), and ``shift``, the seconds taken off
    every stream: set by the first video timestamp written (which becomes 0); 0 when there is no start."""

    start: Fraction | None = None
    end: Fraction | None = None
    shift: Fraction | None = Fraction(0)

    @classmethod
    def of(cls, info: MediaInfo, start: float | None, end: float | None) -> "TimeCut":
        """Seconds from the file's first timestamp (as the user gives them) on the source's clock."""
        origin = Fraction(info.start_time or 0.0).limit_denominator(1_000_000)
        return cls(
            None if start is None else origin + Fraction(start).limit_denominator(1_000_000),
            None if end is None else origin + Fraction(end).limit_denominator(1_000_000),
            None if start is not None else Fraction(0),
        )

    @property
    def active(self) -> bool:
        return self.start is not None or self.end is not None


# Audio codecs that players expect in MP4 (FFmpeg also muxes PCM into MP4, but few players read it).
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac", "mp2"}
_TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "mov_text", "text", "webvtt"}
_DERIVED_TAGS = {"duration", "encoder", "vendor_id", "bps", "statistics_tags", "statistics_writing_app",
                 "statistics_writing_date_utc", "creation_time"}


@dataclass
class AuxStream:
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
_CUT_READ_ON_S = 5.0  # how far past --end the other streams are still read (they are interleaved loosely)
_MAX_READ_ERRORS = 32  # consecutive demuxer errors on the copied streams before the rest is given up


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


def copy_tags(src, dst) -> None:
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


class StreamCopier:
    """The non-video streams of ``info``'s file, muxed into ``out`` (a container of format ``fmt``, written to
    ``path``) beside the video. :meth:`open` adds them in the source's order, calling ``add_video`` at the video's
    place; :meth:`pump` muxes them up to a time; :meth:`finish` flushes and reports every loss."""

    def __init__(self, out: Any, fmt: str, path: Path, info: MediaInfo, notice: Callable[[str], None],
                 cut: TimeCut) -> None:
        self._out = out
        self.fmt = fmt
        self.path = path
        self.info = info
        self.notice = notice
        self.cut = cut
        self.streams: dict[int, AuxStream] = {}  # by input stream index
        self._in = None
        self._streams: list = []
        self._iter: Any = iter(())
        self._pending = None
        self._read_errors = 0
        self.read_errors = 0

    def open(self, source: Any, video_index: int, add_video: Callable[[Any], None]) -> None:
        """Add every stream of the open input ``source`` (``add_video`` for the video), and start reading."""
        self._in = source
        for stream in source.streams:
            if stream.index == video_index:
                add_video(stream)
            else:
                self.add(stream)
        self._streams = [s for s in source.streams if s.index in self.streams]
        if self.cut.start is not None and self._streams:
            try:  # near the cut (a little before: streams are interleaved loosely); packets before it are dropped
                source.seek(max(0, int((self.cut.start - 2) * 1_000_000)), backward=True)
            except av.FFmpegError:
                pass  # unseekable: read from the beginning
        self._iter = source.demux(*self._streams) if self._streams else iter(())

    def accepts(self, stream) -> bool:
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

    def add(self, stream) -> None:
        codec = stream.codec_context.name if stream.codec_context else "unknown"
        where = f"stream #{stream.index} ({stream.type}, {codec})"
        ext = self.path.suffix or self.fmt
        cut = self.cut.active
        if stream.type in ("audio", "subtitle", "video") and self.accepts(stream):
            if stream.type == "audio" and cut and codec.startswith("pcm_") and can_encode(codec):
                # PCM is cut to the sample: decoded and written again in its own codec (the same samples)
                aux = self._add_encoded(stream, codec, where)
                if aux is not None:
                    self.streams[stream.index] = aux
                    return
            out = self._out.add_stream_from_template(stream)
            copy_tags(stream, out)
            self.streams[stream.index] = AuxStream("copy", out, where)
            return
        if stream.type == "audio":
            target = audio_target(stream, self.fmt, self._out.supported_codecs)
            aux = self._add_encoded(stream, target, where)
            if aux is None and target != "aac":
                target, aux = "aac", self._add_encoded(stream, "aac", where)
            if aux is None:
                self.notice(f"notice: {where} cannot be stored in {ext} nor converted to AAC and is left out; "
                            "use .mkv to keep it")
                return
            self.streams[stream.index] = aux
            if target == "aac":
                hint = "; use .mkv or .mov to keep it lossless" if codec.startswith(LOSSLESS_AUDIO) else ""
                self.notice(f"notice: {where} cannot be copied into {ext}; converting it to AAC{hint}")
            else:
                self.notice(f"notice: {where} cannot be copied into {ext}; converting it to {target} "
                            "(lossless: the decoded samples are kept exactly)")
            return
        if stream.type == "subtitle" and codec in _TEXT_SUBTITLES and "mov_text" in self._out.supported_codecs:
            out = self._out.add_mux_stream("mov_text")
            out.time_base = stream.time_base
            copy_tags(stream, out)
            self.streams[stream.index] = AuxStream("mov_text", out, where)
            self.notice(f"notice: {where} cannot be copied into {ext}; converting it to mov_text")
            return
        self.notice(f"notice: {where} cannot be stored in {ext} and is left out; use .mkv to keep it")

    def _add_encoded(self, stream, codec: str, where: str) -> AuxStream | None:
        """An output stream that ``codec`` encodes the decoded audio of ``stream`` into, or None if the encoder
        takes none of: the source's rate and layout, 48 kHz with that layout, 48 kHz stereo."""
        settings = encoder_settings(stream, codec)
        if settings is None:
            return None
        rate, layout = settings
        out = self._out.add_stream(codec, rate=rate, layout=layout)
        copy_tags(stream, out)
        out.codec_context.open()
        resampler = av.AudioResampler(format=out.format.name, layout=out.layout.name, rate=out.rate)
        return AuxStream("encode", out, where, resampler)

    def pump(self, until: float | None) -> None:
        """Mux the other streams' packets up to ``until`` seconds (all of them if None)."""
        while True:
            if self._pending is None:
                try:
                    self._pending = next(self._iter)
                    self._read_errors = 0
                except StopIteration:
                    return
                except av.FFmpegError:
                    # A damaged spot: count it and read on after it; many in a row mean the rest is unreadable.
                    self.read_errors += 1
                    self._read_errors += 1
                    if self._read_errors >= _MAX_READ_ERRORS:
                        self._iter = iter(())
                        return
                    self._iter = self._in.demux(*self._streams)
                    continue
            packet = self._pending
            ts = packet.dts if packet.dts is not None else packet.pts
            seconds = None if ts is None else float(ts * packet.time_base)
            if until is not None and seconds is not None and seconds > until:
                return
            self._pending = None
            if self.cut.end is not None and seconds is not None and seconds > self.cut.end + _CUT_READ_ON_S:
                self._iter = iter(())  # far past --end: nothing later belongs to the range
                return
            self._route(packet)

    def _route(self, packet) -> None:
        aux = self.streams[packet.stream.index]
        if aux.mode == "encode":
            try:
                frames = packet.decode()
            except av.FFmpegError:
                if packet.size:
                    aux.lost += 1
                return
            for af in frames:
                self.encode_audio(aux, af)
            return
        if packet.size == 0 or packet.dts is None and packet.pts is None:
            return
        if aux.mode == "mov_text" and packet.pts is None:
            return
        if (self.cut.active) and not self._in_range(aux, packet):
            return
        if aux.mode == "copy":
            packet.stream = aux.out
            self.mux(aux, packet)
        elif aux.mode == "mov_text":
            out = av.Packet(_mov_text_payload(bytes(packet), packet.stream.codec_context.name))
            out.pts, out.dts = packet.pts, packet.pts
            out.duration = packet.duration
            out.time_base = packet.time_base
            out.stream = aux.out
            self.mux(aux, out)

    def _in_range(self, aux: AuxStream, packet) -> bool:
        """Keep ``packet`` only inside the --start/--end range, shifted as the video is. Audio (and any other
        copied stream) keeps whole packets that start inside the range; a subtitle overlapping an edge is
        shortened to it."""
        tb = Fraction(packet.time_base)
        ts = packet.pts if packet.pts is not None else packet.dts
        t = ts * tb
        dur = (packet.duration or 0) * tb
        lo = self.cut.shift if self.cut.start is not None else None
        hi = self.cut.end
        if packet.stream.type == "subtitle":
            if (lo is not None and t + dur <= lo and (dur or t < lo)) or (hi is not None and t >= hi):
                return False
            start = t if lo is None else max(t, lo)
            stop = t + dur if hi is None or not dur else min(t + dur, hi)
            new_pts = ceil(start / tb)
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
        shift = round(self.cut.shift / tb)
        if shift:
            packet.pts = None if packet.pts is None else packet.pts - shift
            packet.dts = None if packet.dts is None else packet.dts - shift
        return True

    def encode_audio(self, aux: AuxStream, af: av.AudioFrame) -> None:
        """Encode one decoded audio frame, cut to the sample at --start/--end, at the time it plays (shifted
        as the video is), so a converted track stays in sync even when it starts later than the picture."""
        rate = af.sample_rate
        if af.pts is not None and af.time_base is not None:
            t = Fraction(af.pts) * Fraction(af.time_base)
        else:
            t = aux.src_next if aux.src_next is not None else Fraction(0)
        n = af.samples
        aux.src_next = t + Fraction(n, rate)
        lo = self.cut.shift if self.cut.start is not None else None
        a = 0 if lo is None else min(n, max(0, ceil((lo - t) * rate)))
        b = n if self.cut.end is None else min(n, max(0, ceil((self.cut.end - t) * rate)))
        if a >= b:
            return
        if (a, b) != (0, n):
            af = trim(af, a, b)
        else:
            af.pts = None
        if aux.next_pts is None:
            aux.next_pts = round((t + Fraction(a, rate) - self.cut.shift) * aux.out.rate)
        for rf in aux.resampler.resample(af):
            self._encode_frame(aux, rf)

    def _encode_frame(self, aux: AuxStream, rf: av.AudioFrame | None) -> None:
        if rf is not None:
            rf.pts = aux.next_pts
            rf.time_base = Fraction(1, aux.out.rate)
            aux.next_pts += rf.samples
        for p in aux.out.encode(rf):
            self.mux(aux, p)

    def mux(self, aux: AuxStream, packet) -> None:
        try:
            self._out.mux(packet)
        except av.error.ArgumentError:
            aux.lost += 1  # a packet the muxer refuses (bad timestamps in a damaged file); a full disk still raises

    def report(self) -> None:
        """One line for every loss and every approximation in the other streams; nothing is dropped silently."""
        if self.read_errors:
            self.notice(
                f"warning: {self.read_errors} read error(s) in the audio/subtitle streams of "
                f"{Path(self.info.path).name}; the packets there are missing from the output"
            )
        for aux in self.streams.values():
            if aux.lost:
                self.notice(f"warning: {aux.where}: {aux.lost} packet(s) could not be decoded or written and are "
                            "missing from the output")
            if aux.lead is not None and aux.mode == "copy" and (self.cut.active):
                self.notice(
                    f"notice: {aux.where} is copied bit-exact, so it is cut at its own packet boundaries: it starts "
                    f"{1000 * float(aux.lead):.0f} ms after the picture (packets of up to "
                    f"{1000 * float(aux.packet_s or 0):.0f} ms)"
                )

    def finish(self) -> None:
        """Mux what is left, flush the converted audio, and say what was lost (one line each)."""
        self.pump(None)
        for aux in self.streams.values():
            if aux.mode == "encode":
                for rf in aux.resampler.resample(None):
                    self._encode_frame(aux, rf)
                self._encode_frame(aux, None)
        self.report()

    def close(self) -> None:
        source, self._in = self._in, None
        if source is not None:
            source.close()
