"""Whole-frame clean-up before the face stage: deinterlace, light denoise, crop of head-switching noise.

The filters run in an FFmpeg filter graph (``av.filter.Graph``) as a ``Frame → Frame`` generator transform,
so they slot in front of any face stage. The graph works on planar RGB (``gbrp``): the frames reach it as
the RGB the source produced.

* ``deinterlace``: ``bwdif`` (motion-adaptive, better than yadif on stills). ``frame`` gives one frame per
  input frame (same frame count, same timestamps); ``field`` gives one frame per field (twice the frames, at
  twice the rate; the output time base is half the input's, so every timestamp stays exact). ``auto``
  deinterlaces (as ``frame``) only when :func:`detect_interlace` finds interlaced frames. The field order
  comes from the stream (``field_order``), top field first when it says nothing.
* ``denoise="light"``: ``atadenoise`` (temporal, cheap; nlmeans costs ~180 ms per SD frame here).
* ``crop_bottom=N``: the bottom N rows are cut off (VHS head-switching noise). The output keeps the cropped
  size — it is not scaled back — and its height is kept even by cutting one more row when ``H - N`` is odd.
  The sample aspect ratio is kept, so pixels keep their shape (the display aspect changes by the rows cut).

Temporal filters (bwdif, atadenoise) see no frames before a segment's start, so a file restored in segments
may differ from an unsegmented run in the first frame or two of each segment; a rerun is still bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Iterable, Iterator

import av
import numpy as np

from ..errors import MediaError, UsageError
from .probe import MediaInfo, open_input
from .source import Frame

DEINTERLACE_MODES = ("auto", "off", "frame", "field")
DENOISE_MODES = ("off", "light")
PROFILES = ("none", "vhs")

# AVFieldOrder: 0 unknown, 1 progressive, 2 TT, 3 BB, 4 TB, 5 BT (the first letter is the field shown first)
_BOTTOM_FIRST = {3, 5}
_INTERLACED_ORDERS = {2, 3, 4, 5}


@dataclass(frozen=True)
class FilterOptions:
    """What to do to every frame before the face stage. The default does nothing."""

    deinterlace: str = "off"
    denoise: str = "off"
    crop_bottom: int = 0

    def __post_init__(self) -> None:
        if self.deinterlace not in DEINTERLACE_MODES:
            raise UsageError(f"--deinterlace must be one of {', '.join(DEINTERLACE_MODES)}, got {self.deinterlace!r}")
        if self.denoise not in DENOISE_MODES:
            raise UsageError(f"--denoise must be one of {', '.join(DENOISE_MODES)}, got {self.denoise!r}")
        if self.crop_bottom < 0:
            raise UsageError(f"--crop-bottom must be 0 or more rows, got {self.crop_bottom}")

    @classmethod
    def profile(cls, name: str, **overrides) -> "FilterOptions":
        """The defaults of a profile (``vhs``: deinterlace auto, light denoise), then ``overrides`` not None."""
        if name not in PROFILES:
            raise UsageError(f"unknown --profile {name!r}; choose one of {', '.join(PROFILES)}")
        base = cls(deinterlace="auto", denoise="light") if name == "vhs" else cls()
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(base, **given)

    @property
    def active(self) -> bool:
        return self.deinterlace != "off" or self.denoise != "off" or self.crop_bottom > 0


@dataclass(frozen=True)
class Interlace:
    """What the first frames of a video say about interlacing."""

    interlaced: bool
    top_field_first: bool
    sampled: int  # frames looked at
    flagged: int  # of those, marked interlaced by the decoder


def detect_interlace(info: MediaInfo, sample: int = 16) -> Interlace:
    """Decode up to ``sample`` frames: interlaced when most are flagged so or the stream's field order says so."""
    with open_input(info.path) as container:
        stream = container.streams[info.video.index]
        stream.thread_type = "AUTO"
        flagged = seen = 0
        try:
            for vf in container.decode(stream):
                seen += 1
                flagged += bool(vf.interlaced_frame)
                if seen >= sample:
                    break
        except av.FFmpegError:
            pass
        order = int(stream.codec_context.field_order or 0)
    interlaced = (seen > 0 and flagged * 2 > seen) or (order in _INTERLACED_ORDERS and flagged > 0)
    return Interlace(interlaced, order not in _BOTTOM_FIRST, seen, flagged)


@dataclass(frozen=True)
class FilterPlan:
    """The filters resolved for one file: what runs, and the size, time base and rate that come out."""

    deinterlace: str | None  # "frame", "field" or None
    top_field_first: bool
    denoise: str
    crop: int  # rows cut from the bottom (even output height)
    width: int
    height: int
    time_base: Fraction
    rate: Fraction | None
    in_time_base: Fraction

    @property
    def active(self) -> bool:
        return self.deinterlace is not None or self.denoise != "off" or self.crop > 0

    def output_info(self, info: MediaInfo) -> MediaInfo:
        """``info`` with the video's size, time base and rate as they leave the filters (for the encoder)."""
        video = replace(info.video, width=self.width, height=self.height, time_base=self.time_base, rate=self.rate)
        return replace(info, video=video)

    def spec(self) -> list[tuple[str, str]]:
        """The filter chain, as (name, arguments) pairs, between the RGB input and output."""
        chain: list[tuple[str, str]] = []
        if self.deinterlace is not None:
            mode = "send_field" if self.deinterlace == "field" else "send_frame"
            parity = "tff" if self.top_field_first else "bff"
            chain.append(("bwdif", f"mode={mode}:parity={parity}:deint=all"))
        if self.denoise == "light":
            chain.append(("atadenoise", ""))
        if self.crop:
            chain.append(("crop", f"w={self.width}:h={self.height}:x=0:y=0"))
        return chain

    def __call__(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        """Filter ``frames``; a no-op plan passes them through untouched."""
        if not self.active:
            yield from frames
            return
        yield from _run_graph(self, frames)


def plan_filters(info: MediaInfo, options: FilterOptions, interlace: Interlace | None = None) -> FilterPlan:
    """Resolve ``options`` for ``info`` (probing the first frames for interlacing when it matters)."""
    v = info.video
    mode: str | None = None
    tff = True
    if options.deinterlace != "off":
        interlace = interlace or detect_interlace(info)
        tff = interlace.top_field_first
        if options.deinterlace == "auto":
            mode = "frame" if interlace.interlaced else None
        else:
            mode = options.deinterlace
    crop = 0
    height = v.height
    if options.crop_bottom:
        crop = options.crop_bottom + (v.height - options.crop_bottom) % 2
        height = v.height - crop
        if height < 2:
            raise UsageError(f"--crop-bottom {options.crop_bottom} leaves no picture of a {v.width}x{v.height} video")
    time_base, rate = v.time_base, v.rate
    if mode == "field":
        time_base = v.time_base / 2
        rate = v.rate * 2 if v.rate else None
    return FilterPlan(mode, tff, options.denoise, crop, v.width, height, time_base, rate, v.time_base)


def _build_graph(plan: FilterPlan, width: int, height: int, time_base: Fraction):
    graph = av.filter.Graph()
    node = graph.add_buffer(width=width, height=height, format="rgb24", time_base=time_base)
    chain = [("format", "gbrp"), *plan.spec(), ("format", "rgb24")]
    for name, args in chain:
        nxt = graph.add(name, args) if args else graph.add(name)
        node.link_to(nxt)
        node = nxt
    sink = graph.add("buffersink")
    node.link_to(sink)
    graph.configure()
    return graph


def _run_graph(plan: FilterPlan, frames: Iterable[Frame]) -> Iterator[Frame]:
    graph = None
    index = None
    rotation = 0
    first_duration = 0
    per_frame = 2 if plan.deinterlace == "field" else 1

    def emit(vf: av.VideoFrame) -> Frame:
        nonlocal index
        assert index is not None
        pts = Fraction(vf.pts) * Fraction(vf.time_base) / plan.time_base
        if pts.denominator != 1:
            raise MediaError(f"internal: filter timestamp {vf.pts}*{vf.time_base} is not exact in {plan.time_base}")
        out = Frame(
            index=index,
            pts=int(pts),
            time_base=plan.time_base,
            duration=first_duration,
            rgb=np.ascontiguousarray(vf.to_ndarray(format="rgb24")),
            rotation=rotation,
        )
        index += 1
        return out

    def pull() -> Iterator[Frame]:
        while True:
            try:
                vf = graph.pull()
            except (BlockingIOError, EOFError):
                return
            except av.FFmpegError as exc:
                if getattr(exc, "errno", None) in (11, 35):  # EAGAIN
                    return
                raise
            yield emit(vf)

    for frame in frames:
        if graph is None:
            h, w = frame.rgb.shape[:2]
            graph = _build_graph(plan, w, h, frame.time_base)
            index = frame.index * per_frame
            rotation = frame.rotation
            # one output frame lasts as long as an input frame (frame mode) or half of one (field mode),
            # which is the same count of ticks in the output time base either way
            first_duration = frame.duration
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.rgb), format="rgb24")
        vf.pts = frame.pts
        vf.time_base = frame.time_base
        graph.push(vf)
        yield from pull()
    if graph is not None:
        graph.push(None)
        yield from pull()
