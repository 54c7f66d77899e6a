"""Probing a media file: what its video stream is and which other streams travel with it.

Every way a path can fail to be a video is turned into one ``MediaError`` line here, before any work starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..errors import MediaError


@dataclass(frozen=True)
class ColorInfo:
    """Colour metadata as FFmpeg's enum values (0/2 mean unspecified)."""

    primaries: int = 2
    trc: int = 2
    space: int = 2
    range: int = 0


@dataclass(frozen=True)
class StreamInfo:
    index: int
    type: str
    codec: str
    language: str | None
    title: str | None


@dataclass(frozen=True)
class VideoInfo:
    index: int
    codec: str
    width: int
    height: int
    pix_fmt: str | None
    time_base: Fraction
    rate: Fraction | None
    frames: int | None
    duration: float | None
    sar: Fraction
    color: ColorInfo
    field_order: int = 0  # AVFieldOrder as the stream states it: 0 unknown, 1 progressive, 2 TT, 3 BB, 4 TB, 5 BT


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    format: str
    duration: float | None
    video: VideoInfo
    streams: tuple[StreamInfo, ...]
    start_time: float | None = None

    @property
    def estimated_frames(self) -> int | None:
        """The frame count from the header, else duration × rate, else None."""
        if self.video.frames:
            return self.video.frames
        duration = self.video.duration or self.duration
        if duration and self.video.rate:
            return max(1, round(duration * float(self.video.rate)))
        return None


def check_input_path(path: str | os.PathLike) -> Path:
    """One clear line for every way ``path`` is not a readable file."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: no such file")
    if p.is_dir():
        raise MediaError(f"{p} is a folder, not a video file (use 'vidrestore batch' for folders)")
    if not p.is_file():
        raise MediaError(f"{p} is not a regular file")
    if p.stat().st_size == 0:
        raise MediaError(f"{p} is empty (0 bytes)")
    if not os.access(p, os.R_OK):
        raise MediaError(f"{p}: permission denied")
    return p


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_input(path: Path) -> av.container.InputContainer:
    """Open ``path`` for demuxing, or raise one ``MediaError`` line."""
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(f"{path}: not a media file FFmpeg can read ({_first_line(exc)})") from None


def _tag(metadata: dict, key: str) -> str | None:
    for k, v in metadata.items():
        if k.lower() == key:
            return v
    return None


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def probe(path: str | os.PathLike) -> MediaInfo:
    """Describe ``path``; raise ``MediaError`` if it is not a video file."""
    p = check_input_path(path)
    with open_input(p) as container:
        videos = [s for s in container.streams if s.type == "video" and not _is_attached_picture(s)]
        if not videos:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise MediaError(f"{p} has no video stream (it holds {', '.join(kinds)})")
        v = videos[0]
        cc = v.codec_context
        if cc is None or not cc.width or not cc.height:
            raise MediaError(f"{p}: the video stream has no decodable picture size")
        sar = resolved_sar(v)
        rate = v.average_rate or v.guessed_rate or v.base_rate
        video = VideoInfo(
            index=v.index,
            codec=cc.name,
            width=cc.width,
            height=cc.height,
            pix_fmt=cc.format.name if cc.format else None,
            time_base=Fraction(v.time_base) if v.time_base else Fraction(1, 90000),
            rate=Fraction(rate) if rate else None,
            frames=v.frames or None,
            duration=_seconds(v.duration, v.time_base),
            sar=sar,
            color=ColorInfo(
                primaries=int(cc.color_primaries or 2),
                trc=int(cc.color_trc or 2),
                space=_space(cc),
                range=int(cc.color_range or 0),
            ),
            field_order=int(cc.field_order or 0),
        )
        streams = tuple(
            StreamInfo(
                index=s.index,
                type=s.type,
                codec=(s.codec_context.name if s.codec_context else "unknown"),
                language=_tag(dict(s.metadata), "language"),
                title=_tag(dict(s.metadata), "title"),
            )
            for s in container.streams
        )
        duration = container.duration / 1_000_000 if container.duration else None
        start = container.start_time / 1_000_000 if container.start_time not in (None,) else None
        return MediaInfo(
            path=p, format=container.format.name, duration=duration, video=video, streams=streams, start_time=start
        )


def resolved_sar(stream) -> Fraction:
    """The sample aspect ratio as FFmpeg resolves it: the container's where it states one (AVI vprp, MOV pasp,
    Matroska display size), else the bitstream's, else 1:1 (``av_guess_sample_aspect_ratio``, which is what
    PyAV's ``VideoStream.sample_aspect_ratio`` wraps). A DV-AVI whose container says 10:11 stays 10:11 although
    the DV bitstream says 8:9; an H.263 3GP whose container says 1:1 stays 1:1 although the bitstream says 12:11.
    """
    sar = stream.sample_aspect_ratio or (stream.codec_context.sample_aspect_ratio if stream.codec_context else None)
    return Fraction(sar) if sar and sar > 0 else Fraction(1)


def _space(cc) -> int:
    """The stream's colour matrix; RGB pixel formats (gbrp, bgr0, ...) are RGB (0) whatever the tag omits."""
    space = int(cc.colorspace or 2)
    fmt = cc.format
    if fmt is not None and fmt.is_rgb and space == 2:
        return 0
    return space


def _is_attached_picture(stream) -> bool:
    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except (AttributeError, TypeError):
        return False
