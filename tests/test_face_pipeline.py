"""The tracked face pipeline in the stream, on a clip of a real portrait moving on a known path.

A scripted detector returns the true landmarks plus noise; a marker restorer paints a dot at the FFHQ
template's nose in the aligned crop, so the dot's centroid in the output frame is where the pipeline
pasted the face.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

import vidrestore
from media import decoded_frames, stream_digests, video_timestamps
from vidrestore.faces.align import FFHQ_TEMPLATE_512, estimate_affine, invert_affine
from vidrestore.faces.face import Face
from vidrestore.faces.stage import FaceOptions, FaceStage
from vidrestore.media.source import Frame
from vidrestore.testing import (
    MARK_RGB,
    IdentityRestorer,
    InvertRestorer,
    MarkerRestorer,
    NoiseIdentityRestorer,
    ScriptedDetector,
)

W, H, N = 320, 240, 48
SCALE = 0.5  # the 512×512 astronaut is drawn at 256×256
NOSE = np.array(FFHQ_TEMPLATE_512[2], dtype=np.float64)
MARK = np.array(MARK_RGB, dtype=np.uint8)


def path_offset(t: int) -> np.ndarray:
    """A known path: a sinusoid with at most ~6.3 px/frame (0.66 px/frame²), as in DESIGN.md's simulation."""
    return np.array([70 + 60 * np.sin(2 * np.pi * t / 60), 5 + 8 * np.cos(2 * np.pi * t / 48)])


def render(astronaut: np.ndarray, offset: np.ndarray, width: int = W, height: int = H) -> np.ndarray:
    m = np.array([[SCALE, 0, offset[0]], [0, SCALE, offset[1]]], dtype=np.float64)
    canvas = np.full((height, width, 3), 40, np.uint8)
    return cv2.warpAffine(astronaut, m, (width, height), dst=canvas, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_TRANSPARENT)


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 24, audio: bool = True) -> Path:
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv444p"
        v.codec_context.options = {"crf": "0", "preset": "ultrafast"}
        a = out.add_stream("aac", rate=16000, layout="mono") if audio else None
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            f.time_base = Fraction(1, fps)
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        if a is not None:
            n = int(16000 * len(frames) / fps)
            tone = (0.2 * np.sin(2 * np.pi * 330 * np.arange(n) / 16000) * 32767).astype(np.int16)[None]
            af = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
            af.sample_rate, af.pts = 16000, 0
            for p in [*a.encode(af), *a.encode()]:
                out.mux(p)
    return path


def face_at(landmarks: np.ndarray, score: float = 0.99) -> Face:
    lo, hi = landmarks.min(0), landmarks.max(0)
    pad = (hi - lo) * 0.6
    return Face(box=np.r_[lo - pad, hi + pad], landmarks=landmarks, score=score)


class ShapeSensitiveRestorer:
    """Inverts each face and darkens it by the number of faces in the call, as a kernel whose numerics depend on
    the batch shape would: its output is independent of batching only if every call has the same shape."""

    def __init__(self) -> None:
        self.shapes: list[int] = []

    def restore(self, faces: np.ndarray) -> np.ndarray:
        self.shapes.append(len(faces))
        return (255 - faces).clip(4 * len(faces), None) - 4 * len(faces)


def mark_centroid(frame: np.ndarray, near: np.ndarray, radius: int = 20) -> np.ndarray:
    x0, y0 = int(near[0]) - radius, int(near[1]) - radius
    win = frame[max(y0, 0) : y0 + 2 * radius, max(x0, 0) : x0 + 2 * radius].astype(np.float64)
    # magenta-ness: high red and blue, low green
    w = np.clip((np.minimum(win[..., 0], win[..., 2]) - win[..., 1]) / 255.0, 0, None) ** 2
    ys, xs = np.mgrid[0 : win.shape[0], 0 : win.shape[1]]
    return np.array([(w * xs).sum() / w.sum() + max(x0, 0), (w * ys).sum() / w.sum() + max(y0, 0)])


def nose_of(landmarks: np.ndarray) -> np.ndarray:
    """Where the template's nose lands in the frame for these landmarks."""
    inv = invert_affine(estimate_affine(landmarks))
    return inv @ np.r_[NOSE, 1.0]


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory, astronaut, true_landmarks):
    d = tmp_path_factory.mktemp("faces")
    truth = [true_landmarks * SCALE + path_offset(t) for t in range(N)]
    frames = [render(astronaut, path_offset(t)) for t in range(N)]
    rng = np.random.default_rng(3)
    raw = [lm + rng.normal(0, 2.0, lm.shape) for lm in truth]
    return write_clip(d / "astronaut.mp4", frames), truth, raw


def restore(src, dst, **kw):
    kw.setdefault("parse", False)
    return vidrestore.restore_video(src, dst, **kw)


def test_pasted_face_follows_the_true_path_with_less_jitter(moving_clip, tmp_path):
    src, truth, raw = moving_clip
    detector = ScriptedDetector([[face_at(lm)] for lm in raw])
    out = tmp_path / "out.mp4"
    stats = restore(src, out, restorer=MarkerRestorer(), detector=detector, temporal=False)
    assert stats.frames == N and stats.tracks == 1 and stats.faces >= N - 2
    frames = decoded_frames(out)
    true_pos = [nose_of(lm) for lm in truth]  # the dot's place if alignment used the true landmarks
    raw_pos = [nose_of(lm) for lm in raw]
    got = np.array([mark_centroid(f, p) for f, p in zip(frames, true_pos)])
    err_out = got - np.array(true_pos)
    err_raw = np.array(raw_pos) - np.array(true_pos)
    jitter_out = np.linalg.norm(np.diff(err_out, axis=0), axis=1).mean()
    jitter_raw = np.linalg.norm(np.diff(err_raw, axis=0), axis=1).mean()
    offset = np.linalg.norm(err_out, axis=1).mean()
    assert jitter_out <= 0.25 * jitter_raw, (jitter_out, jitter_raw)
    assert offset <= 2.0, offset
    # the audio track went through untouched
    assert stream_digests(out) == stream_digests(src)
    assert video_timestamps(out)[0] == video_timestamps(src)[0]


def test_identity_restorer_adds_no_flicker_and_reports(moving_clip, tmp_path):
    src, truth, raw = moving_clip
    detector = ScriptedDetector([[face_at(lm)] for lm in raw])
    report = tmp_path / "report.json"
    stats = restore(src, tmp_path / "out.mp4", restorer=IdentityRestorer(), detector=detector, report=str(report))
    doc = json.loads(report.read_text())
    (track,) = doc["tracks"].values()
    assert track["frames"] >= N - 2
    assert track["jitter_smoothed_px"] < 0.5 * track["jitter_raw_px"]
    assert track["temporal_diff_output"] <= 1.1 * track["temporal_diff_input"]
    assert doc["frames"] == N and stats.report == {k: v for k, v in doc.items() if k in stats.report}


def test_output_is_bit_identical_across_batch_sizes(moving_clip, tmp_path):
    """The padded micro-batch path on the CPU: batches of 1, 3 and 8 faces all reach the restorer as calls of 4
    (padded), so a restorer whose output depends on the call's shape still gives the same pixels."""
    src, truth, raw = moving_clip
    results = []
    for batch in (1, 3, 8):
        out = tmp_path / f"b{batch}.mkv"
        detector = ScriptedDetector([[face_at(lm)] for lm in raw])
        restorer = ShapeSensitiveRestorer()
        restore(src, out, restorer=restorer, detector=detector, batch_size=batch, codec="ffv1",
                face_options={"micro_batch": 4})
        assert set(restorer.shapes) == {4} and len(restorer.shapes) >= N // 4
        results.append(decoded_frames(out))
    assert all(np.array_equal(a, b) for a, b in zip(results[0], results[1]))
    assert all(np.array_equal(a, b) for a, b in zip(results[0], results[2]))
    # and the faces really were restored (inverted), not passed through
    original = decoded_frames(src)
    centre = nose_of(truth[10]).astype(int)
    assert abs(int(results[0][10][centre[1], centre[0]].mean()) - (255 - int(original[10][centre[1], centre[0]].mean()))) < 40


def test_strength_zero_leaves_the_frame_untouched(moving_clip, tmp_path):
    src, truth, raw = moving_clip
    detector = ScriptedDetector([[face_at(lm)] for lm in raw])
    out = tmp_path / "s0.mkv"
    restore(src, out, restorer=InvertRestorer(), detector=detector, strength=0.0, codec="ffv1")
    # the input is lossless 4:4:4 and the output FFV1: with S=0 the pixels are the input's exactly
    plain = tmp_path / "plain.mkv"
    vidrestore.restore_video(src, plain, model="none", codec="ffv1")
    assert all(np.array_equal(a, b) for a, b in zip(decoded_frames(out), decoded_frames(plain)))


def test_two_crossing_faces_keep_their_ids(astronaut, true_landmarks, tmp_path):
    n = 40
    frames, script, truth = [], [], []
    for t in range(n):
        a = np.array([20 + 4.5 * t, 0.0])  # moves right
        b = np.array([200 - 4.5 * t, 20.0])  # moves left; they cross mid-clip
        img = np.full((H, 400, 3), 40, np.uint8)
        for off in (a, b):
            m = np.array([[0.35, 0, off[0]], [0, 0.35, off[1]]])
            img = cv2.warpAffine(astronaut, m, (400, H), dst=img, borderMode=cv2.BORDER_TRANSPARENT)
        frames.append(img)
        la, lb = true_landmarks * 0.35 + a, true_landmarks * 0.35 + b
        script.append([face_at(la), face_at(lb)][:: 1 if t % 2 else -1])  # detection order shuffles
        truth.append((la, lb))
    src = write_clip(tmp_path / "two.mp4", frames, audio=False)
    stats = vidrestore.restore_video(src, tmp_path / "two_out.mp4", restorer=IdentityRestorer(),
                                     detector=ScriptedDetector(script), parse=False)
    assert stats.tracks == 2
    # follow the tracks through the faces the stage hands on with each frame: each id moves one way only
    stage = FaceStage(ScriptedDetector(script), IdentityRestorer(), FaceOptions(parse=False))
    xs_of: dict[int, list[float]] = {}
    for frame in stage(in_memory(decoded_frames(src))):
        for face in frame.meta["faces"]:
            xs_of.setdefault(face.track_id, []).append(face.landmarks[:, 0].mean())
    assert len(xs_of) == 2
    seen: dict[int, list[float]] = {}
    for tid, xs in xs_of.items():
        steps = np.sign(np.diff(xs))
        assert abs(steps.sum()) >= len(steps) - 2, (tid, xs)
        seen[tid] = xs
    directions = sorted(np.sign(v[-1] - v[0]) for v in seen.values())
    assert directions == [-1, 1]


def test_scene_cut_resets_tracks(astronaut, true_landmarks, tmp_path):
    n = 30
    frames, script = [], []
    flipped = astronaut[:, ::-1].copy()
    for t in range(n):
        off = np.array([40.0 + t, 10.0])
        img = render(astronaut if t < 15 else flipped[::-1].copy(), off)
        frames.append(img)
        lm = true_landmarks * SCALE + off
        script.append([face_at(lm)])
    src = write_clip(tmp_path / "cut.mp4", frames, audio=False)
    stats = vidrestore.restore_video(src, tmp_path / "cut_out.mp4", restorer=IdentityRestorer(),
                                     detector=ScriptedDetector(script), parse=False)
    assert stats.report["scene_cuts"] == 1
    assert stats.tracks == 2  # the same face position after the cut gets a new track


@pytest.mark.slow
def test_end_to_end_with_the_synthetic_gfpgan_checkpoint(synthetic_gfpgan, astronaut, true_landmarks, tmp_path):
    frames, script = [], []
    for t in range(3):
        off = np.array([10.0 + 2 * t, 0.0])
        frames.append(render(astronaut, off, 200, 150))
        script.append([face_at(true_landmarks * SCALE + off)])
    src = write_clip(tmp_path / "tiny.mp4", frames)
    out = tmp_path / "tiny_out.mkv"
    stats = vidrestore.restore_video(src, out, model=str(synthetic_gfpgan), detector=ScriptedDetector(script),
                                     parse=False, device="cpu", batch_size=2, codec="ffv1")
    assert stats.frames == 3 and stats.faces == 3
    plain = tmp_path / "plain.mkv"
    vidrestore.restore_video(src, plain, model="none", codec="ffv1")
    a, b = decoded_frames(plain), decoded_frames(out)
    centre = nose_of(true_landmarks * SCALE + np.array([10.0, 0.0])).astype(int)
    region = (slice(centre[1] - 10, centre[1] + 10), slice(centre[0] - 10, centre[0] + 10))
    assert np.abs(a[0][region].astype(int) - b[0][region].astype(int)).mean() > 5  # the face changed
    far = (slice(0, 10), slice(190, 200))
    assert np.array_equal(a[0][far], b[0][far])  # the background did not
    assert stream_digests(out) == stream_digests(src)


def test_detect_every_k_predicts_between_detections(moving_clip, tmp_path):
    """Detection on every 4th frame only: the tracker fills the frames between, and a face is restored from its
    first detection (it could not wait for a second hit that comes 4 frames later)."""
    src, truth, raw = moving_clip
    k = 4
    detector = ScriptedDetector([[face_at(raw[i])] for i in range(0, N, k)])
    stats = restore(src, tmp_path / "k.mp4", restorer=MarkerRestorer(), detector=detector, detect_every=k,
                    temporal=False)
    assert detector.frames_seen == N // k
    assert stats.faces >= N - 1 and stats.tracks == 1
    frames = decoded_frames(tmp_path / "k.mp4")
    true_pos = [nose_of(lm) for lm in truth]
    got = np.array([mark_centroid(f, p) for f, p in zip(frames, true_pos)])
    assert np.linalg.norm(got - np.array(true_pos), axis=1).mean() < 3.0


# ---------------------------------------------------------------------------------------------------- memory


def in_memory(images, start: int = 0):
    for i, img in enumerate(images, start):
        yield Frame(i, i, Fraction(1, 24), 1, rgb=img)


TINY = (48, 64)  # h, w of the long-run frames: enough for the scene-cut thumbnail, cheap to paste on


def tiny_face(x: float, y: float = 24.0) -> Face:
    template = np.array(FFHQ_TEMPLATE_512, dtype=np.float64)
    return face_at((template - template.mean(0)) * 0.05 + [x, y])


def run_counting(stage: FaceStage, n: int, seconds: float = 120.0, on_yield=None) -> tuple[int, list]:
    """Runs ``stage`` on ``n`` tiny frames; returns the most frames ever in flight (taken from the input, not yet
    yielded) and the frames that carried faces. Fails, rather than stalls, past ``seconds``."""
    import time

    rng = np.random.default_rng(0)
    still = rng.integers(60, 200, (*TINY, 3), dtype=np.uint8)  # one scene: no cuts
    count = {"taken": 0, "yielded": 0, "peak": 0}
    started = time.monotonic()

    def source():
        for i in range(n):
            count["taken"] += 1
            count["peak"] = max(count["peak"], count["taken"] - count["yielded"])
            assert time.monotonic() - started < seconds, f"too slow: {i} frames in {seconds} s"
            yield Frame(i, i, Fraction(1, 24), 1, rgb=still.copy())

    with_faces = []
    for i, frame in enumerate(stage(source())):
        assert frame.index == i
        count["yielded"] += 1
        if frame.meta["faces"]:
            with_faces.append(i)
        if on_yield is not None:
            on_yield(stage)
    assert count["yielded"] == n
    return count["peak"], with_faces


def test_a_face_seen_once_does_not_hold_the_frames_after_it():
    """A face in the first 4 frames, then 5,000 frames without one: before the fix every frame after the face
    waited for a batch that never filled."""
    script = [[tiny_face(30.0)] for _ in range(4)]
    restorer = NoiseIdentityRestorer()
    stage = FaceStage(ScriptedDetector(script), restorer, FaceOptions(parse=False, batch_size=8))
    assert stage.window == 8 + 8 + 10 + 8  # detection chunk, the chunk detected ahead, lag, restore batch
    peak, with_faces = run_counting(stage, 5004)
    assert 8 + 10 <= peak <= stage.window, peak
    assert with_faces[:4] == [0, 1, 2, 3] and restorer.calls >= 1  # the face was restored (a partial batch)


@pytest.mark.parametrize("faces_per_frame", [1, 3])
def test_faces_in_every_frame_stay_within_the_window(faces_per_frame):
    script = lambda i, frame: [tiny_face(12.0 + 20 * k) for k in range(faces_per_frame)]  # noqa: E731
    stage = FaceStage(ScriptedDetector(script), NoiseIdentityRestorer(), FaceOptions(parse=False, batch_size=8))
    peak, with_faces = run_counting(stage, 120)
    assert 8 + 10 <= peak <= stage.window, peak
    assert len(with_faces) >= 120 - 2


def test_per_track_state_stays_bounded_as_tracks_come_and_go():
    """30 tracks, each seen for 12 frames then gone for 13: blend state, noise, masks and previous crops exist
    only for tracks seen lately, and the report keeps figures, not histories."""
    period, seen_for, tracks = 25, 12, 30

    def script(i, frame):
        k, phase = divmod(i, period)
        return [tiny_face(20.0 + (k % 3) * 10)] if phase < seen_for else []

    stage = FaceStage(ScriptedDetector(script), NoiseIdentityRestorer(), FaceOptions(parse=False, batch_size=4))
    sizes = []

    def measure(stage):
        sizes.append(max(len(stage._flicker.live), len(stage._blender.track_ids), len(stage._noise._cache)))

    run_counting(stage, period * tracks, on_yield=measure)
    assert len(stage.report.tracks) == tracks
    assert max(sizes) <= 2, max(sizes)
    for t in stage.report.tracks.values():  # constant-size figures per track, whatever its length
        assert t.frames >= seen_for - 2 and t.smooth.value is not None and t.pairs >= seen_for - 3
        assert all(not isinstance(v, (list, dict)) for v in vars(t).values())


def test_frames_before_a_cut_finish_as_if_the_clip_ended_there():
    """At a scene cut the blend state is dropped only after the frames before the cut are finished: they come
    out exactly as they would if the clip ended at the cut (before, the state was dropped while the last
    ~lag frames before the cut still waited, so their faces jumped)."""
    rng = np.random.default_rng(1)
    scene_a, scene_b = (rng.integers(0, 256, (*TINY, 3), dtype=np.uint8) for _ in range(2))
    images = [(scene_a if i < 30 else scene_b).copy() for i in range(45)]
    script = lambda i, frame: [tiny_face(20.0 + 0.5 * i)]  # noqa: E731

    def run(n):
        stage = FaceStage(ScriptedDetector(script), InvertRestorer(), FaceOptions(parse=False, batch_size=4))
        return [f.rgb.copy() for f in stage(in_memory(images[:n]))], stage.report

    whole, report = run(45)
    alone, _ = run(30)
    assert report.cuts == 1
    assert all(np.array_equal(a, b) for a, b in zip(whole[:30], alone))


# ------------------------------------------------------------------------------------------ paste mask over time


class AlternatingParser:
    """A parser whose mask alternates, call by call, between two discs (radius 150 and 200 px of the 512 crop):
    what a ParseNet that changes its mind at the face boundary does to the paste mask."""

    def __init__(self) -> None:
        self.calls = 0
        y, x = np.mgrid[0:512, 0:512]
        r = np.hypot(x - 256, y - 280)
        self.discs = [torch.from_numpy((r < rad).astype(np.float32)) for rad in (150, 200)]

    def face_masks(self, crops):
        out = []
        for _ in range(len(crops)):
            out.append(self.discs[self.calls % 2])
            self.calls += 1
        return torch.stack(out)


def test_track_masks_ramp_between_recomputations():
    from vidrestore.faces.masks import TrackMasks

    parser = AlternatingParser()
    masks = TrackMasks(parser, every=5)
    crops = np.zeros((1, 512, 512, 3), np.uint8)
    shown = [masks.masks([7], crops, [c])[0] for c in range(16)]
    a, b = parser.discs
    assert parser.calls == 4  # clocks 0, 5, 10, 15
    assert shown[0].equal(a)  # a track's first mask as computed
    steps = [float((shown[c + 1] - shown[c]).abs().max()) for c in range(15)]
    assert max(steps) <= 0.2 + 1e-6, steps  # each recomputation's change spread over 5 frames
    assert shown[9].equal(b)  # and complete before the next one
    masks.forget(7)
    assert len(masks) == 0


def test_paste_mask_does_not_step_at_recomputations(astronaut, true_landmarks):
    """A still face, a restorer that changes every pixel (the negative) and a parser whose mask flips at every
    call: with ParseNet every 5 frames the boundary moves by at most a fifth of the flip per frame (held masks
    jumped by the whole flip every 5 frames, as ParseNet every frame does on every frame)."""
    frame = render(astronaut, np.zeros(2))
    face = face_at(true_landmarks * SCALE)

    def run(every):
        stage = FaceStage(ScriptedDetector(lambda i, f: [face]), InvertRestorer(),
                          FaceOptions(parse_every=every, temporal=False, min_hits=1), parser=AlternatingParser())
        return [f.rgb.astype(np.int16) for f in stage(in_memory([frame.copy() for _ in range(21)]))]

    def steps(frames):
        return [float(np.abs(b - a).mean()) for a, b in zip(frames, frames[1:])]

    flip = steps(run(1))
    ramp = steps(run(5))
    assert min(flip) > 0.5, flip  # the flip is visible at every frame
    assert max(ramp) <= 0.25 * min(flip), (ramp, flip)
