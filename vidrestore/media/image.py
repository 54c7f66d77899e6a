"""Still images with Pillow: read what a photo carries, write the restored picture back with all of it.

Read (:func:`read_image`): the pixels in display orientation (EXIF orientation applied), as RGB uint8 or uint16
(16-bit colour PNG/TIFF through OpenCV, which Pillow reads only at 8 bit), alpha apart, whether the file is
single-channel (greyscale), and what must be written back: EXIF (its orientation tag reset to 1, as the pixels
are now upright, so no viewer rotates them twice), the ICC profile, the DPI, a JPEG's quantisation tables and
chroma subsampling (the output's quality matches the source's), a TIFF's compression. A truncated JPEG decodes
as far as its data goes (the rest grey) and says so.

Write (:func:`write_image`): atomically (a temporary file beside the destination, renamed when complete), in
the format of the destination's extension. What a format cannot hold (alpha in JPEG, 16 bit in JPEG/WebP) is
dropped with a notice, never silently. Pillow writes no 16-bit colour TIFF and no per-page metadata in a multi-page
one: those TIFFs are laid out by :mod:`.encoders` (:func:`encode_tiff`), each page's tags (EXIF with its Exif/GPS sub-IFDs, ICC,
DPI) serialised by Pillow's own IFD writer, pixels deflate-compressed with the horizontal predictor (lossless; an
LZW source comes back deflate-compressed).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from ..errors import MediaError, OutputError
from ..util import write_atomic
from .encoders import ORIENTATION, TIFF_EXIF_TAGS, Picture, encode_tiff, luma, png16

__all__ = ["IMAGE_FORMATS", "Picture", "encode_tiff", "image_format", "is_image_path", "orient", "read_image",
           "reset_orientation", "to_8bit", "write_image", "write_pages"]

#: Extension → Pillow format name of the still images vidrestore restores.
IMAGE_FORMATS = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP",
    ".bmp": "BMP", ".heic": "HEIF", ".heif": "HEIF",
}
_TIFF_COMPRESSIONS = ("raw", "tiff_lzw", "tiff_deflate", "tiff_adobe_deflate", "packbits")

Notice = Callable[[str], None]


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_FORMATS


def image_format(path: str | Path) -> str:
    """The format a path's extension names; one-line ``MediaError`` for any other."""
    fmt = IMAGE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        known = ", ".join(sorted({e[1:] for e in IMAGE_FORMATS}))
        raise MediaError(f"{path}: unsupported image format {Path(path).suffix or '(no extension)'}; use one of {known}")
    return fmt


def _register_heif() -> None:
    try:
        import pillow_heif
    except ImportError:
        raise MediaError("HEIC images need pillow-heif: pip install 'vidrestore[heif]'") from None
    pillow_heif.register_heif_opener()


# -- orientation and EXIF ---------------------------------------------------------------------------------------------
def orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixels turned upright as EXIF ``orientation`` (1-8) says (Pillow's ``exif_transpose``)."""
    ops = {
        2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
        5: lambda x: x.swapaxes(0, 1), 6: lambda x: np.rot90(x, -1), 7: lambda x: np.rot90(x, 2).swapaxes(0, 1),
        8: lambda x: np.rot90(x, 1),
    }
    op = ops.get(int(orientation))
    return a if op is None else np.ascontiguousarray(op(a))


def reset_orientation(exif: bytes) -> bytes:
    """Raw EXIF bytes (with or without the ``Exif\\0\\0`` header) with IFD0's orientation set to 1; every other
    byte kept (dates, camera, GPS, maker notes). Unparseable data is returned unchanged."""
    head = 6 if exif[:6] == b"Exif\x00\x00" else 0
    tiff = exif[head:]
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return exif
    (ifd,) = struct.unpack(order + "I", tiff[4:8])
    if ifd + 2 > len(tiff):
        return exif
    (count,) = struct.unpack(order + "H", tiff[ifd:ifd + 2])
    out = bytearray(exif)
    for k in range(count):
        at = ifd + 2 + 12 * k
        if at + 12 > len(tiff):
            break
        tag, kind = struct.unpack(order + "HH", tiff[at:at + 4])
        if tag == ORIENTATION and kind == 3:  # SHORT, value in the entry's first two bytes
            out[head + at + 8:head + at + 10] = struct.pack(order + "H", 1)
    return bytes(out)


def _exif_of(im: Image.Image) -> bytes | None:
    raw = im.info.get("exif")
    if raw:
        return reset_orientation(raw)
    if im.format != "TIFF":
        return None
    src = im.getexif()  # a TIFF's own tags: keep the descriptive ones and the Exif/GPS sub-IFDs
    keep = Image.Exif()
    for tag in TIFF_EXIF_TAGS:
        if tag in src:
            keep[tag] = src[tag]
    if ORIENTATION in src:
        keep[ORIENTATION] = 1
    for sub in (0x8769, 0x8825):
        found = src.get_ifd(sub)
        if found:
            keep.get_ifd(sub).update(found)
    return keep.tobytes() if len(keep) or keep.get_ifd(0x8769) or keep.get_ifd(0x8825) else None


# -- reading ----------------------------------------------------------------------------------------------------------
def _open(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        unidentified = True  # raised outside the handler: the file's fault, not an OSError of the machine
    except FileNotFoundError:
        raise MediaError(f"{path}: no such file") from None
    except OSError as exc:
        raise MediaError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    assert unidentified
    with open(path, "rb") as f:
        head = f.read(512)
    what = "it holds text" if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "unknown content"
    raise MediaError(f"{path}: not an image ({what}); the file was left as it is")


def _is_16bit_colour(im: Image.Image, path: Path) -> bool:
    if im.format == "PNG":
        with open(path, "rb") as f:
            ihdr = f.read(26)
        return len(ihdr) == 26 and ihdr[24] == 16 and ihdr[25] in (2, 6)  # bit depth 16, RGB / RGBA
    if im.format == "TIFF":
        bits = im.tag_v2.get(258)
        bits = bits if isinstance(bits, tuple) else (bits,)
        return len(bits) >= 3 and max(bits) == 16
    return False


def _cv2_16bit(path: Path, page: int) -> tuple[np.ndarray, np.ndarray | None]:
    ok, pages = cv2.imreadmulti(str(path), flags=cv2.IMREAD_UNCHANGED)
    if not ok or page >= len(pages):
        raise MediaError(f"{path}: the 16-bit picture cannot be decoded")
    a = pages[page]
    rgb = np.ascontiguousarray(a[..., 2::-1])
    return rgb, (np.ascontiguousarray(a[..., 3]) if a.shape[2] == 4 else None)


def _pil_pixels(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(rgb, alpha, grey) of a loaded Pillow image in any mode."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(im).astype(np.int64)
        grey = np.clip(grey, 0, 65535).astype(np.uint16)
        return np.repeat(grey[..., None], 3, axis=2), None, True
    if mode in ("L", "LA", "1") or (mode in ("P", "PA") and _palette_grey(im)):
        la = np.asarray(im.convert("LA"))
        alpha = la[..., 1].copy() if ("A" in mode or "transparency" in im.info) else None
        return np.repeat(la[..., :1], 3, axis=2), alpha, True
    has_alpha = "A" in mode or "transparency" in im.info
    arr = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    if has_alpha:
        return np.ascontiguousarray(arr[..., :3]), arr[..., 3].copy(), False
    return arr.copy(), None, False


def _palette_grey(im: Image.Image) -> bool:
    pal = np.asarray(im.convert("RGB"))
    return bool((pal[..., 0] == pal[..., 1]).all() and (pal[..., 1] == pal[..., 2]).all())


def _load(im: Image.Image, path: Path) -> tuple[Image.Image, bool]:
    """The image loaded; a truncated JPEG is decoded as far as its data goes (an end marker appended)."""
    error = None
    try:
        im.load()
        return im, False
    except OSError as exc:
        error = str(exc)
    if im.format != "JPEG" or "truncated" not in error:  # the file's fault: raised outside the OSError handler
        raise MediaError(f"{path}: cannot be decoded ({error}); the file was left as it is")
    fixed = Image.open(io.BytesIO(path.read_bytes() + b"\xff\xd9"))
    fixed.load()
    return fixed, True


def _page_info(im: Image.Image) -> tuple[bytes | None, Any]:
    """(ICC profile, DPI) of the current page; a TIFF's from its own tags (Pillow's ``info`` keeps earlier pages')."""
    if im.format != "TIFF":
        return im.info.get("icc_profile") or None, im.info.get("dpi")
    tags = im.tag_v2
    icc = tags.get(34675)
    x, y, unit = tags.get(282), tags.get(283), tags.get(296, 2)
    dpi = None
    if x and y and unit in (2, 3):
        scale = 2.54 if unit == 3 else 1.0
        dpi = (float(x) * scale, float(y) * scale)
    return (bytes(icc) if icc else None), dpi


def read_image(path: str | Path, page: int = 0) -> Picture:
    """The photo at ``path`` (page ``page`` of a multi-page TIFF), upright, with what its file carries."""
    path = Path(path)
    if image_format(path) == "HEIF":
        _register_heif()
    with _open(path) as im:
        pages = int(getattr(im, "n_frames", 1) or 1)
        if page:
            im.seek(page)
        orientation = int(im.getexif().get(ORIENTATION, 1) or 1)
        wide = _is_16bit_colour(im, path)
        loaded, truncated = _load(im, path) if not wide else (im, False)
        if wide:
            rgb, alpha = _cv2_16bit(path, page)
            grey = False
        else:
            rgb, alpha, grey = _pil_pixels(loaded)
        save: dict[str, Any] = {}
        if im.format == "JPEG":
            save = {"qtables": im.quantization, "subsampling": JpegImagePlugin.get_sampling(im)}
        elif im.format == "TIFF":
            comp = im.info.get("compression", "raw")
            save = {"compression": comp if comp in _TIFF_COMPRESSIONS else "tiff_lzw"}
        icc, dpi = _page_info(im)
        return Picture(
            rgb=orient(rgb, orientation), alpha=None if alpha is None else orient(alpha, orientation), grey=grey,
            format=im.format or "PNG", exif=_exif_of(im), icc=icc,
            dpi=(float(dpi[0]), float(dpi[1])) if dpi else None, orientation=orientation, pages=pages,
            truncated=truncated, save=save,
        )


def to_8bit(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)


# -- writing ----------------------------------------------------------------------------------------------------------
def _pil_image(pic: Picture) -> Image.Image:
    if pic.grey and pic.bits == 16:
        return Image.fromarray(luma(pic.rgb))
    if pic.grey:
        y = luma(pic.rgb)
        return Image.fromarray(y) if pic.alpha is None else Image.fromarray(np.dstack([y, pic.alpha]))
    if pic.alpha is None:
        return Image.fromarray(pic.rgb)
    return Image.fromarray(np.dstack([pic.rgb, pic.alpha]))


def _save_options(pic: Picture, fmt: str, quality: int | None) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if pic.exif:
        opts["exif"] = pic.exif
    if pic.icc:
        opts["icc_profile"] = pic.icc
    if pic.dpi and fmt in ("JPEG", "PNG", "TIFF", "BMP", "WEBP"):
        opts["dpi"] = pic.dpi
    if fmt == "JPEG":
        if quality is not None:
            opts["quality"] = quality
        elif pic.format == "JPEG" and pic.save.get("qtables"):
            opts["qtables"] = pic.save["qtables"]
            if pic.save.get("subsampling", -1) != -1:
                opts["subsampling"] = pic.save["subsampling"]
        else:
            opts["quality"] = 95
    elif fmt in ("WEBP", "HEIF"):
        opts["quality"] = quality if quality is not None else 95
    elif fmt == "TIFF":
        opts["compression"] = pic.save.get("compression", "tiff_lzw")
    return opts


def encode_image(pic: Picture, fmt: str, quality: int | None = None, notice: Notice = lambda _m: None) -> bytes:
    """The file bytes of ``pic`` in ``fmt``; what the format cannot hold is dropped with a notice."""
    if pic.alpha is not None and fmt == "JPEG":
        notice("notice: JPEG has no transparency: the alpha channel is not kept (write .png to keep it)")
        pic = pic.with_pixels(pic.rgb, None)
    if pic.bits == 16 and fmt not in ("PNG", "TIFF"):
        notice(f"notice: {fmt} holds 8 bits per channel: the 16-bit picture is written at 8 bit")
        pic = pic.with_pixels(to_8bit(pic.rgb), None if pic.alpha is None else to_8bit(pic.alpha))
    if pic.bits == 16 and not pic.grey:
        return png16(pic) if fmt == "PNG" else encode_tiff([pic])
    if pic.bits == 16 and pic.alpha is not None:
        if fmt == "TIFF":
            return encode_tiff([pic])
        notice("notice: a 16-bit greyscale picture's alpha channel is not kept")
    if fmt == "HEIF":
        _register_heif()
    buf = io.BytesIO()
    try:
        _pil_image(pic).save(buf, format=fmt, **_save_options(pic, fmt, quality))
    except (OSError, ValueError) as exc:
        raise OutputError(f"the {fmt} image could not be encoded: {exc}") from None
    return buf.getvalue()


def write_image(path: str | Path, pic: Picture, *, quality: int | None = None, notice: Notice = lambda _m: None) -> None:
    """Write ``pic`` to ``path`` atomically, in the format its extension names."""
    path = Path(path)
    data = encode_image(pic, image_format(path), quality, notice)
    try:
        write_atomic(path, data, fsync=False)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_pages(path: str | Path, pages: list[Picture], *, quality: int | None = None,
                notice: Notice = lambda _m: None) -> None:
    """Write ``pages`` to ``path`` atomically: one picture in any format, several only as a multi-page TIFF."""
    path = Path(path)
    if len(pages) == 1:
        return write_image(path, pages[0], quality=quality, notice=notice)
    if image_format(path) != "TIFF":
        raise OutputError(f"{path}: only a TIFF holds several pages; write .tif")
    try:
        write_atomic(path, encode_tiff(pages), fsync=False)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
