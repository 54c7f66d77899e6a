"""The still picture record (:class:`Picture`) and the image encoders Pillow lacks: a 16-bit colour PNG with
its ICC, DPI and EXIF chunks, and (multi-page, 8/16-bit) TIFF with each page's own EXIF (Exif/GPS sub-IFDs),
ICC profile and DPI, laid out by hand."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np
from PIL import Image, TiffImagePlugin

from ..errors import OutputError

ORIENTATION = 0x0112
TIFF_EXIF_TAGS = (270, 271, 272, 305, 306, 315, 33432)  # description, make, model, software, date, artist, (c)


@dataclass
class Picture:
    """A photo as restored: pixels upright, and what its file carried besides them."""

    rgb: np.ndarray  # (H, W, 3) uint8 or uint16, display orientation
    alpha: np.ndarray | None = None  # (H, W), same dtype as rgb
    grey: bool = False  # stored with one colour channel
    format: str = "PNG"  # the source's format (Pillow's name)
    exif: bytes | None = None  # orientation already reset to 1
    icc: bytes | None = None
    dpi: tuple[float, float] | None = None
    orientation: int = 1
    pages: int = 1
    truncated: bool = False
    save: dict[str, Any] = field(default_factory=dict)  # format-specific (JPEG qtables/subsampling, TIFF compression)

    @property
    def bits(self) -> int:
        return 16 if self.rgb.dtype == np.uint16 else 8

    def with_pixels(self, rgb: np.ndarray, alpha: np.ndarray | None = None) -> Picture:
        return replace(self, rgb=rgb, alpha=alpha)


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma, rounded, in the array's dtype (R = G = B stays exactly that value)."""
    y = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return np.clip(np.rint(y), 0, np.iinfo(rgb.dtype).max).astype(rgb.dtype)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png16(pic: Picture) -> bytes:
    """A 16-bit colour PNG (OpenCV encodes it; Pillow cannot) with the ICC, DPI and EXIF chunks added."""
    a = pic.rgb[..., ::-1] if pic.alpha is None else np.dstack([pic.rgb[..., ::-1], pic.alpha])
    ok, data = cv2.imencode(".png", np.ascontiguousarray(a))
    if not ok:
        raise OutputError("the 16-bit PNG could not be encoded")
    data = data.tobytes()
    extra = b""
    if pic.icc:
        extra += _png_chunk(b"iCCP", b"ICC\x00\x00" + zlib.compress(pic.icc))
    if pic.dpi:
        extra += _png_chunk(b"pHYs", struct.pack(">IIB", round(pic.dpi[0] / 0.0254), round(pic.dpi[1] / 0.0254), 1))
    if pic.exif:
        extra += _png_chunk(b"eXIf", pic.exif[6:] if pic.exif[:6] == b"Exif\x00\x00" else pic.exif)
    end_ihdr = 8 + 25  # signature, then IHDR (4 length + 4 type + 13 data + 4 crc)
    return data[:end_ihdr] + extra + data[end_ihdr:]


def _tiff_ifd(pic: Picture) -> tuple[TiffImagePlugin.ImageFileDirectory_v2, bytes]:
    """One page's tags and its strips (deflate, horizontal predictor); strip offsets relative to the strips' start."""
    planes = [luma(pic.rgb)[..., None] if pic.grey else pic.rgb]
    if pic.alpha is not None:
        planes.append(pic.alpha.astype(pic.rgb.dtype)[..., None])
    a = np.concatenate(planes, axis=2)
    h, w, spp = a.shape
    diff = a.astype(a.dtype.newbyteorder("<"))
    diff[:, 1:] -= a[:, :-1]  # predictor 2: each sample minus its left neighbour, modulo 2**bits
    rows = max(1, (1 << 18) // (w * spp * a.itemsize))
    strips = [zlib.compress(diff[y:y + rows].tobytes(), 6) for y in range(0, h, rows)]
    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    if pic.exif:
        exif = Image.Exif()
        exif.load(pic.exif)
        for tag, value in exif.items():
            if tag in TIFF_EXIF_TAGS or tag == ORIENTATION:
                ifd[tag] = value
        for sub in (0x8769, 0x8825):  # the Exif and GPS sub-IFDs (date taken, camera settings, position)
            found = {k: v for k, v in exif.get_ifd(sub).items() if k != 0xA005}  # no stale interop offset
            if found:
                ifd[sub] = found
                ifd.tagtype[sub] = 4
    ifd[256], ifd[257], ifd[258] = w, h, (8 * a.itemsize,) * spp
    ifd[259], ifd[262], ifd[277], ifd[278], ifd[284], ifd[317] = 8, 1 if pic.grey else 2, spp, rows, 1, 2
    if pic.alpha is not None:
        ifd[338] = 2  # unassociated alpha
    ifd[273] = tuple(int(x) for x in np.cumsum([0] + [len(s) for s in strips[:-1]]))
    ifd[279] = tuple(len(s) for s in strips)
    ifd.tagtype[273] = ifd.tagtype[279] = 4
    if pic.dpi:
        ifd[282], ifd[283], ifd[296] = float(pic.dpi[0]), float(pic.dpi[1]), 2
    if pic.icc:
        ifd[34675] = pic.icc
    return ifd, b"".join(strips)


def encode_tiff(pages: list[Picture]) -> bytes:
    """A (multi-page) little-endian TIFF of ``pages``, each with its own EXIF, ICC profile and DPI, at 8 or 16 bit."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    link = 4  # where the offset of the next page's IFD goes
    for pic in pages:
        if len(out) % 2:
            out += b"\x00"
        at = len(out)
        out[link:link + 4] = struct.pack("<I", at)
        ifd, strips = _tiff_ifd(pic)
        data = ifd.tobytes(at)
        (count,) = struct.unpack("<H", data[:2])
        link = at + 2 + 12 * count
        out += data + strips
    return bytes(out)
