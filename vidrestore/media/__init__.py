"""Media I/O: probing, streaming decode (source), encode + mux with stream copy (sink)."""

from .probe import ColorInfo, MediaInfo, StreamInfo, VideoInfo, probe
from .source import Frame, VideoSource
from .sink import EncodeOptions, VideoSink

__all__ = [
    "ColorInfo",
    "EncodeOptions",
    "Frame",
    "MediaInfo",
    "StreamInfo",
    "VideoInfo",
    "VideoSink",
    "VideoSource",
    "probe",
]
