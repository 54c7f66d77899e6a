"""Recording what the live preview shows (``--record out.mp4`` or the ``r`` key), on the file door's encoder.

The shown frames (split view included, HUD not) are encoded by :class:`~vidrestore.media.sink.VideoSink`
(libx264, yuv420p, 4:4:4 for odd sizes) at their source times from 0, under a temporary name renamed into
place when the recording stops. The source's first audio track goes through the sink's own rules for each
container: copied packet for packet where the container takes its codec, else converted (AAC in MP4, PCM for
lossless audio in MKV/MOV), with the sink's one-line notice. FFmpeg's camera inputs carry no audio, so a
camera recording is silent.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from ..errors import OutputError
from ..media.probe import ColorInfo, MediaInfo, VideoInfo
from ..media.sink import EncodeOptions, VideoSink, container_for
from ..media.source import Frame
from ..util import temporary_path

__all__ = ["AUDIO_BACKLOG_S", "LiveRecorder", "keep_recent"]

AUDIO_BACKLOG_S = 3.0  # seconds of audio kept for a recording started later (and before its first frame)
_TIME_BASE = Fraction(1, 90000)


def keep_recent(backlog: deque, packet: Any, t: float) -> None:
    """Append ``(packet, t)`` to an audio backlog and drop what is more than :data:`AUDIO_BACKLOG_S` older."""
    backlog.append((packet, t))
    while backlog and t - backlog[0][1] > AUDIO_BACKLOG_S:
        backlog.popleft()


def _recording_info(path: Path, size: tuple[int, int], rate: Fraction | None) -> MediaInfo:
    """What the sink is told about the 'source' of a recording: RGB frames of ``size`` at ``rate``."""
    w, h = size
    video = VideoInfo(index=0, codec="rawvideo", width=w, height=h, pix_fmt="yuv420p", time_base=_TIME_BASE,
                      rate=rate or Fraction(30), frames=None, duration=None, sar=Fraction(1), color=ColorInfo(),
                      field_order=1)
    return MediaInfo(path=path, format="live", duration=None, video=video, streams=())


class _AudioFeed:
    """The source's audio pushed into a sink's other streams (:attr:`VideoSink.streams`), by the sink's own rules
    (:meth:`~vidrestore.media.mux.StreamCopier.add`: copied, or converted with a notice, or left out with a
    notice). Packets arrive with their time in seconds from the recording's start. Packets to convert are
    decoded by a decoder of this feed's own, so nothing of the capture thread's container is used here.
    """

    def __init__(self, streams: Any, template: Any) -> None:
        streams.add(template)
        self.streams = streams
        self.aux = streams.streams.get(template.index)  # None: left out
        self._decoder = _decoder_like(template) if self.aux is not None and self.aux.mode == "encode" else None

    def write(self, packet: Any, at: float) -> bool:
        """Mux (or convert) one source audio packet to play at ``at`` seconds; False when it is left out."""
        tb = packet.time_base
        copy = av.Packet(bytes(packet))
        new_pts = round(at / tb)
        shift = packet.pts - new_pts
        copy.pts = new_pts
        copy.dts = (packet.dts - shift) if packet.dts is not None else new_pts
        copy.duration = packet.duration
        copy.time_base = tb
        copy.is_keyframe = packet.is_keyframe
        if copy.dts < 0:
            return False
        if self._decoder is None:
            copy.stream = self.aux.out
            self.streams.mux(self.aux, copy)
            return True
        try:
            frames = self._decoder.decode(copy)
        except av.FFmpegError:
            self.aux.lost += 1
            return False
        for af in frames:
            af.pts, af.time_base = new_pts, tb
            self.streams.encode_audio(self.aux, af)
            new_pts += round(Fraction(af.samples, af.sample_rate) / tb)
        return True

    def flush(self) -> None:
        """The converted audio still inside the decoder (the sink flushes the encoder when it closes)."""
        decoder, self._decoder = self._decoder, None
        if decoder is None:
            return
        try:
            frames = decoder.decode(None)
        except av.FFmpegError:
            frames = []
        for af in frames:
            af.pts = None  # follows the samples already written
            self.streams.encode_audio(self.aux, af)


def _decoder_like(template: Any) -> Any:
    """A fresh decoder for the codec and parameters of the input audio stream ``template``."""
    src = template.codec_context
    cc = av.CodecContext.create(src.name, "r")
    cc.sample_rate = src.sample_rate
    cc.layout = src.layout
    if src.extradata:
        cc.extradata = src.extradata
    return cc


class LiveRecorder:
    """Write shown frames (and the source's audio) to ``path`` via a temporary name; :meth:`close` renames.

    Video: libx264 (yuv420p, 4:4:4 for odd sizes) at the shown frames' source times, starting at 0.
    Audio: ``audio_template`` (an input audio stream) is copied packet for packet when the container takes its
    codec, else converted as :class:`~vidrestore.media.sink.VideoSink` converts it; :meth:`add_audio` takes
    packets with their source time in seconds (earlier packets may be handed in with ``backlog``). Thread-safe:
    video and audio may come from different threads.
    """

    def __init__(self, path: str | os.PathLike, size: tuple[int, int], rate: Fraction | None = None, *,
                 audio_template: Any = None, backlog: Sequence[tuple[Any, float]] = (),
                 notice: Callable[[str], None] = lambda _m: None, crf: int = 20, preset: str = "veryfast",
                 overwrite: bool = False) -> None:
        self.path = Path(path)
        container_for(self.path)
        if not self.path.parent.is_dir():
            raise OutputError(f"output folder {self.path.parent} does not exist")
        if self.path.exists() and not overwrite:
            raise OutputError(f"{self.path} already exists; pass --overwrite to replace it")
        self.tmp = temporary_path(self.path)
        self.width, self.height = size
        self._lock = threading.Lock()
        self._t0: float | None = None
        self._last_pts = -1
        self._early: deque = deque(backlog)
        self.frames = 0
        self.audio_packets = 0
        odd = self.width % 2 or self.height % 2
        encode = EncodeOptions("h264", crf=crf, preset=preset, pix_fmt="yuv444p" if odd else "yuv420p")
        sink = VideoSink(self.tmp, _recording_info(self.path, size, rate), encode, notice, copy_streams=False,
                         progressive=True)
        self._sink: VideoSink | None = sink
        self._audio: _AudioFeed | None = None
        try:
            sink.__enter__()
            if audio_template is not None:
                self._audio = _AudioFeed(sink.streams, audio_template)
        except BaseException:
            self.abort()
            raise
        self.has_audio = self._audio is not None and self._audio.aux is not None

    def write(self, rgb: np.ndarray, t: float) -> None:
        """Encode one shown frame (RGB uint8) shown at source time ``t`` seconds."""
        if rgb.shape[0] != self.height or rgb.shape[1] != self.width:
            rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
        with self._lock:
            if self._sink is None:
                return
            if self._t0 is None:
                self._t0 = t
                early, self._early = list(self._early), deque()
                for packet, at in early:
                    self._mux_audio(packet, at)
            pts = max(round((t - self._t0) / _TIME_BASE), self._last_pts + 1)
            self._last_pts = pts
            self._sink.write(Frame(index=self.frames, pts=pts, time_base=_TIME_BASE, duration=0,
                                   rgb=np.ascontiguousarray(rgb)))
            self.frames += 1

    def add_audio(self, packet: Any, t: float) -> None:
        if not self.has_audio:
            return
        with self._lock:
            if self._sink is None:
                return
            if self._t0 is None:
                keep_recent(self._early, packet, t)
                return
            self._mux_audio(packet, t)

    def _mux_audio(self, packet: Any, t: float) -> None:
        if not self.has_audio or t < self._t0 - 1e-6 or packet.pts is None:
            return
        if self._audio.write(packet, t - self._t0):
            self.audio_packets += 1

    def close(self) -> Path | None:
        """Flush and rename into place; returns the path, or None (file removed) if no frame was written."""
        with self._lock:
            sink, self._sink = self._sink, None
            if sink is None:
                return None
            if not self.frames:
                sink.abort()
            else:
                if self._audio is not None:
                    self._audio.flush()
                sink.close()
        if not self.frames:
            self.tmp.unlink(missing_ok=True)
            return None
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        with self._lock:
            sink, self._sink = self._sink, None
        if sink is not None:
            sink.abort()
        self.tmp.unlink(missing_ok=True)
