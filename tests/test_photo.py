"""The photo door on photos made here with Pillow from skimage's astronaut, with real detections.

A marker restorer paints a magenta dot at the FFHQ template's nose of each aligned face, so where the dot lands
in the output is where the face was pasted; the trained RetinaFace (../shared/reference/real/) finds the faces.
Each test checks what the photo's file carried is kept (EXIF, ICC, DPI, 16 bit, tone, alpha, JPEG tables).
"""

from __future__ import annotations

import io
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

import vidrestore
from vidrestore.errors import MediaError, OutputError, UsageError
from vidrestore.faces.align import FFHQ_TEMPLATE_512, align_face, estimate_affine, invert_affine
from vidrestore.media.image import orient, read_image
from vidrestore.photo import apply_tone, detect_tone, restore_image
from vidrestore.testing import IdentityRestorer, MarkerRestorer

NOSE = np.array(FFHQ_TEMPLATE_512[2], dtype=np.float64)


@pytest.fixture(scope="module")
def detector(shared_ref):
    from vidrestore.faces.detect import load_detector

    # torch: an OpenVINO cache has no place in the read-only shared/ folder
    return load_detector(shared_ref / "real" / "retinaface_mobilenet0.25_trained.pth", backend="torch")


def marks(img: np.ndarray) -> np.ndarray:
    """Magenta pixels of an RGB image (the marker restorer's dot)."""
    a = img.astype(np.int32)
    return (a[..., 0] > 180) & (a[..., 2] > 180) & (a[..., 1] < 90)


def mark_centre(img: np.ndarray, near: np.ndarray, radius: int = 40) -> np.ndarray:
    x0, y0 = max(int(near[0]) - radius, 0), max(int(near[1]) - radius, 0)
    m = marks(img[y0:y0 + 2 * radius, x0:x0 + 2 * radius])
    assert m.sum() > 20, f"no marker near {near}"
    ys, xs = np.nonzero(m)
    return np.array([xs.mean() + x0, ys.mean() + y0])


def nose_of(landmarks: np.ndarray) -> np.ndarray:
    return invert_affine(estimate_affine(landmarks)) @ np.r_[NOSE, 1.0]


def restore(src, dst, detector, **kw):
    kw.setdefault("parse", False)
    kw.setdefault("restorer", MarkerRestorer())
    return restore_image(src, dst, detector=detector, **kw)


def exif_with(orientation: int) -> bytes:
    ex = Image.Exif()
    ex[0x0112] = orientation
    ex[0x010F] = "Kodak"
    ex[0x0110] = "Brownie"
    ex.get_ifd(0x8769)[0x9003] = "1962:07:14 10:30:00"
    ex.get_ifd(0x8825)[1] = "N"
    return ex.tobytes()


def test_exif_orientation_applied_for_detection_and_reset_on_write(tmp_path, astronaut, true_landmarks, detector):
    src = tmp_path / "sideways.jpg"
    stored = np.rot90(astronaut[:, 64:448], 1)  # orientation 6: the viewer turns it 90° clockwise to show it
    Image.fromarray(np.ascontiguousarray(stored)).save(src, quality=82, exif=exif_with(6), dpi=(300, 300))
    before = src.read_bytes()
    stats = restore(src, None, detector)
    out = tmp_path / "sideways_restored.jpg"
    assert stats.output == out and out.is_file() and src.read_bytes() == before
    assert stats.faces == 1 and stats.report["orientation"] == 6
    with Image.open(out) as im:
        ex = im.getexif()
        assert ex[0x0112] == 1  # pixels are upright now: no viewer may turn them again
        assert ex[0x010F] == "Kodak" and ex.get_ifd(0x8769)[0x9003] == "1962:07:14 10:30:00"
        assert ex.get_ifd(0x8825)[1] == "N"
        assert im.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        with Image.open(src) as orig:
            assert im.quantization == orig.quantization  # the source's JPEG quality
        pixels = np.asarray(im)
    assert pixels.shape == (512, 384, 3)  # upright
    truth = true_landmarks - [64, 0]
    assert np.linalg.norm(mark_centre(pixels, nose_of(truth)) - nose_of(truth)) < 6


def test_orient_matches_pillow_for_all_eight(astronaut):
    from PIL import ImageOps

    small = astronaut[:40, :24]
    for o in range(1, 9):
        im = Image.fromarray(small)
        ex = im.getexif()
        ex[0x0112] = o
        buf = io.BytesIO()
        im.save(buf, format="PNG", exif=ex)
        ref = np.asarray(ImageOps.exif_transpose(Image.open(buf)))
        assert np.array_equal(orient(small, o), ref), o


def test_icc_profile_and_alpha_kept(tmp_path, astronaut, true_landmarks, detector):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    alpha = np.tile(np.linspace(0, 255, 512).astype(np.uint8), (512, 1))
    src = tmp_path / "portrait.png"
    Image.fromarray(np.dstack([astronaut, alpha])).save(src, icc_profile=icc, dpi=(600, 600))
    stats = restore(src, tmp_path / "out.png", detector)
    assert stats.faces == 1
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "RGBA" and im.info["icc_profile"] == icc
        assert im.info["dpi"] == pytest.approx((600, 600), abs=0.01)
        out = np.asarray(im)
    assert np.array_equal(out[..., 3], alpha)
    nose = nose_of(true_landmarks)
    assert np.linalg.norm(mark_centre(out[..., :3], nose) - nose) < 6


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_scan_stays_16bit_and_only_the_face_changes(tmp_path, astronaut, true_landmarks, detector, ext):
    rng = np.random.default_rng(0)
    a16 = (astronaut.astype(np.uint16) * 257 + rng.integers(-100, 100, astronaut.shape)).clip(0, 65535)
    a16 = a16.astype(np.uint16)
    src = tmp_path / f"scan{ext}"
    cv2.imwrite(str(src), a16[..., ::-1])
    stats = restore(src, tmp_path / f"out{ext}", detector)
    assert stats.faces == 1 and stats.report["bits"] == 16
    out = read_image(tmp_path / f"out{ext}")
    assert out.rgb.dtype == np.uint16
    changed = (out.rgb != a16).any(axis=2)
    assert changed.sum() > 500
    ys, xs = np.nonzero(changed)  # only inside the face's crop, and the fine 16-bit detail kept everywhere else
    inv = invert_affine(estimate_affine(true_landmarks))
    corners = np.array([inv @ [x, y, 1.0] for x in (0, 512) for y in (0, 512)])
    lo, hi = corners.min(0) - 4, corners.max(0) + 4
    assert xs.min() >= lo[0] and xs.max() <= hi[0] and ys.min() >= lo[1] and ys.max() <= hi[1]
    nose = nose_of(true_landmarks).round().astype(int)
    assert np.abs(out.rgb[nose[1], nose[0]].astype(int) - np.array([255, 0, 255]) * 257).max() < 2 * 257


def test_greyscale_photo_stays_greyscale(tmp_path, astronaut, true_landmarks, detector):
    grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    src = tmp_path / "old.jpg"
    Image.fromarray(grey).save(src, quality=90)
    stats = restore(src, None, detector)
    assert stats.faces == 1
    with Image.open(tmp_path / "old_restored.jpg") as im:
        assert im.mode == "L"
        out = np.asarray(im).astype(int)
    nose = nose_of(true_landmarks).round().astype(int)
    # the magenta dot, turned to grey: its luma (0.299*255 + 0.114*255 = 105)
    assert abs(out[nose[1], nose[0]] - 105) < 12


def test_sepia_photo_keeps_its_tone(tmp_path, astronaut, true_landmarks, detector):
    y = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY).astype(np.float32)
    sepia = np.clip(np.stack([y * 1.07 + 12, y * 0.95 + 4, y * 0.75], -1), 0, 255).astype(np.uint8)
    tone = detect_tone(sepia)
    assert tone is not None and not tone.grey
    assert detect_tone(astronaut) is None
    src = tmp_path / "sepia.png"
    Image.fromarray(sepia).save(src)
    stats = restore(src, tmp_path / "out.png", detector)
    assert stats.faces == 1
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert not marks(out).any()  # the magenta face is in the photo's sepia now
    nose = nose_of(true_landmarks).round().astype(int)
    px = out[nose[1], nose[0]]
    assert np.abs(px.astype(int) - apply_tone(np.array([[[255, 0, 255]]], np.uint8), tone)[0, 0]).max() <= 12
    assert detect_tone(out) is not None  # still one tone over the whole photo


def _scan(astronaut, true_landmarks):
    """A 2000x1400 scan holding the astronaut at three sizes; returns it and the true landmarks of each face."""
    canvas = np.full((1400, 2000, 3), 200, np.uint8)
    faces = []
    for scale, (x, y) in ((1.6, (60, 80)), (0.8, (1100, 150)), (0.4, (1300, 900))):
        m = np.array([[scale, 0, x], [0, scale, y]], np.float64)
        cv2.warpAffine(astronaut, m, (2000, 1400), dst=canvas, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_TRANSPARENT)
        faces.append(true_landmarks * scale + [x, y])
    return canvas, faces


def test_large_scan_faces_of_three_sizes_detected_on_a_downscaled_copy(tmp_path, astronaut, true_landmarks, detector):
    scan, truths = _scan(astronaut, true_landmarks)
    src = tmp_path / "group.tif"
    Image.fromarray(scan).save(src, dpi=(600, 600), compression="tiff_lzw")
    seen = []

    class Spy:
        def detect(self, frames):
            seen.extend(f.shape for f in frames)
            return detector.detect(frames)

    stats = restore(src, tmp_path / "out.tif", Spy(), detect_max_side=1000)
    assert seen == [(700, 1000, 3)]  # detection ran on the downscaled copy
    assert stats.faces == 3
    with Image.open(tmp_path / "out.tif") as im:
        assert im.info["dpi"] == pytest.approx((600, 600), abs=0.01) and im.info["compression"] == "tiff_lzw"
        out = np.asarray(im)
    # aligned from the full-resolution picture: pasted where the face is (the smallest face is ~8 px between the
    # eyes in the copy searched, where the detector's landmarks are a few pixels off: ~2x that in the scan)
    for truth, tol in zip(truths, (8, 8, 12)):
        nose = nose_of(truth)
        assert np.linalg.norm(mark_centre(out, nose, radius=80) - nose) < tol
    small = restore(src, tmp_path / "big_only.tif", detector, min_face=80, detect_max_side=1000)  # boxes ~190, 95, 48 px
    assert small.faces == 2
    centre = restore(src, tmp_path / "centre.tif", detector, only_center_face=True, detect_max_side=1000)
    assert centre.faces == 1


def test_aligned_face_restored_directly(tmp_path, astronaut, true_landmarks):
    crop, _ = align_face(astronaut, true_landmarks.astype(np.float32))
    src = tmp_path / "face.png"
    Image.fromarray(crop).save(src)
    faces = tmp_path / "faces"
    stats = restore_image(src, None, restorer=MarkerRestorer(), aligned=True, save_faces=str(faces),
                          compare=str(tmp_path / "cmp.png"))
    out = np.asarray(Image.open(tmp_path / "face_restored.png"))
    expected = MarkerRestorer().restore(crop[None])[0]
    assert stats.faces == 1 and np.array_equal(out, expected)  # no detection, no paste: the restorer's output
    assert np.array_equal(np.asarray(Image.open(faces / "face_face00_crop.png")), crop)
    assert np.array_equal(np.asarray(Image.open(faces / "face_face00_restored.png")), expected)
    cmp = np.asarray(Image.open(tmp_path / "cmp.png"))
    assert cmp.shape == (512, 1024, 3) and np.array_equal(cmp[:, :512], crop) and np.array_equal(cmp[:, 512:], out)


def test_parity_with_the_video_path_on_the_same_frame(tmp_path, astronaut, detector):
    frame = np.full((360, 480, 3), 90, np.uint8)
    frame[20:340, 80:400] = cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA)
    video = tmp_path / "still.mkv"
    with av.open(str(video), "w") as c:  # lossless RGB both ways
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 480, 360, "bgr0"
        for i in range(3):
            f = av.VideoFrame.from_ndarray(frame, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 25)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    # whole-frame detection on every frame, as a photo's (regions move the landmarks by ~0.02 px here, which moves
    # the marker's anti-aliased edge by a few levels)
    vidrestore.restore_video(video, tmp_path / "out.mkv", codec="ffv1", pix_fmt="bgr0", parse=False,
                             restorer=MarkerRestorer(), detector=detector, scan_every=1)
    with av.open(str(tmp_path / "out.mkv")) as c:
        from_video = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    Image.fromarray(frame).save(tmp_path / "still.png")
    stats = restore(tmp_path / "still.png", tmp_path / "photo.png", detector)
    photo = np.asarray(Image.open(tmp_path / "photo.png"))
    assert stats.faces == 1 and marks(photo).sum() > 100
    assert np.abs(photo.astype(int) - from_video[1].astype(int)).max() <= 1


def test_bad_inputs_one_clear_error_input_untouched(tmp_path, astronaut, detector):
    text = tmp_path / "notes.png"
    text.write_text("not a picture\n")
    with pytest.raises(MediaError, match="not an image"):
        restore(text, None, detector)
    odd = tmp_path / "anim.gif"
    Image.fromarray(astronaut).save(odd)
    with pytest.raises(MediaError, match="unsupported image format .gif"):
        restore(odd, None, detector)
    src = tmp_path / "a.jpg"
    Image.fromarray(astronaut).save(src, quality=90)
    with pytest.raises(UsageError, match="is the input"):
        restore(src, src, detector)
    with pytest.raises(UsageError, match="must be an image"):
        restore(src, tmp_path / "a.mp4", detector)
    (tmp_path / "a_restored.jpg").write_bytes(b"x")
    with pytest.raises(OutputError, match="already exists"):
        restore(src, None, detector)
    assert not list(tmp_path.glob(".*partial*"))


def test_truncated_jpeg_restores_what_decodes(tmp_path, astronaut, true_landmarks, detector):
    full = io.BytesIO()
    Image.fromarray(astronaut).save(full, format="JPEG", quality=90)
    src = tmp_path / "torn.jpg"
    data = full.getvalue()[: len(full.getvalue()) * 2 // 3]
    src.write_bytes(data)
    stats = restore(src, None, detector)
    assert any("truncated" in n for n in stats.notices) and stats.faces == 1
    assert src.read_bytes() == data
    out = np.asarray(Image.open(tmp_path / "torn_restored.jpg"))
    assert out.shape == astronaut.shape
    nose = nose_of(true_landmarks)
    assert np.linalg.norm(mark_centre(out, nose) - nose) < 6


def test_too_small_is_copied_through_with_a_notice(tmp_path, astronaut):
    src = tmp_path / "tiny.png"
    Image.fromarray(astronaut[:20, :24]).save(src)
    stats = restore_image(src, restorer=IdentityRestorer())
    assert any("too small to hold a face: copied through" in n for n in stats.notices)
    assert (tmp_path / "tiny_restored.png").read_bytes() == src.read_bytes()


def test_batch_restores_photos_and_videos_alike(tmp_path, astronaut, true_landmarks, detector):
    from media import Clip, make_clip

    from vidrestore.batch import restore_folder
    from vidrestore.options import BatchOptions, RestoreOptions

    src, out = tmp_path / "in", tmp_path / "out"
    (src / "album" / "1962").mkdir(parents=True)
    Image.fromarray(astronaut).save(src / "album" / "1962" / "picnic.jpg", quality=88, exif=exif_with(1))
    (src / "album" / "broken.png").write_text("not a picture\n")
    make_clip(src / "clip.mp4", Clip(frames=6))
    restore = RestoreOptions(parse=False, preset="ultrafast", extra={"restorer": MarkerRestorer(), "detector": detector})
    options = BatchOptions(restore=restore, engine="inline", segment_seconds=0)
    result = restore_folder(src, out, options)
    status = {f.input: f.status for f in result.files}
    assert status == {"album/1962/picnic.jpg": "ok", "album/broken.png": "failed", "clip.mp4": "ok"}
    assert "not an image" in next(f.error for f in result.files if f.input == "album/broken.png")
    photo = np.asarray(Image.open(out / "album" / "1962" / "picnic.jpg"))
    nose = nose_of(true_landmarks)
    assert np.linalg.norm(mark_centre(photo, nose) - nose) < 6
    assert (out / "clip.mp4").is_file()
    again = restore_folder(src, out, options)  # resume: what is done is skipped, the broken file is not retried
    assert {f.input: f.status for f in again.files} == {
        "album/1962/picnic.jpg": "skipped", "album/broken.png": "failed-earlier", "clip.mp4": "skipped"}


def test_batch_keeps_every_page_of_a_multipage_tiff(tmp_path, astronaut, detector):
    """An archive run drops no page: a 3-page TIFF comes out with its 3 pages restored (a single photo restores
    the first page unless --pages all; batch has no such choice to make)."""
    from vidrestore.batch import restore_folder
    from vidrestore.options import BatchOptions, RestoreOptions

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    _three_page_tiff(src / "album.tif", astronaut)
    restore = RestoreOptions(parse=False, extra={"restorer": MarkerRestorer(), "detector": detector})
    result = restore_folder(src, out, BatchOptions(restore=restore, engine="inline"))
    assert [f.status for f in result.files] == ["ok"]
    assert not any("left out" in n for f in result.files for n in f.notices)
    with Image.open(out / "album.tif") as im:
        assert im.n_frames == 3


def test_cli_photo_door_one_line_errors(tmp_path, astronaut):
    src = tmp_path / "p.jpg"
    Image.fromarray(astronaut).save(src)
    (tmp_path / "t.png").write_text("hello\n")
    cmd = [sys.executable, "-m", "vidrestore"]
    r = subprocess.run([*cmd, str(tmp_path / "t.png")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "not an image" in r.stderr
    r = subprocess.run([*cmd, str(src), "-o", str(tmp_path / "p.mp4")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "must be an image" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([*cmd, str(src), "--model", "none", "--quality", "70"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p_restored.jpg").is_file()


def _three_page_tiff(path: Path, astronaut: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray | None], bytes]:
    """A 3-page TIFF made by Pillow, each page with its own DPI and description, the second with an ICC profile:
    the astronaut, the astronaut shifted, and a greyscale copy. Returns the pages, their offsets and the ICC."""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    shifted = np.ascontiguousarray(astronaut[40:, 30:])
    grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    first, *rest = [Image.fromarray(a) for a in (astronaut, shifted, grey)]
    rest[0].encoderinfo = {"dpi": (200, 200), "description": "page 2", "icc_profile": icc, "compression": "tiff_lzw"}
    rest[1].encoderinfo = {"dpi": (300, 300), "description": "page 3", "compression": "tiff_lzw"}
    first.save(path, save_all=True, append_images=rest, dpi=(100, 100), description="page 1", compression="tiff_lzw")
    return [astronaut, shifted, grey], [np.zeros(2), np.array([30, 40]), np.zeros(2)], icc


def test_multipage_tiff_first_page_by_default_or_every_page(tmp_path, astronaut, true_landmarks, detector):
    src = tmp_path / "album.tif"
    pages, offsets, icc = _three_page_tiff(src, astronaut)
    before = src.read_bytes()
    first = restore(src, tmp_path / "first.tif", detector)
    assert first.faces == 1 and first.report["pages"] == 1
    assert any("3 pages" in n and "2 left out" in n and "--pages all" in n for n in first.notices)
    with Image.open(tmp_path / "first.tif") as im:
        assert getattr(im, "n_frames", 1) == 1
    with pytest.raises(UsageError, match="multi-page TIFF"):
        restore(src, tmp_path / "all.png", detector, pages="all")
    stats = restore(src, tmp_path / "all.tif", detector, pages="all", save_faces=str(tmp_path / "faces"))
    assert stats.faces == 3 and stats.frames == 3 and stats.report["pages"] == 3 and src.read_bytes() == before
    assert not any("left out" in n for n in stats.notices)
    assert sorted(p.name for p in (tmp_path / "faces").iterdir()) == [
        f"album_page{i}_face00_{k}.png" for i in (1, 2, 3) for k in ("crop", "restored")]
    with Image.open(tmp_path / "all.tif") as im:
        assert im.n_frames == 3
        for i, (page, offset) in enumerate(zip(pages, offsets)):
            im.seek(i)
            tags = im.tag_v2  # each page's own metadata
            assert tags[270] == f"page {i + 1}" and float(tags[282]) == 100 * (i + 1) and tags.get(296, 2) == 2
            assert (tags.get(34675) == icc) if i == 1 else 34675 not in tags
            out = np.asarray(im.convert("RGB") if i < 2 else im)
            assert out.shape[:2] == page.shape[:2] and (im.mode == "L") == (i == 2)
            nose = nose_of(true_landmarks - offset)
            if i < 2:
                assert np.linalg.norm(mark_centre(out, nose) - nose) < 6
            else:  # the greyscale page stays grey: the dot is there in grey (luma of magenta: 105)
                n = nose.round().astype(int)
                assert abs(int(out[n[1], n[0]]) - 105) < 12
            far = (out.astype(int) - page.astype(int))[-100:]  # below the face's crop: untouched, losslessly kept
            assert np.abs(far).max() == 0


def test_cli_pages_all_writes_every_page(tmp_path, astronaut):
    src = tmp_path / "album.tif"
    pages, _, icc = _three_page_tiff(src, astronaut)
    r = subprocess.run([sys.executable, "-m", "vidrestore", str(src), "--model", "none", "--pages", "all", "-o",
                        str(tmp_path / "out.tif")], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "out.tif") as im:
        assert im.n_frames == 3
        for i, page in enumerate(pages):
            im.seek(i)
            assert np.array_equal(np.asarray(im), page) and im.tag_v2[270] == f"page {i + 1}"
    r = subprocess.run([sys.executable, "-m", "vidrestore", str(src), "--model", "none", "-o",
                        str(tmp_path / "one.tif")], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and "3 pages" in r.stderr and "2 left out" in r.stderr


def test_16bit_colour_tiff_keeps_icc_exif_and_dpi(tmp_path, astronaut, true_landmarks, detector):
    import tifffile

    from vidrestore.media.image import Picture, write_image

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    a16 = (astronaut.astype(np.uint16) * 257 + 77).astype(np.uint16)
    src = tmp_path / "scan16.tif"  # made by another writer (tifffile): ICC, DPI and IFD0's camera tags
    tifffile.imwrite(src, a16, photometric="rgb", compression="zlib", iccprofile=icc, resolution=(1200, 1200),
                     resolutionunit="INCH", metadata=None,
                     extratags=[(271, "s", 0, "Epson", True), (306, "s", 0, "1998:03:01 09:00:00", True)])
    stats = restore(src, tmp_path / "out.tif", detector)
    assert stats.faces == 1 and stats.report["bits"] == 16
    assert not any("without" in n for n in stats.notices)
    with tifffile.TiffFile(tmp_path / "out.tif") as tf:  # read back by a reader other than ours
        page = tf.pages[0]
        out = page.asarray()
        assert out.dtype == np.uint16 and out.shape == a16.shape
        assert page.tags[34675].value == icc
        assert page.tags[282].value == (1200, 1) and page.tags[296].value == 2
        assert page.tags[271].value == "Epson" and page.tags[306].value == "1998:03:01 09:00:00"
    assert np.array_equal(out[-100:], a16[-100:])  # 16-bit detail kept outside the face's crop
    nose = nose_of(true_landmarks).round().astype(int)
    assert np.abs(out[nose[1], nose[0]].astype(int) - np.array([255, 0, 255]) * 257).max() < 2 * 257
    # the Exif and GPS sub-IFDs (date taken, position) are written too, with an alpha channel kept at 16 bit
    alpha = np.tile(np.linspace(0, 65535, 512).astype(np.uint16), (512, 1))
    write_image(tmp_path / "exif16.tif", Picture(rgb=a16, alpha=alpha, exif=exif_with(1), icc=icc, dpi=(600, 600)))
    back = read_image(tmp_path / "exif16.tif")
    assert np.array_equal(back.rgb, a16) and np.array_equal(back.alpha, alpha)
    assert back.icc == icc and back.dpi == (600, 600)
    with Image.open(tmp_path / "exif16.tif") as im:
        ex = im.getexif()
        assert ex[0x010F] == "Kodak" and ex.get_ifd(0x8769)[0x9003] == "1962:07:14 10:30:00"
        assert ex.get_ifd(0x8825)[1] == "N"


def _heif():
    pillow_heif = pytest.importorskip("pillow_heif", reason="HEIC needs the heif extra: pip install -e '.[heif]'")
    if not pillow_heif.libheif_info().get("HEIF"):
        pytest.skip("this pillow-heif wheel has no HEIF (x265) encoder")
    pillow_heif.register_heif_opener()
    return pillow_heif


def test_heic_restored_keeping_exif_and_icc(tmp_path, astronaut, true_landmarks, detector):
    _heif()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "phone.heic"
    Image.fromarray(astronaut).save(src, quality=90, exif=exif_with(1), icc_profile=icc)
    before = src.read_bytes()
    stats = restore(src, None, detector)  # fakes through the API: where the face went
    assert stats.faces == 1 and src.read_bytes() == before
    with Image.open(tmp_path / "phone_restored.heic") as im:
        assert im.format == "HEIF" and im.info["icc_profile"] == icc
        ex = im.getexif()
        assert ex[0x010F] == "Kodak" and ex.get_ifd(0x8769)[0x9003] == "1962:07:14 10:30:00"
        out = np.asarray(im.convert("RGB"))
    nose = nose_of(true_landmarks)
    assert np.linalg.norm(mark_centre(out, nose) - nose) < 6
    r = subprocess.run([sys.executable, "-m", "vidrestore", str(src), "--model", "none", "-o",
                        str(tmp_path / "cli.heic")], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "cli.heic") as im:  # the CLI door: readable, EXIF and ICC kept
        assert im.size == (512, 512) and im.info["icc_profile"] == icc
        assert im.getexif().get_ifd(0x8769)[0x9003] == "1962:07:14 10:30:00"
        assert np.abs(np.asarray(im.convert("RGB")).astype(int) - astronaut).mean() < 4
