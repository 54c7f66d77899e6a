"""The encoder's pixel format and colour tags for an output, and the picture handed to the encoder.

A decoded picture is kept as it is where it can be (no loss at all), or converted straight to the output's
format with accurate chroma; a changed frame is blended into its decoded picture so that only the samples the
change reaches are re-made from RGB.
"""

from __future__ import annotations

from dataclasses import replace

import av
import numpy as np
from av.video.reformatter import Interpolation

from .probe import ColorInfo
from .source import SWS_FLAGS, sws_colorspace

CODECS = {"h264": "libx264", "h265": "libx265", "ffv1": "ffv1", "h264_nvenc": "h264_nvenc"}


def codec_formats(codec: str) -> tuple[str, ...]:
    """The pixel formats the encoder behind ``codec`` (h264/h265/ffv1) takes, as FFmpeg lists them."""
    formats = av.codec.Codec(CODECS[codec], "w").video_formats or ()
    return tuple(f.name for f in formats if f.components)  # hardware surfaces (NVENC's "cuda") aside


def _shape(name: str) -> tuple[bool, bool, bool, int, int, int]:
    """(rgb, gray, alpha, depth, chroma width, chroma height) of a pixel format, chroma size on a 12x12 picture."""
    fmt = av.VideoFormat(name, 12, 12)
    comps = fmt.components
    gray = len(comps) - (1 if any(c.is_alpha for c in comps) else 0) == 1
    alpha = any(c.is_alpha for c in comps)
    chroma = next((c for c in comps if c.is_chroma), comps[0])
    return fmt.is_rgb, gray, alpha, max(c.bits for c in comps), chroma.width, chroma.height


def output_pix_fmt(codec: str, source: str | None, width: int, height: int, override: str | None = None) -> str:
    """The pixel format to encode in: ``override``, else the source's own where the encoder takes it (and the
    picture size allows its chroma subsampling), else the nearest one it takes — never less chroma resolution
    or bit depth when the encoder has more (4:1:1 → 4:2:2, gbrp → 4:4:4 for libx264), then the least extra."""
    if override:
        return override
    allowed = codec_formats(codec)
    source = source or "yuv420p"
    try:
        rgb, gray, alpha, depth, cw, ch = _shape(source)
    except (ValueError, av.FFmpegError):
        rgb, gray, alpha, depth, cw, ch = _shape("yuv420p")

    def fits(name: str) -> bool:
        _r, _g, _a, _d, w, h = _shape(name)
        return (width % 2 == 0 or w == 12) and (height % 2 == 0 or h == 12)

    if source in allowed and fits(source):
        return source

    def cost(name: str):
        r, g, a, d, w, h = _shape(name)
        planar = av.VideoFormat(name).is_planar
        return (
            not fits(name),
            (w < cw) + (h < ch) if not gray else 0,  # chroma resolution lost
            max(0, depth - d),  # bit depth lost
            g != gray,
            r != rgb,
            a and not alpha,
            max(0, d - depth),
            not planar or name.startswith(("nv", "p0", "p2")),
            name.startswith("yuvj"),
            (w > cw) + (h > ch),
            name,
        )

    return min(allowed, key=cost)


# Format-to-format conversion of a decoded picture (4:1:1 → 4:2:2, gbrp → 4:4:4, ...): bicubic chroma,
# accurately rounded; no RGB in between.
CHROMA_FLAGS = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP


def depth(name: str) -> int:
    return max(c.bits for c in av.VideoFormat(name).components)


def _sample_type(vf: av.VideoFrame):
    return np.uint16 if depth(vf.format.name) > 8 else np.uint8


def _plane_view(plane, dtype, channels: int = 1) -> np.ndarray:
    """A writable (height, width × channels) view of a plane's samples, row padding cut off."""
    itemsize = np.dtype(dtype).itemsize
    rows = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // itemsize)
    return rows[:, : plane.width * channels]


def _plane_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Which samples of a plane of ``shape`` a change at the pixels in ``mask`` can reach: the pixel itself on
    full-size planes; on subsampled chroma planes every sample whose footprint, widened by the resampling
    filter's reach (2 pixels), holds a changed pixel."""
    h, w = mask.shape
    if shape == (h, w):
        return mask
    grown = mask.copy()
    for _ in range(2):
        g = grown.copy()
        g[1:] |= grown[:-1]
        g[:-1] |= grown[1:]
        g[:, 1:] |= grown[:, :-1]
        g[:, :-1] |= grown[:, 1:]
        grown = g
    sy, sx = -(-h // shape[0]), -(-w // shape[1])
    pad = np.zeros((shape[0] * sy, shape[1] * sx), bool)
    pad[:h, :w] = grown
    return pad.reshape(shape[0], sy, shape[1], sx).any(axis=(1, 3))


def output_color(color: ColorInfo, source_fmt: str | None, out_fmt: str) -> ColorInfo:
    """The colour tags of the output: the source's, except across RGB ↔ YUV. An RGB output is tagged RGB (the
    'gbr' matrix, AVCOL_SPC_RGB); a YUV output of an RGB source is converted with, and tagged, BT.709 in video
    (tv) range — the matrix of HD video, chosen over BT.601 because nothing in an RGB file says SD."""
    out_rgb = av.VideoFormat(out_fmt).is_rgb
    src_rgb = bool(source_fmt) and av.VideoFormat(source_fmt).is_rgb
    if out_rgb:
        return replace(color, space=0)
    if src_rgb or color.space == 0:
        return replace(color, space=1, range=1)
    return color


def from_source(src: av.VideoFrame, out_fmt: str, src_color: ColorInfo, out_color: ColorInfo) -> av.VideoFrame:
    """A decoded picture in the output format: itself when it is in it already, else converted with accurate
    chroma (no RGB in between)."""
    if src.format.name == out_fmt:
        return src
    return src.reformat(
        format=out_fmt,
        src_colorspace=sws_colorspace(src_color.space),
        dst_colorspace=sws_colorspace(out_color.space),
        src_color_range=src.color_range or src_color.range or None,
        dst_color_range=out_color.range or None,
        interpolation=CHROMA_FLAGS,
    )


def from_rgb(vf: av.VideoFrame, out_fmt: str, out_color: ColorInfo) -> av.VideoFrame:
    """An RGB picture (rgb24 or rgb48le, full range) in the output format with the output's matrix."""
    return vf.reformat(
        format=out_fmt,
        dst_colorspace=sws_colorspace(out_color.space),
        src_color_range=2,
        dst_color_range=out_color.range or 1,
        interpolation=SWS_FLAGS,
    )


def blend(src: av.VideoFrame, orig: np.ndarray, new: np.ndarray, out_fmt: str, src_color: ColorInfo,
          out_color: ColorInfo) -> av.VideoFrame:
    """The decoded picture ``src`` with the change from ``orig`` to ``new`` (RGB uint8) applied, in ``out_fmt``:
    only the samples the change reaches are made from RGB; the others stay the decoded picture's, exactly."""
    height, width = new.shape[:2]
    deep = depth(src.format.name) > 8
    # an RGB picture made from the source frame itself, so it carries the source's flags (field order)
    carrier = src.reformat(
        format="rgb48le" if deep else "rgb24",
        src_colorspace=sws_colorspace(src_color.space),
        src_color_range=src.color_range or src_color.range or None,
        dst_color_range=2,
        interpolation=SWS_FLAGS,
    )
    mask = np.any(new != orig, axis=2)
    pixels = _plane_view(carrier.planes[0], np.uint16 if deep else np.uint8, 3).reshape(height, width, 3)
    if deep:
        delta = (new.astype(np.int32) - orig.astype(np.int32)) * 257
        blended = np.clip(pixels.astype(np.int32) + delta, 0, 65535).astype(np.uint16)
        pixels[mask] = blended[mask]
    else:
        pixels[:] = new
    changed = from_rgb(carrier, out_fmt, out_color)
    base = from_source(src, out_fmt, src_color, out_color)
    dtype = _sample_type(changed)
    # packed RGB (bgr0, rgb48le…): one plane with every channel of a pixel side by side
    channels = 1 if changed.format.is_planar else changed.format.padded_bits_per_pixel // (8 * np.dtype(dtype).itemsize)
    for plane_out, plane_base in zip(changed.planes, base.planes):
        out_view = _plane_view(plane_out, dtype, channels)
        base_view = _plane_view(plane_base, dtype, channels)
        if channels == 1:
            keep = ~_plane_mask(mask, out_view.shape)
        else:
            keep = ~np.repeat(mask, channels, axis=1)
        out_view[keep] = base_view[keep]
    return changed
