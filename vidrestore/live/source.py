"""Where live frames come from, and when: a camera, a file played at its own pace, or a network stream.

Sources (``--source``): ``N`` (a camera index: ``/dev/videoN`` through FFmpeg's ``v4l2`` input on Linux,
device ``N`` of ``avfoundation`` on macOS; on Windows give ``--format dshow --source "video=CAMERA NAME"``,
the names are listed by ``ffmpeg -list_devices true -f dshow -i dummy``), ``/dev/videoN``, a file, or a
URL (``rtsp://``, ``rtmp://``, ``http(s)://``, ``udp://``, ``srt://`` …; RTSP over TCP). ``--format`` and
``--source-option KEY=VALUE`` (e.g. ``video_size=1280x720``, ``framerate=30``, ``input_format=mjpeg``)
go to FFmpeg.

:class:`LiveSource` decodes (PyAV) in the capture thread. A file plays at its own pace (each frame waits for
its pts on the wall clock, ``loop`` starts it again); a camera or a network stream is read as fast as it
delivers. The first audio track's packets are handed on with their time (FFmpeg's camera inputs carry none).
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av

from ..errors import MediaError, UsageError
from ..media.source import Frame

__all__ = ["LIVE_TIME_BASE", "LiveSource", "SourceLost", "SourceSpec", "parse_source"]

LIVE_TIME_BASE = Fraction(1, 1_000_000)  # live frames carry their source time in microseconds
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass(frozen=True)
class SourceSpec:
    """Where frames come from: ``kind`` is ``camera``, ``file`` or ``stream``."""

    kind: str
    target: str
    format: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    @property
    def realtime(self) -> bool:
        """Whether frames must be paced by their timestamps (a file), or arrive at their own pace."""
        return self.kind == "file"


def parse_source(text: str, fmt: str | None = None, options: Sequence[str] = (),
                 platform: str | None = None) -> SourceSpec:
    """``--source`` (+ ``--format``, ``--source-option K=V``) → a :class:`SourceSpec`; files are checked."""
    plat = sys.platform if platform is None else platform
    opts = []
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--source-option {item!r}: expected KEY=VALUE (e.g. video_size=1280x720)")
        opts.append((key, value))
    text = str(text).strip()
    if not text:
        raise UsageError("--source is empty; give a camera index, a device, a file or a URL")
    if text.isdigit() and fmt is None:
        if plat.startswith("linux"):
            return SourceSpec("camera", f"/dev/video{int(text)}", "v4l2", tuple(opts))
        if plat == "darwin":
            return SourceSpec("camera", text, "avfoundation", tuple(opts))
        raise UsageError("give the camera by name here: --format dshow --source \"video=CAMERA NAME\" "
                         "(list them with: ffmpeg -list_devices true -f dshow -i dummy)")
    if text.startswith("/dev/video"):
        return SourceSpec("camera", text, fmt or "v4l2", tuple(opts))
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif _URL.match(text):
        if text.lower().startswith("rtsp") and "rtsp_transport" not in dict(opts):
            opts.append(("rtsp_transport", "tcp"))
        return SourceSpec("stream", text, fmt, tuple(opts))
    if fmt is not None and fmt in ("v4l2", "avfoundation", "dshow", "video4linux2", "gdigrab", "x11grab"):
        return SourceSpec("camera", text, fmt, tuple(opts))
    from ..media.probe import check_input_path

    path = check_input_path(text)
    return SourceSpec("file", str(path), fmt, tuple(opts))


class SourceLost(MediaError):
    """The source stopped before its end (truncated, removed, unplugged, disconnected)."""


@dataclass
class LiveSource:
    """Decode a :class:`SourceSpec` into :class:`Frame` objects whose ``pts`` is the source time in µs.

    :meth:`run` (in the capture thread) calls ``on_frame(frame)`` for each frame — paced by timestamps for
    a file, with ``loop`` restarting it (times keep increasing; the first frame of each pass carries
    ``meta["cut"]``) — and ``on_audio(packet, seconds)`` for the first audio track's packets. It returns
    ``"end"`` or ``"stopped"``, or raises :class:`SourceLost`. Each frame's ``meta["captured"]`` is the
    ``time.perf_counter()`` when it was ready to show.
    """

    spec: SourceSpec
    loop: bool = False
    open_timeout: float = 10.0
    read_timeout: float = 5.0
    width: int = 0
    height: int = 0
    rate: Fraction | None = None
    duration: float | None = None
    frames: int = 0
    skipped_packets: int = 0
    audio_template: Any = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _container: Any = field(default=None, repr=False)

    def open(self) -> "LiveSource":
        """Open the source (raises :class:`MediaError` with one line) and read its video geometry."""
        self._container = self._open()
        v = self._container.streams.video[0]
        self.width, self.height = v.codec_context.width, v.codec_context.height
        rate = v.average_rate or v.guessed_rate or v.base_rate
        self.rate = Fraction(rate) if rate else None
        if self._container.duration:
            self.duration = self._container.duration / 1_000_000
        audio = self._container.streams.audio
        self.audio_template = audio[0] if audio else None
        return self

    def _open(self) -> Any:
        spec = self.spec
        kwargs: dict[str, Any] = {"options": dict(spec.options)} if spec.options else {}
        if spec.format:
            kwargs["format"] = spec.format
        if spec.kind != "file":
            kwargs["timeout"] = (self.open_timeout, self.read_timeout)
        try:
            container = av.open(spec.target, mode="r", **kwargs)
        except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
            what = {"camera": "camera", "file": "file", "stream": "stream"}[spec.kind]
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            hint = ""
            if spec.kind == "camera" and spec.format == "v4l2":
                hint = " (is the camera plugged in and not used by another program? try --source /dev/videoN)"
            raise MediaError(f"cannot open the {what} {spec.target}: {first}{hint}") from None
        if not container.streams.video:
            container.close()
            raise MediaError(f"{spec.target} has no video stream")
        return container

    def close(self) -> None:
        with self.lock:
            c, self._container = self._container, None
            self.audio_template = None
        if c is not None:
            c.close()

    def run(self, on_frame: Callable[[Frame], None], on_audio: Callable[[Any, float], None],
            stop: threading.Event) -> str:
        offset = 0.0
        index = 0
        passes = 0
        while True:
            if self._container is None:
                try:
                    container = self._open()
                except MediaError as exc:
                    raise SourceLost(f"the source could not be reopened for --loop: {exc}") from None
                with self.lock:
                    self._container = container
            end, base = self._play(self._container, on_frame, on_audio, stop, offset, passes, index)
            index = self.frames
            if end is None:
                return "stopped"
            self.close()
            if not (self.loop and self.spec.kind == "file") or index == 0:
                return "end"
            offset += max(end - base, 1e-3)
            passes += 1

    def _play(self, container: Any, on_frame: Callable[[Frame], None], on_audio: Callable[[Any, float], None],
              stop: threading.Event, offset: float, passes: int, index: int) -> tuple[float | None, float]:
        """One pass over the container; returns (end time of the last frame or None if stopped, base time)."""
        v = container.streams.video[0]
        v.thread_type = "AUTO" if self.spec.kind == "file" else "SLICE"
        audio = container.streams.audio[0] if container.streams.audio else None
        with self.lock:
            self.audio_template = audio
        clock = _Pass.of(v, offset, first=passes > 0)
        demux = container.demux(*([v] + ([audio] if audio is not None else [])))
        while True:
            if stop.is_set():
                return None, clock.base or 0.0
            packet = self._next_packet(demux)
            if packet is None:
                break
            if audio is not None and packet.stream.index == audio.index:
                if packet.size and packet.pts is not None:
                    on_audio(packet, float(packet.pts * packet.time_base) - (clock.base or 0.0) + offset)
                continue
            for vf in self._decode(packet):
                t = clock.time_of(vf)
                if self.spec.realtime and clock.wait_until_due(t, stop):
                    return None, clock.base
                on_frame(self._frame(vf, t, clock))
        return self._end_of_pass(container, v, clock, index), clock.base or 0.0

    def _next_packet(self, demux: Any) -> Any:
        """The next packet, None at the end; a read error is the source lost."""
        try:
            return next(demux)
        except StopIteration:
            return None
        except av.FFmpegError as exc:
            first = (str(exc).strip().splitlines() or ["read error"])[0]
            raise SourceLost(f"the source stopped after {self.frames} frames ({first})") from None

    def _decode(self, packet: Any) -> list[Any]:
        try:
            return packet.decode()
        except av.FFmpegError:
            if packet.size:
                self.skipped_packets += 1
            return []

    def _frame(self, vf: Any, t: float, clock: "_Pass") -> Frame:
        rgb = vf.to_ndarray(format="rgb24")
        frame = Frame(index=self.frames, pts=round(t / LIVE_TIME_BASE), time_base=LIVE_TIME_BASE,
                      duration=round(clock.step / LIVE_TIME_BASE), rgb=rgb)
        frame.meta["captured"] = time.perf_counter()
        if clock.first:
            frame.meta["cut"] = True
            clock.first = False
        self.frames += 1
        clock.last_t = t
        return frame

    def _end_of_pass(self, container: Any, v: Any, clock: "_Pass", index: int) -> float:
        """The end time of a pass that ran to its end; a file that ended early is the source lost."""
        if clock.last_t is None:
            if self.frames == 0:
                raise SourceLost(f"{self.spec.target}: no video frame could be decoded")
            raise SourceLost(f"the source stopped after {self.frames} frames (no more frames on --loop)")
        step, offset = clock.step, clock.offset
        end = clock.last_t + step
        expected = self._expected_duration(container, v)
        short = bool(v.frames) and self.frames - index < v.frames - 1
        if expected and (end - offset) < expected - max(3 * step, 0.01 * expected):
            short = True
        if self.spec.kind == "file" and short:
            of = f" of {expected:.2f} s" if expected else ""
            raise SourceLost(f"the source stopped at {end - offset:.2f} s{of} (truncated or removed?)")
        return end

    @staticmethod
    def _expected_duration(container: Any, v: Any) -> float | None:
        if v.duration and v.time_base:
            return float(v.duration * v.time_base)
        if container.duration:
            return container.duration / 1_000_000
        return None


@dataclass
class _Pass:
    """The clock of one pass over a source: frame times (seconds, increasing across ``--loop`` passes by
    ``offset``) and, for a file, the wall-clock pacing."""

    offset: float
    step: float  # the nominal frame duration
    vtb: Fraction
    base: float | None  # source time of the pass's time 0
    first: bool  # the next frame is the first of a later pass (a cut)
    last_t: float | None = None
    wall0: float | None = None

    @classmethod
    def of(cls, v: Any, offset: float, first: bool) -> "_Pass":
        vtb = v.time_base or Fraction(1, 90000)
        rate = v.average_rate or v.guessed_rate
        step = float(1 / rate) if rate else 1 / 30
        base = float(v.start_time * vtb) if v.start_time is not None else None
        return cls(offset, step, vtb, base, first)

    def time_of(self, vf: Any) -> float:
        """The session time of a decoded frame (its pts, else one step after the last frame), increasing."""
        if vf.pts is not None:
            t_src = float(vf.pts * (vf.time_base or self.vtb))
        else:
            t_src = (self.last_t + self.step) if self.last_t is not None else 0.0
        if self.base is None:
            self.base = t_src
        t = t_src - self.base + self.offset
        if self.last_t is not None and t <= self.last_t:
            t = self.last_t + 1e-6
        return t

    def wait_until_due(self, t: float, stop: threading.Event) -> bool:
        """Wait until the frame at ``t`` is due on the wall clock; True when ``stop`` was set meanwhile."""
        now = time.perf_counter()
        if self.wall0 is None:
            self.wall0 = now - (t - self.offset)  # the pass starts now
        due = self.wall0 + (t - self.offset)
        if due - now > 0:
            return stop.wait(due - now)
        if now - due > 1.0:  # far behind (a stall): restart the clock rather than rush
            self.wall0 += now - due
        return False
