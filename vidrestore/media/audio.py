"""Audio conversion rules for the streams an output container cannot take as they are: which codec, which
rate and layout, and cutting a decoded frame to the sample."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np

# Codecs whose decoded samples are the whole signal: converted to PCM (bit-exact samples) where the output
# container takes PCM, rather than to a lossy AAC.
LOSSLESS_AUDIO = ("pcm_", "adpcm_", "flac", "alac", "wavpack", "tta", "truehd", "mlp")


_PCM_FOR = {"u8": "pcm_u8", "s16": "pcm_s16le", "s32": "pcm_s32le", "flt": "pcm_f32le", "dbl": "pcm_f64le",
            "s64": "pcm_s64le"}


# FFmpeg's default layout per channel count (av_channel_layout_default), for PCM that states none (DV in AVI).
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def audio_layout(cc) -> str:
    """The stream's channel layout, or FFmpeg's default for its channel count where it states none."""
    layout = cc.layout
    name = layout.name if layout is not None else ""
    if name and not name.endswith("channels"):  # "2 channels": a count with no order (DV/AVI PCM)
        return name
    count = layout.nb_channels if layout is not None else 0
    return _DEFAULT_LAYOUTS.get(count or 2, name)


def can_encode(codec: str) -> bool:
    try:
        av.Codec(codec, "w")
        return True
    except (av.FFmpegError, ValueError):
        return False


def trim(af: av.AudioFrame, a: int, b: int) -> av.AudioFrame:
    """Samples ``[a, b)`` of ``af`` as a new frame (same format and layout)."""
    arr = af.to_ndarray()
    if af.format.is_planar:
        arr = arr[:, a:b]
    else:
        ch = af.layout.nb_channels
        arr = arr[:, a * ch : b * ch]
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=af.format.name, layout=af.layout)
    out.sample_rate = af.sample_rate
    return out


def ceil(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


def audio_target(stream: Any, fmt: str, supported: set[str]) -> str:
    """What an audio stream the container refuses becomes: PCM for lossless sources where the container holds
    PCM (MOV, Matroska), else AAC (MP4, and lossy sources everywhere)."""
    cc = stream.codec_context
    if fmt != "mp4" and cc.name.startswith(LOSSLESS_AUDIO):
        base = cc.format.name.rstrip("p") if cc.format is not None else "s16"
        pcm = _PCM_FOR.get(base, "pcm_s16le")
        if pcm in supported:
            return pcm
    return "aac"


def encoder_settings(stream: Any, codec: str) -> tuple[int, str] | None:
    """The (rate, layout) ``codec`` encodes the decoded audio of ``stream`` in, or None if its encoder takes none
    of: the source's rate and layout, 48 kHz with that layout, 48 kHz stereo."""
    cc = stream.codec_context
    layout = audio_layout(cc)
    rate = cc.sample_rate or 48000
    for r, lay in dict.fromkeys(((rate, layout), (48000, layout), (48000, "stereo"))):
        try:  # try the encoder on its own first: a stream added to the output cannot be taken back
            probe_cc = av.CodecContext.create(codec, "w")
            probe_cc.sample_rate, probe_cc.layout = r, lay
            probe_cc.format = probe_cc.codec.audio_formats[0]
            probe_cc.time_base = Fraction(1, r)
            probe_cc.open()
        except (av.FFmpegError, ValueError, TypeError):
            continue
        return r, lay
    return None
