"""The live door, ``vidrestore live``: restore a camera, a file or a network stream while it plays.

Rooms, in data-flow order: :mod:`.source` (capture and pacing) → :mod:`.mailbox` (newest-item hand-offs) →
:mod:`.preview` (the detector and restorer threads; :class:`LivePreview`) → :mod:`.overlay` (faces warped back,
split view, HUD) → the outputs: :mod:`.window` (OpenCV), :mod:`.server` (MJPEG over HTTP), :mod:`.recorder`
(on :class:`~vidrestore.media.sink.VideoSink`). :mod:`.session` (:func:`run_live`) ties them together;
:mod:`.options` holds :class:`LiveOptions`. The command line is :mod:`vidrestore.cli.live`.
"""

from __future__ import annotations

from .mailbox import Mailbox
from .options import LiveOptions
from .overlay import box_mask, draw_hud, hud_lines, reproject, split_view
from .preview import LivePreview, PreviewOptions, PreviewStats
from .recorder import LiveRecorder
from .session import LiveStats, load_models, run_live
from .source import LIVE_TIME_BASE, LiveSource, SourceLost, SourceSpec, parse_source

__all__ = [
    "LIVE_TIME_BASE",
    "LiveOptions",
    "LivePreview",
    "LiveRecorder",
    "LiveSource",
    "LiveStats",
    "Mailbox",
    "PreviewOptions",
    "PreviewStats",
    "SourceLost",
    "SourceSpec",
    "box_mask",
    "draw_hud",
    "hud_lines",
    "load_models",
    "parse_source",
    "reproject",
    "run_live",
    "split_view",
]
