"""Test media made with PyAV: a moving pattern with real audio tracks, subtitles and metadata; and :func:`within`,
the time bound the tests put on a run.

Nothing is downloaded; every clip is a few dozen small frames.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass
class Audio:
    codec: str = "aac"
    rate: int = 48000
    layout: str = "stereo"
    freq: float = 440.0
    language: str | None = None
    title: str | None = None


@dataclass
class Clip:
    frames: int = 24
    width: int = 96
    height: int = 64
    fps: int = 24
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    time_base: Fraction | None = None
    pts: list[int] | None = None  # explicit timestamps (VFR), in time_base units
    audio: list[Audio] = field(default_factory=list)
    subtitles: list[tuple[str, str]] = field(default_factory=list)  # (language, text) per track, subrip
    sar: Fraction | None = None
    rotation: int = 0
    color: dict | None = None  # color_primaries / color_trc / colorspace / color_range on the encoder


def pattern(i: int, width: int, height: int) -> np.ndarray:
    """A moving gradient with a bright square: different in every frame, smooth enough to compress."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (x * 255 // max(1, width - 1) + i * 7) % 256
    img[..., 1] = (y * 255 // max(1, height - 1) + i * 3) % 256
    img[..., 2] = 128
    s = max(4, min(width, height) // 5)
    cx = (i * 5) % max(1, width - s)
    img[height // 3 : height // 3 + s, cx : cx + s] = 255
    return img


def make_clip(path: Path, clip: Clip | None = None) -> Path:
    clip = clip or Clip()
    path = Path(path)
    with av.open(str(path), "w") as out:
        v = out.add_stream(clip.codec, rate=clip.fps)
        v.width, v.height, v.pix_fmt = clip.width, clip.height, clip.pix_fmt
        tb = clip.time_base or Fraction(1, clip.fps * 1000)
        v.codec_context.time_base = tb
        v.time_base = tb
        if clip.codec == "libx264":
            v.codec_context.options = {"preset": "ultrafast", "crf": "23"}
        if clip.codec == "ffv1":
            v.codec_context.options = {"level": "3", "slicecrc": "1"}
        if clip.sar is not None:
            v.codec_context.sample_aspect_ratio = clip.sar
        if clip.color:
            for key, value in clip.color.items():
                setattr(v.codec_context, key, value)
        if clip.rotation:
            v.set_display_rotation(clip.rotation)
        astreams = []
        for a in clip.audio:
            s = out.add_stream(a.codec, rate=a.rate, layout=a.layout)
            if a.language:
                s.metadata["language"] = a.language
            if a.title:
                s.metadata["title"] = a.title
            astreams.append((s, a))
        sstreams = []
        for lang, text in clip.subtitles:
            s = out.add_mux_stream("subrip")
            s.time_base = Fraction(1, 1000)
            s.metadata["language"] = lang
            sstreams.append((s, text))
        pts = clip.pts or [round(i / clip.fps / tb) for i in range(clip.frames)]
        for i, p in enumerate(pts):
            f = av.VideoFrame.from_ndarray(pattern(i, clip.width, clip.height), format="rgb24")
            f.pts = p
            f.time_base = tb
            for packet in v.encode(f):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)
        seconds = float((pts[-1] + round(1 / clip.fps / tb)) * tb)
        for s, a in astreams:
            n = int(seconds * a.rate)
            t = np.arange(n) / a.rate
            channels = 1 if a.layout == "mono" else 2
            wave = (0.3 * np.sin(2 * np.pi * a.freq * t) * 32767).astype(np.int16)
            data = np.repeat(wave[None, :], channels, axis=0).reshape(1, -1, order="F")
            frame = av.AudioFrame.from_ndarray(data, format="s16", layout=a.layout)
            frame.sample_rate = a.rate
            frame.pts = 0
            for packet in s.encode(frame):
                out.mux(packet)
            for packet in s.encode():
                out.mux(packet)
        for s, text in sstreams:
            for k in range(2):
                pk = av.Packet(f"{text} {k}".encode())
                pk.pts = pk.dts = k * 300
                pk.duration = 250
                pk.time_base = Fraction(1, 1000)
                pk.stream = s
                out.mux(pk)
    return path


@dataclass
class StreamDigest:
    type: str
    codec: str
    packets: int
    sha256: str
    language: str | None
    title: str | None


def stream_digests(path: Path) -> list[StreamDigest]:
    """Per non-video stream: codec, packet count and sha256 of all packet bytes, tags."""
    out = []
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type != "video"]
        hashes = {s.index: hashlib.sha256() for s in streams}
        counts = {s.index: 0 for s in streams}
        if streams:
            for pk in c.demux(*streams):
                if pk.size:
                    hashes[pk.stream.index].update(bytes(pk))
                    counts[pk.stream.index] += 1
        for s in streams:
            md = {k.lower(): v for k, v in s.metadata.items()}
            out.append(
                StreamDigest(s.type, s.codec_context.name, counts[s.index], hashes[s.index].hexdigest(),  # "und" = no tag
                             None if md.get("language") in (None, "und") else md["language"], md.get("title"))
            )
    return out


def video_timestamps(path: Path) -> tuple[list[float], Fraction | None]:
    """Presentation times (seconds) of every decoded frame, and the stream's SAR."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        times = [float(f.pts * f.time_base) for f in c.decode(v)]
        sar = v.codec_context.sample_aspect_ratio
    return times, sar


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def within(fn, seconds: float = 180.0):
    """``fn()`` in a thread: its result, its exception re-raised, or a failure if it has not ended in ``seconds``."""
    out: dict = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]
