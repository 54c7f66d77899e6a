"""Crash-safe restoration of one file in segments, joined without re-encoding.

A file is cut into segments of about ``segment_seconds`` of frames, at exact frame boundaries found by reading
the video packets' timestamps (no decoding). Each segment is decoded from the keyframe before its start (the
frames before the start are decoded and dropped), filtered, restored by the face stage and encoded, video
only, by a fresh encoder — so it starts with a keyframe — into ``<work>/seg_00012.mp4`` (``.mkv`` for ffv1).
The file is flushed to disk (fsync) under a temporary name and renamed into place, so a segment file that
exists is complete; a sidecar ``seg_00012.json`` (written first, the same way) records its frame count.

After a crash, the same job finds the finished segments and does only the missing ones. When all exist they
are joined: the video packets of every segment, in order, with their original timestamps, are remuxed into
the output beside the audio and subtitle streams copied once from the source (``VideoSink`` in template
mode). The encoder settings are identical for every segment, so their codec headers (SPS/PPS) are too; the
join checks that and refuses a mismatch. Then the work folder is removed.

Segment jobs are plain picklable dataclasses run by :func:`run_segment`, so any executor can run them:
a process pool, Ray tasks, or the calling thread.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import av

from ..errors import MediaError, VidrestoreError
from ..media.filters import FilterPlan
from ..media.probe import MediaInfo, open_input
from ..media.picture import output_color
from ..media.sink import VideoSink
from ..media.source import Frame, VideoSource
from ..options import RestoreOptions
from ..pipeline import FaceStage, RestoreStats, build_stage
from ..util import atomic_output, sweep_partials, write_atomic

StageFactory = Callable[[RestoreOptions, RestoreStats, Callable[[str], None]], FaceStage]


@dataclass(frozen=True)
class Segment:
    """Frames with ``start_pts <= pts < end_pts`` (None: from the first / to the last frame)."""

    index: int
    start_pts: int | None
    end_pts: int | None
    first_frame: int
    frames: int  # as counted from the packets; decoding may find fewer in a damaged file
    lookback_pts: int | None = None  # decoding and the face stage start here, the output at start_pts
    lookback_frames: int = 0
    lookahead_frames: int = 0  # ... and run on this many frames past end_pts (to lookahead_pts, None: the end)
    lookahead_pts: int | None = None


#: Frames before its start that a segment's face stage begins with (run through it and dropped), so the tracks,
#: their smoothing, their blend state and the scene-cut reference a segment starts with are those a single run
#: has there: a face is not re-confirmed or re-smoothed from scratch at every boundary. Counted in frames, as the
#: smoother's memory is (tests/test_stability.py, FFV1, a marker pasted on a moving face: with 48 frames the
#: segmented output is a single run's but for ≤ 3 levels on the marker's edge for 16 frames, ~0.01 px; with 18
#: frames up to 17 levels; with none the face restarts at the boundary and differs by far more).
LOOKBACK_FRAMES = 48
#: Frames past its end that a segment's face stage runs on (dropped): the fixed-lag smoother (10 frames) and the
#: detection and restore batches hold the last frames back until they have seen what follows.
LOOKAHEAD_FRAMES = 32


def range_pts(info: MediaInfo, start: float | None, end: float | None) -> tuple[int | None, int | None]:
    """``start``/``end`` seconds (from the file's first timestamp) as video timestamps: the first frame at or
    after each."""
    tb = info.video.time_base
    origin = Fraction(str(info.start_time or 0.0))  # str: 0.2 is 1/5, not the binary float's 0.2000…0111

    def pts(t: float | None) -> int | None:
        return None if t is None else math.ceil((origin + Fraction(str(t))) / tb)

    return pts(start), pts(end)


def plan_segments(
    info: MediaInfo, seconds: float, start_pts: int | None = None, end_pts: int | None = None,
    lookback: int | None = None,
) -> list[Segment]:
    """Cut ``info``'s video (the frames with ``start_pts <= pts < end_pts``) into segments of about ``seconds``
    (``<= 0``: one segment).

    Boundaries fall on frames: segment k starts at the first frame at or after ``first + k * seconds``.
    A stream whose packets lack timestamps is not cut. Segments after the first start their face stage
    ``lookback`` frames earlier (default :data:`LOOKBACK_FRAMES`) and segments before the last run
    :data:`LOOKAHEAD_FRAMES` past their end; those frames are dropped from the segment's output.
    """
    ranged = start_pts is not None or end_pts is not None
    if seconds <= 0 and not ranged:
        return [Segment(0, None, None, 0, info.estimated_frames or 0)]
    pts: list[int] = []
    with open_input(info.path) as container:
        stream = container.streams[info.video.index]
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    return [Segment(0, start_pts, end_pts, 0, info.estimated_frames or 0)]
                if (start_pts is None or packet.pts >= start_pts) and (end_pts is None or packet.pts < end_pts):
                    pts.append(int(packet.pts))
        except av.FFmpegError:
            pass  # truncated: cut what could be read; the last segment decodes to the end anyway
    if not pts:
        return [Segment(0, start_pts, end_pts, 0, 0)]
    pts.sort()
    if seconds <= 0:
        return [Segment(0, start_pts, end_pts, 0, len(pts))]
    step = Fraction(seconds) / info.video.time_base
    starts = [0]
    boundary = pts[0] + step
    for i, p in enumerate(pts):
        if p >= boundary:
            starts.append(i)
            while boundary <= p:
                boundary += step
    segments = []
    back = LOOKBACK_FRAMES if lookback is None else lookback
    for k, first in enumerate(starts):
        last = starts[k + 1] if k + 1 < len(starts) else len(pts)
        early = max(first - back, 0) if k > 0 else first
        late = min(last + LOOKAHEAD_FRAMES, len(pts)) if k + 1 < len(starts) else last
        segments.append(
            Segment(
                index=k,
                start_pts=start_pts if k == 0 else pts[first],
                end_pts=end_pts if k + 1 == len(starts) else pts[last],
                first_frame=first,
                frames=last - first,
                lookback_pts=pts[early] if early < first else None,
                lookback_frames=first - early,
                lookahead_frames=late - last,
                lookahead_pts=pts[late] if late < len(pts) else end_pts,
            )
        )
    return segments


def segment_suffix(codec: str) -> str:
    # MP4 keeps each packet's pts and dts exactly (Matroska drops dts, which B-frames need for the join);
    # ffv1 is intra-only and lives in Matroska.
    return ".mkv" if codec == "ffv1" else ".mp4"


@dataclass(frozen=True)
class SegmentJob:
    """Everything one worker needs to produce one segment file. Picklable."""

    info: MediaInfo
    segment: Segment
    path: str
    options: RestoreOptions
    filters: FilterPlan
    stage_factory: StageFactory | None = None


@dataclass
class SegmentResult:
    index: int
    frames: int
    seconds: float
    rotation: int = 0
    notices: list[str] = field(default_factory=list)
    skipped_packets: int = 0
    reused: bool = False


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def read_finished(path: Path) -> SegmentResult | None:
    """The record of a finished segment file, or None if it is not (completely) there."""
    side = _sidecar(path)
    if not path.is_file() or not side.is_file():
        return None
    try:
        data = json.loads(side.read_text())
        return SegmentResult(**{**data, "reused": True})
    except (ValueError, TypeError):
        return None


def _numbered(frames: Iterable[Frame], first: int) -> Iterator[Frame]:
    for frame in frames:
        frame.index += first
        yield frame


def run_segment(job: SegmentJob) -> SegmentResult:
    """Produce ``job.path`` (if it is not already there) and return what was done. Runs in any process."""
    path = Path(job.path)
    done = read_finished(path)
    if done is not None:
        return done
    started = time.perf_counter()
    seg = job.segment
    notices: list[str] = []
    stats = RestoreStats(input=job.info.path, output=path)

    def note(message: str) -> None:
        if message not in notices:
            notices.append(message)

    out_info = job.filters.output_info(job.info)
    if job.stage_factory is None:
        stage = build_stage(job.options, stats, note, info=out_info)
    else:
        stage = job.stage_factory(job.options, stats, note)
    sweep_partials(path, note)
    early = seg.lookback_pts if seg.lookback_frames else seg.start_pts
    late = seg.lookahead_pts if seg.lookahead_frames else seg.end_pts
    source = VideoSource(job.info, start_pts=early, end_pts=late)
    tb = Fraction(job.info.video.time_base)
    start = None if seg.start_pts is None else Fraction(seg.start_pts) * tb
    end = None if seg.end_pts is None else Fraction(seg.end_pts) * tb
    rotation = 0
    frames = 0
    with atomic_output(path, fsync=True) as tmp:
        with source, VideoSink(
            tmp, out_info, job.options.encode_options(), note, copy_streams=False
        ) as sink:
            numbered = _numbered(source.frames(), seg.first_frame - seg.lookback_frames)
            for frame in stage(job.filters(numbered)):
                t = Fraction(frame.pts) * Fraction(frame.time_base)
                if start is not None and t < start or end is not None and t >= end:
                    continue  # the look-back / look-ahead: they set up the stage; the next segments have these frames
                if frames == 0:
                    rotation = frame.rotation
                sink.write(frame)
                frames += 1
            sink.close()
        result = SegmentResult(
            index=seg.index,
            frames=frames,
            seconds=time.perf_counter() - started,
            rotation=rotation,
            notices=notices,
            skipped_packets=source.stats.skipped_packets,
        )
        record = {k: v for k, v in asdict(result).items() if k != "reused"}
        write_atomic(_sidecar(path), json.dumps(record).encode())
    return result


def join_segments(
    info: MediaInfo,
    paths: list[Path],
    dst: Path,
    options: RestoreOptions,
    rotation: int,
    notice: Callable[[str], None],
) -> int:
    """Remux the video packets of ``paths`` in order, with the source's other streams, into ``dst``.

    Written under a temporary name and renamed into place. Returns the number of video packets.
    """
    present = list(paths)
    if not present:
        raise MediaError(f"{info.path}: no video frame could be decoded")
    sweep_partials(dst, notice)
    with atomic_output(dst) as tmp:
        with open_input(present[0]) as first:
            template = first.streams.video[0]
            extradata = bytes(template.codec_context.extradata or b"")
            start, end = options.time_range()
            ranged = {"start": start, "end": end} if start is not None or end is not None else {}
            with VideoSink(
                tmp, info, options.encode_options(), notice, video_template=template, rotation=rotation, **ranged
            ) as sink:
                keep_colour(sink, info, template.codec_context.pix_fmt)
                for p in present:
                    with open_input(p) as c:
                        stream = c.streams.video[0]
                        if bytes(stream.codec_context.extradata or b"") != extradata:
                            raise MediaError(
                                f"{p.name} was encoded with other settings than {present[0].name}; "
                                "remove the work folder and run again"
                            )
                        for packet in c.demux(stream):
                            if packet.size == 0:
                                continue
                            if packet.dts is None:
                                packet.dts = packet.pts  # Matroska (ffv1, intra-only): decode order is display order
                            sink.write_packet(packet)
                sink.close()
                packets = sink.frames_written
    return packets


def keep_colour(sink: VideoSink, info: MediaInfo, pix_fmt: str | None) -> None:
    """Tag the joined video (of ``pix_fmt``) with the colour range, matrix, primaries and transfer a single-file
    run gives it: the source's, as the sink's own rule carries them across RGB/YUV.

    The segment files cannot be trusted to carry them: for a range with no matrix (``color_range=tv`` alone) x264
    writes no VUI and the MP4 muxer no ``colr`` box, so the segment's stream says "unspecified".
    """
    stream = sink.video
    if stream is None:
        return
    color = info.video.color
    if pix_fmt:
        color = output_color(color, info.video.pix_fmt, pix_fmt)
    cc = stream.codec_context
    for name, value in (("color_range", color.range), ("color_primaries", color.primaries),
                        ("color_trc", color.trc), ("colorspace", color.space)):
        if value not in (0, 2) or name == "color_range" and value:
            setattr(cc, name, value)


@dataclass
class FileJob:
    """One file's segmented run: its plan, its work folder and the segments still to do."""

    info: MediaInfo
    output: Path
    work: Path
    options: RestoreOptions
    filters: FilterPlan
    segments: list[Segment]
    stage_factory: StageFactory | None = None

    def segment_path(self, segment: Segment) -> Path:
        return self.work / f"seg_{segment.index:05d}{segment_suffix(self.options.codec)}"

    def jobs(self) -> list[SegmentJob]:
        """Jobs for the segments that are not finished yet (all of them on a first run)."""
        return [
            SegmentJob(self.info, s, str(self.segment_path(s)), self.options, self.filters, self.stage_factory)
            for s in self.segments
            if read_finished(self.segment_path(s)) is None
        ]

    def finish(self, notice: Callable[[str], None], keep_work: bool = False) -> tuple[int, list[SegmentResult]]:
        """Join the finished segments into the output; remove the work folder. Returns (frames, results)."""
        results = []
        for s in self.segments:
            r = read_finished(self.segment_path(s))
            if r is None:
                raise VidrestoreError(f"internal: segment {s.index} of {self.info.path.name} is missing")
            results.append(r)
        for message in dict.fromkeys(m for r in results for m in r.notices):
            notice(message)
        frames = sum(r.frames for r in results)
        if frames == 0:
            raise MediaError(f"{self.info.path}: no video frame could be decoded")
        paths = [self.segment_path(s) for s, r in zip(self.segments, results) if r.frames]
        rotation = next((r.rotation for r in results if r.frames), 0)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        join_segments(self.info, paths, self.output, self.options, rotation, notice)
        if not keep_work:
            shutil.rmtree(self.work, ignore_errors=True)
        return frames, results


def prepare_file(
    info: MediaInfo,
    output: Path,
    work: Path,
    options: RestoreOptions,
    filters: FilterPlan,
    segment_seconds: float,
    stage_factory: StageFactory | None = None,
) -> FileJob:
    """Plan the segments of ``info`` (or read the plan a previous run left in ``work``)."""
    work.mkdir(parents=True, exist_ok=True)
    plan_file = work / "plan.json"
    segments: list[Segment] | None = None
    if plan_file.is_file():
        try:
            segments = [Segment(**s) for s in json.loads(plan_file.read_text())["segments"]]
        except (ValueError, TypeError, KeyError):
            segments = None
    if segments is None:
        segments = plan_segments(info, segment_seconds, *range_pts(info, *options.time_range()))
        write_atomic(plan_file, json.dumps({"segments": [asdict(s) for s in segments]}).encode())
    return FileJob(info, output, work, options, filters, segments, stage_factory)


def describe_plan(segments: list[Segment]) -> dict[str, Any]:
    return {"segments": len(segments), "frames": sum(s.frames for s in segments)}
