"""The photo door: ``vidrestore photo.jpg`` and :func:`restore_image`.

A photo goes through the same face stage as a video frame (``pipeline.build_stage``: detector, restorer, parse
masks, strength, upscaling), run as a pure per-image restore: no temporal blending, no smoother look-ahead, a
face confirmed by its one detection. Around the stage, what a photo needs and a video frame does not:

* it is restored upright (EXIF orientation applied) and written back with its EXIF (orientation reset), ICC
  profile, DPI, alpha, and for a JPEG its own quantisation tables (``media.image``);
* a 16-bit scan is restored in 8 bit and the change is added back at 16 bit, so untouched pixels keep all 16;
* a greyscale or toned (sepia) photo keeps its tone: restored faces, which the models colour, are mapped back to
  the photo's luma → colour curve (as CodeFormer turns the output of a grey input back to grey);
* a large scan is searched for faces on a copy whose larger side is ``detect_max_side``; faces are aligned from
  the full-resolution picture, and upscaling runs in tiles;
* ``aligned=True`` takes the picture as an already aligned face (GFPGAN's ``--aligned``): restored directly.

The output is ``<stem>_restored.<ext>`` beside the input (or ``dst``), never the input, written atomically.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, fields, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from .errors import MediaError, OutputError, UsageError
from .media.image import Picture, image_format, read_image, to_8bit, write_image, write_pages
from .media.source import Frame
from .options import RestoreOptions
from .pipeline import RestoreStats, build_stage
from .util import check_destination, write_atomic

__all__ = ["PhotoOptions", "Tone", "apply_tone", "default_image_output", "detect_tone", "restore_image"]

MIN_SIDE = 32  # a picture whose shorter side is below this holds no face a detector can find: copied through


@dataclass(frozen=True)
class PhotoOptions:
    """What only the photo door is told (``restore_image`` keywords; the CLI's photo options)."""

    aligned: bool = False  # the picture is an aligned face (512x512): restore it directly
    save_faces: str | None = None  # folder for the aligned input and restored faces
    quality: int | None = None  # JPEG/WebP quality (default: a JPEG's own tables; 95 otherwise)
    detect_max_side: int | None = 2048  # detect on a copy at most this large (None: the full picture)
    keep_tone: bool = True  # greyscale/sepia photos keep their tone
    pages: str = "first"  # a multi-page TIFF: restore the "first" page only, or "all" (written as a multi-page TIFF)

    def __post_init__(self) -> None:
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise UsageError(f"--quality must be between 1 and 100, got {self.quality}")
        if self.detect_max_side is not None and self.detect_max_side < 64:
            raise UsageError(f"--detect-max-side must be at least 64 pixels, got {self.detect_max_side}")
        if self.pages not in ("first", "all"):
            raise UsageError(f"--pages must be 'first' or 'all', got {self.pages!r}")


# -- tone ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tone:
    """A monochrome photo's colour at each luma level: ``chroma[y]`` is added to grey ``y`` (zeros: grey)."""

    chroma: np.ndarray  # (256, 3) float32
    grey: bool


_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)
GREY = Tone(np.zeros((256, 3), np.float32), True)


def detect_tone(rgb: np.ndarray, spread: float = 6.0) -> Tone | None:
    """The tone of a greyscale or toned (sepia, cyanotype) photo, or None for a colour one.

    Monochrome means the colour is a function of brightness: within each luma band the pixels' offsets from
    grey agree to ``spread`` levels (99th percentile, on a copy at most 256 px large)."""
    h, w = rgb.shape[:2]
    s = min(1.0, 256 / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) if s < 1 else rgb
    px = small.reshape(-1, 3).astype(np.float32)
    y = px @ _WEIGHTS
    c = px - y[:, None]
    bins = np.clip((y / 8).astype(np.int64), 0, 31)
    n = np.bincount(bins, minlength=32).astype(np.float32)
    mean = np.stack([np.bincount(bins, c[:, k], minlength=32) for k in range(3)], 1) / np.maximum(n, 1)[:, None]
    if np.percentile(np.abs(c - mean[bins]).max(1), 99) > spread:
        return None
    used = n > 0
    centres = np.bincount(bins, y, minlength=32)[used] / n[used]
    levels = np.arange(256, dtype=np.float32)
    chroma = np.stack([np.interp(levels, centres, mean[used, k]) for k in range(3)], 1).astype(np.float32)
    grey = float(np.abs(chroma).max()) < 1.0
    return GREY if grey else Tone(chroma, False)


def apply_tone(rgb: np.ndarray, tone: Tone) -> np.ndarray:
    """``rgb`` (uint8) in the photo's tone: each pixel's luma, coloured as the photo colours that luma."""
    y = rgb.astype(np.float32) @ _WEIGHTS
    level = np.clip(np.rint(y), 0, 255).astype(np.int64)
    out = (level if tone.grey else y)[..., None] + tone.chroma[level]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class _PhotoRestorer:
    """The stage's restorer, with restored faces turned to the photo's tone and kept for ``save_faces``."""

    def __init__(self, inner: Any, tone: Tone | None, keep: bool) -> None:
        self.inner = inner
        self.tone = tone
        self.kept: list[tuple[np.ndarray, np.ndarray]] | None = [] if keep else None

    def __getattr__(self, name: str) -> Any:  # device, crop_size, noise_shapes... as the wrapped restorer has them
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def restore(self, faces: np.ndarray, noise: Any = None) -> np.ndarray:
        out = np.asarray(self.inner.restore(faces) if noise is None else self.inner.restore(faces, noise=noise))
        if self.tone is not None and out.dtype == np.uint8 and out.ndim == 4:
            out = np.stack([apply_tone(f, self.tone) for f in out])
        if self.kept is not None:
            self.kept.append((np.array(faces), out.copy()))
        return out


class _NoDetector:
    def detect(self, frames: list[np.ndarray]) -> list[list[Any]]:
        return [[] for _ in frames]


# -- options and paths -------------------------------------------------------------------------------------------------
def default_image_output(src: Path) -> Path:
    return src.with_name(f"{src.stem}_restored{src.suffix}")


def _split(options: RestoreOptions | None, overrides: dict[str, Any]) -> tuple[RestoreOptions, PhotoOptions]:
    photo_keys = {f.name for f in fields(PhotoOptions)}
    photo = PhotoOptions(**{k: overrides.pop(k) for k in list(overrides) if k in photo_keys})
    known = {f.name for f in fields(RestoreOptions)}
    direct = {k: v for k, v in overrides.items() if k in known and (k != "detector" or isinstance(v, (str, os.PathLike)))}
    if "detector" in direct:
        direct["detector"] = os.fspath(direct["detector"])
    extra = {k: v for k, v in overrides.items() if k not in direct}
    options = options or RestoreOptions()
    if direct or extra:
        options = replace(options, **direct, extra={**options.extra, **extra})
    if options.upscale not in (1, 2, 4):
        raise UsageError(f"--upscale must be 1, 2 or 4, got {options.upscale}")
    return options, photo


def check_image_output(src: Path, dst: Path, overwrite: bool, what: str = "output") -> None:
    """Refuse, before any work, an output that is the input, has no image format, or cannot be written."""
    if Path(dst).suffix.lower() in (".mp4", ".mkv", ".mov", ".avi"):
        raise UsageError(f"the {what} of a photo must be an image (.jpg, .png, .tif, .webp, .bmp), not {dst.suffix}")
    image_format(dst)
    check_destination(src, dst, overwrite, what)


# -- the door --------------------------------------------------------------------------------------------------------
def restore_image(
    src: str | os.PathLike,
    dst: str | os.PathLike | None = None,
    *,
    options: RestoreOptions | None = None,
    restorer: Any = None,
    detector: Any = None,
    notice: Callable[[str], None] | None = None,
    **overrides: Any,
) -> RestoreStats:
    """Restore the photo ``src`` into ``dst`` (default ``<stem>_restored.<ext>`` beside it); returns what was done.

    ``restorer=`` / ``detector=`` are objects (``restore(faces)`` / ``detect(frames)``) or, for ``detector``, a
    name or checkpoint path, as for ``restore_video``. Other keywords are ``RestoreOptions`` fields
    (``model=``, ``strength=``, ``upscale=``, ``min_face=``, ``only_center_face=``, ``compare=PATH``...) or
    :class:`PhotoOptions` fields (``aligned=``, ``save_faces=``, ``quality=``, ``detect_max_side=``, ``pages=``).
    """
    if restorer is not None:
        overrides["restorer"] = restorer
    if detector is not None:
        overrides["detector"] = detector
    options, photo = _split(options, dict(overrides))
    src_path = Path(src)
    if not src_path.is_file():
        raise MediaError(f"{src_path}: no such file")
    image_format(src_path)
    dst_path = Path(dst) if dst is not None else default_image_output(src_path)
    check_image_output(src_path, dst_path, options.overwrite)
    compare = Path(options.compare) if options.compare else None
    if compare is not None:
        check_image_output(src_path, compare, options.overwrite, "comparison image")
    stats = RestoreStats(input=src_path, output=dst_path)

    def note(message: str) -> None:
        stats.notices.append(message)
        if notice is not None:
            notice(message)

    started = time.perf_counter()
    pic = read_image(src_path)
    if pic.truncated:
        note(f"warning: {src_path.name} is truncated: everything that decodes was restored (the rest is grey)")
    n = pic.pages if photo.pages == "all" else 1
    if pic.pages > 1 and n == 1:
        note(f"notice: {src_path.name} has {pic.pages} pages; only the first was restored and written, "
             f"{pic.pages - 1} left out (--pages all restores every page)")
    if n > 1 and image_format(dst_path) != "TIFF":
        raise UsageError(f"--pages all writes a multi-page TIFF: use a .tif output, not {dst_path.suffix}")
    h, w = pic.rgb.shape[:2]
    if n == 1 and min(h, w) < MIN_SIDE:
        note(f"notice: {src_path.name} is {w}x{h} px, too small to hold a face: copied through unchanged")
        _copy_through(src_path, dst_path, pic, photo, note)
    else:
        befores, outs = _restore_pages(src_path, pic, n, options, photo, stats, note)
        write_pages(dst_path, outs, quality=photo.quality, notice=note)
        if compare is not None:
            sides = [_side_by_side(b, o) for b, o in zip(befores, outs)]
            if len(sides) > 1 and image_format(compare) != "TIFF":
                note(f"notice: the comparison image {compare.name} shows the first page only (write .tif for all)")
                sides = sides[:1]
            write_pages(compare, sides, quality=photo.quality, notice=note)
    stats.frames = n
    stats.seconds = time.perf_counter() - started
    stats.report.update({"width": w, "height": h, "bits": pic.bits, "orientation": pic.orientation,
                         "format": pic.format, "faces": stats.faces, "pages": n})
    return stats


def _restore_pages(src: Path, first: Picture, n: int, options: RestoreOptions, photo: PhotoOptions,
                   stats: RestoreStats, note: Callable[[str], None]) -> tuple[list[Picture], list[Picture]]:
    """The first ``n`` pages (``first`` is page 0) as read and as restored; several pages share the models loaded
    once, each gets a stage of its own (no track carried from page to page); pages too small for a face are kept."""
    if n == 1:
        return [first], [_restore_picture(first, options, photo, stats, note)]
    from .pipeline.build import build_models

    models = build_models(_stage_options(options, photo))
    ready = {f.name: getattr(models, f.name) for f in fields(models) if f.name != "device"}
    if models.restorer is not None:
        options = replace(options, extra={**options.extra, **{k: v for k, v in ready.items() if v is not None}})
    elif models.upscaler is not None:
        options = replace(options, extra={**options.extra, "upscaler": models.upscaler})
    befores, outs, faces = [], [], 0
    for i in range(n):
        pic = first if i == 0 else read_image(src, i)
        h, w = pic.rgb.shape[:2]
        if min(h, w) < MIN_SIDE:
            note(f"notice: page {i + 1} of {src.name} is {w}x{h} px, too small to hold a face: kept unchanged")
            befores.append(pic)
            outs.append(pic)
            continue
        befores.append(pic)
        outs.append(_restore_picture(pic, options, photo, stats, note, stem=f"{src.stem}_page{i + 1}"))
        faces += stats.faces
    stats.faces = stats.tracks = faces
    return befores, outs


def _copy_through(src: Path, dst: Path, pic: Picture, photo: PhotoOptions, note: Callable[[str], None]) -> None:
    if image_format(dst) == pic.format and pic.orientation == 1:
        write_atomic(dst, src.read_bytes(), fsync=False)
    else:
        write_image(dst, pic, quality=photo.quality, notice=note)


def _stage_options(options: RestoreOptions, photo: PhotoOptions) -> RestoreOptions:
    """The options of a pure per-image restore: no temporal blend, no look-ahead, one detection confirms a face."""
    face = {**options.extra.get("face_options", {}), "causal": True, "min_hits": 1,
            "detect_max_side": photo.detect_max_side}
    extra = {**options.extra, "face_options": face}
    if photo.aligned:
        extra.setdefault("detector", _NoDetector())
    return replace(options, temporal=False, detect_every=1, compare=None, extra=extra,
                   parse=options.parse and not photo.aligned)


def _restore_picture(pic: Picture, options: RestoreOptions, photo: PhotoOptions, stats: RestoreStats,
                     note: Callable[[str], None], stem: str | None = None) -> Picture:
    rgb8 = to_8bit(pic.rgb)
    tone = GREY if pic.grey else detect_tone(rgb8)
    stage = build_stage(_stage_options(options, photo), stats, note)
    wrapper = None
    if hasattr(stage, "restorer"):
        wrapper = _PhotoRestorer(stage.restorer, tone if photo.keep_tone else None, photo.save_faces is not None)
        stage.restorer = wrapper
    if photo.aligned:
        if wrapper is None:
            raise UsageError("--aligned needs a face restorer (not --model none)")
        out8 = _restore_aligned(rgb8, stage, options.strength, note)
        stats.faces = 1
    else:
        frame = Frame(index=0, pts=0, time_base=Fraction(1, 1), duration=1, rgb=rgb8)
        done = list(stage([frame]))[0]
        out8 = done.rgb
        stats.faces = len(done.meta.get("faces", []))
    stats.tracks = stats.faces
    report = getattr(stage, "report", None)
    if report is not None:
        stats.report = report.as_dict()
    if wrapper is not None and wrapper.kept is not None:
        _save_faces(Path(photo.save_faces), stem or stats.input.stem, wrapper.kept, stats.faces)
    return _merge(pic, rgb8, out8)


def _restore_aligned(rgb8: np.ndarray, stage: Any, strength: float, note: Callable[[str], None]) -> np.ndarray:
    """An aligned face restored directly (no detection, no paste), at the input's size times the upscale."""
    h, w = rgb8.shape[:2]
    crop = rgb8
    size = int(getattr(stage.restorer, "crop_size", 512) or 512)
    if (h, w) != (size, size):
        note(f"notice: an aligned face should be {size}x{size}; this {w}x{h} picture was resized for the restorer")
        crop = cv2.resize(rgb8, (size, size), interpolation=cv2.INTER_LINEAR)
    noise = None
    if hasattr(stage.restorer, "noise_shapes"):
        from .faces.temporal import TrackNoise

        noise = TrackNoise(base_seed=stage.options.seed, device=stage.device).for_tracks([0])
    out = np.asarray(stage.restorer.restore(crop[None], noise=noise))[0]
    if strength < 1.0:
        out = np.clip(np.rint(crop + strength * (out.astype(np.float32) - crop)), 0, 255).astype(np.uint8)
    if (h, w) != (size, size):
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA if size > max(h, w) else cv2.INTER_CUBIC)
    if stage.upscaler is not None:
        out = stage.upscaler.upscale(out)
    return out


def _merge(pic: Picture, rgb8: np.ndarray, out8: np.ndarray) -> Picture:
    """The restored picture at the source's bit depth (a 16-bit one gets the 8-bit change added back), alpha
    resized with it."""
    oh, ow = out8.shape[:2]
    resized = (oh, ow) != rgb8.shape[:2]
    alpha = pic.alpha
    if alpha is not None and resized:
        alpha = cv2.resize(alpha, (ow, oh), interpolation=cv2.INTER_CUBIC)
    if pic.bits == 8:
        return pic.with_pixels(out8, alpha)
    base16, base8 = pic.rgb, rgb8
    if resized:
        base16 = cv2.resize(pic.rgb, (ow, oh), interpolation=cv2.INTER_CUBIC)
        base8 = cv2.resize(rgb8, (ow, oh), interpolation=cv2.INTER_CUBIC)
    change = (out8.astype(np.int32) - base8.astype(np.int32)) * 257
    return pic.with_pixels(np.clip(base16.astype(np.int32) + change, 0, 65535).astype(np.uint16), alpha)


def _side_by_side(before: Picture, after: Picture) -> Picture:
    b = before.rgb
    if b.shape != after.rgb.shape:
        b = cv2.resize(b, (after.rgb.shape[1], after.rgb.shape[0]), interpolation=cv2.INTER_LANCZOS4)
    return after.with_pixels(np.hstack([b, after.rgb]), None)


def _save_faces(folder: Path, stem: str, kept: list[tuple[np.ndarray, np.ndarray]], n: int) -> None:
    """``<stem>_face00_crop.png`` (the aligned input) and ``<stem>_face00_restored.png`` per face (GFPGAN's
    cropped_faces / restored_faces). Padding the restorer's micro-batches adds copies only after the faces."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {folder}: {exc.strerror or exc}") from None
    crops = np.concatenate([k[0] for k in kept])[:n] if kept else []
    outs = np.concatenate([k[1] for k in kept])[:n] if kept else []
    for i, (crop, out) in enumerate(zip(crops, outs)):
        for kind, face in (("crop", crop), ("restored", out)):
            write_image(folder / f"{stem}_face{i:02d}_{kind}.png", Picture(rgb=np.ascontiguousarray(face)))
