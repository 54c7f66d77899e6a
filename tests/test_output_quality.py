"""Upscaling in the stream, the strength control, and the before/after exports (video and still)."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest

import vidrestore
from media import Audio, Clip, decoded_frames, make_clip, stream_digests, video_timestamps
from test_face_pipeline import face_at, mark_centroid, nose_of, render, write_clip
from vidrestore.cli.options import parse_time
from vidrestore.still import still_image
from vidrestore.options import RestoreOptions
from vidrestore.testing import MarkerRestorer, ScriptedDetector
from vidrestore.upscale import LanczosUpscaler


def test_upscale_keeps_timestamps_sar_and_audio(tmp_path):
    src = make_clip(tmp_path / "dv.mkv", Clip(width=72, height=48, frames=10, sar=Fraction(8, 9), audio=[Audio()]))
    out = tmp_path / "up.mkv"
    stats = vidrestore.restore_video(src, out, model="none", upscale=2, bg_upsampler="lanczos")
    assert stats.frames == 10
    frames = decoded_frames(out)
    assert frames[0].shape == (96, 144, 3)
    times, sar = video_timestamps(out)
    assert times == video_timestamps(src)[0] and sar == Fraction(8, 9)
    assert stream_digests(out) == stream_digests(src)
    # the picture is the input, bigger
    small = cv2.resize(frames[4], (72, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - decoded_frames(src)[4].astype(int)).mean() < 6


@pytest.fixture(scope="module")
def still_clip(tmp_path_factory, astronaut, true_landmarks):
    d = tmp_path_factory.mktemp("quality")
    offsets = [np.array([30.0 + 2 * t, 5.0]) for t in range(20)]
    frames = [render(astronaut, o, 240, 200) for o in offsets]
    truth = [true_landmarks * 0.5 + o for o in offsets]
    return write_clip(d / "still.mp4", frames), truth


def test_faces_land_at_the_right_place_after_x2(still_clip, tmp_path):
    src, truth = still_clip
    results = {}
    for scale in (1, 2):
        out = tmp_path / f"x{scale}.mkv"
        vidrestore.restore_video(
            src, out, restorer=MarkerRestorer(), detector=ScriptedDetector([[face_at(lm)] for lm in truth]),
            parse=False, temporal=False, upscale=scale, upscaler=LanczosUpscaler(scale) if scale > 1 else None,
            codec="ffv1",
        )
        frames = decoded_frames(out)
        assert frames[0].shape == (200 * scale, 240 * scale, 3)
        results[scale] = np.array([mark_centroid(f, scale * nose_of(lm) + (scale - 1) / 2, 20 * scale)
                                   for f, lm in zip(frames, truth)])
    expected = np.array([nose_of(lm) for lm in truth])
    assert np.abs(results[1] - expected).max() < 0.6
    # pixel centres map exactly: x_up = 2x + 0.5
    assert np.abs(results[2] - (2 * expected + 0.5)).max() < 0.6


def test_compare_video_has_both_halves_and_the_audio(still_clip, tmp_path):
    src, truth = still_clip
    out, cmp = tmp_path / "out.mkv", tmp_path / "cmp.mkv"
    inverted = type("Invert", (), {"restore": lambda self, faces: 255 - faces})()
    vidrestore.restore_video(src, out, restorer=inverted, detector=ScriptedDetector([[face_at(lm)] for lm in truth]),
                             parse=False, compare=str(cmp), codec="ffv1")
    plain = tmp_path / "plain.mkv"  # the input through the same 4:2:0 FFV1 encode
    vidrestore.restore_video(src, plain, model="none", codec="ffv1")
    both, after, before = decoded_frames(cmp), decoded_frames(out), decoded_frames(plain)
    assert len(both) == len(after) == 20 and both[0].shape == (200, 480, 3)
    for k in (0, 10, 19):
        assert np.abs(both[k][:, :240].astype(int) - before[k].astype(int)).mean() < 0.5
        assert np.abs(both[k][:, 240:].astype(int) - after[k].astype(int)).mean() < 0.5
    assert np.abs(after[10].astype(int) - before[10].astype(int)).mean() > 5  # the halves differ
    assert stream_digests(cmp) == stream_digests(src)


def test_still_writes_a_before_after_png(still_clip, tmp_path):
    src, truth = still_clip
    png = tmp_path / "cmp.png"
    options = RestoreOptions(parse=False, extra={
        "restorer": MarkerRestorer(), "detector": ScriptedDetector([[face_at(lm)] for lm in truth]),
    })
    still_image(src, 0.5, png, options)  # 24 fps: frame 12, decoding starts 1 s earlier (frame 0)
    image = cv2.imread(str(png))[..., ::-1]
    assert image.shape == (200, 480, 3)
    before = decoded_frames(src)[12]
    assert np.abs(image[:, :240].astype(int) - before.astype(int)).mean() < 1.0
    assert mark_centroid(image[:, 240:], nose_of(truth[12]), 20) == pytest.approx(nose_of(truth[12]), abs=1.5)
    assert parse_time("00:01:23.5") == 83.5 and parse_time("1:02") == 62 and parse_time("7") == 7


def test_still_command_errors(still_clip, tmp_path):
    import subprocess
    import sys

    src, _ = still_clip
    proc = subprocess.run([sys.executable, "-m", "vidrestore", "still", str(src), "--at", "99", "-o",
                           str(tmp_path / "x.png"), "--model", "none"], capture_output=True, text=True)
    assert proc.returncode == 1 and "outside the video" in proc.stderr and "Traceback" not in proc.stderr
