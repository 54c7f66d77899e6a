"""Tracking and smoothing on simulated trajectories with known truth (no media, no weights)."""

from __future__ import annotations

import numpy as np
import pytest

from vidrestore.faces.face import Face
from vidrestore.faces.cut import (
    DEFAULT_CUT_THRESHOLD,
    is_scene_cut,
    motion_compensated_score,
    scene_cut_score,
    small_grey,
)
from vidrestore.faces.motion import TrackerOptions
from vidrestore.faces.report import RunningJitter, landmark_jitter, mean_offset
from vidrestore.faces.smooth import FixedLagSmoother
from vidrestore.faces.track import FaceTracker, box_iou

# Landmark offsets of a 100 px face around its centre (eyes, nose, mouth corners).
OFFSETS = np.array([[-18.0, -12.0], [18.0, -12.0], [0.0, 4.0], [-14.0, 22.0], [14.0, 22.0]])


def sinusoid_path(n: int, period: int = 60, vx: float = 6.5, vy: float = 2.5) -> np.ndarray:
    """Face centres (n, 2) on a sinusoid; peak speeds vx, vy px/frame (combined ≤ 7 px/frame)."""
    t = np.arange(n)
    x = 320 + vx * period / (2 * np.pi) * np.sin(2 * np.pi * t / period)
    y = 240 + vy * 90 / (2 * np.pi) * np.sin(2 * np.pi * t / 90)
    return np.stack([x, y], axis=1)


def detection(centre: np.ndarray, rng: np.random.Generator, sigma: float = 2.0, half: float = 50.0) -> Face:
    box = np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])
    return Face(box + rng.normal(0, sigma, 4), centre + OFFSETS + rng.normal(0, sigma, (5, 2)), 0.99)


def collect(pairs, out: dict[int, list[Face]]) -> list[int]:
    order = []
    for idx, faces in pairs:
        order.append(idx)
        out[idx] = faces
    return order


# ------------------------------------------------------------------------------------------ smoothing


@pytest.fixture(scope="module")
def sinusoid_run():
    rng = np.random.default_rng(1)
    n = 300
    centres = sinusoid_path(n)
    truth = centres[:, None, :] + OFFSETS
    dets = [detection(c, rng) for c in centres]
    opts = TrackerOptions()
    tracker = FaceTracker(opts)
    smoother = FixedLagSmoother(opts)
    causal: dict[int, list[Face]] = {}
    smooth: dict[int, list[Face]] = {}
    order: list[int] = []
    for i in range(n):
        causal[i] = tracker.update(i, [dets[i]])
        order += collect(smoother.push(i, [dets[i]]), smooth)
    order += collect(smoother.flush(), smooth)
    return truth, np.stack([d.landmarks for d in dets]), causal, smooth, order


def test_causal_and_fixed_lag_jitter_ratios(sinusoid_run):
    truth, raw, causal, smooth, order = sinusoid_run
    assert order == list(range(300))
    span = range(20, 280)  # skip the filters' start-up and the last frames, smoothed with a short window
    assert all(len(causal[i]) == 1 and len(smooth[i]) == 1 for i in span)
    c = np.stack([causal[i][0].landmarks for i in span])
    s = np.stack([smooth[i][0].landmarks for i in span])
    g, r = truth[20:280], raw[20:280]
    raw_j = landmark_jitter(r, g)
    causal_ratio, smooth_ratio = landmark_jitter(c, g) / raw_j, landmark_jitter(s, g) / raw_j
    # Measured: causal 0.39, smoother 0.08 (design: ~0.4 and 0.1–0.15).
    assert 0.25 < causal_ratio < 0.5
    assert smooth_ratio < 0.15
    # The same with the truth-free metric (second differences).
    assert landmark_jitter(c) / landmark_jitter(r) < 0.5
    assert landmark_jitter(s) / landmark_jitter(r) < 0.15
    # Offsets: raw 2.5 px; causal lags on the curve (2.1); the smoother stays within ~1 px.
    assert mean_offset(r, g) == pytest.approx(2.5, abs=0.2)
    assert mean_offset(c, g) < 3.0
    assert mean_offset(s, g) < 1.3


def test_jitter_metrics_on_white_noise():
    rng = np.random.default_rng(0)
    truth = np.zeros((4000, 5, 2))
    noisy = rng.normal(0, 2.0, truth.shape)
    # 2-D Rayleigh means: sqrt(2)σ·sqrt(π/2) for a first difference, sqrt(6)σ·sqrt(π/2) for a second.
    assert landmark_jitter(noisy, truth) == pytest.approx(2.0 * np.sqrt(2) * np.sqrt(np.pi / 2), rel=0.03)
    assert landmark_jitter(noisy) == pytest.approx(2.0 * np.sqrt(6) * np.sqrt(np.pi / 2), rel=0.03)
    assert landmark_jitter(np.linspace(0, 50, 30)[:, None, None] * np.ones((30, 5, 2))) == pytest.approx(0.0, abs=1e-9)
    assert landmark_jitter(noisy[:2]) == 0.0
    assert mean_offset(truth + [3.0, 4.0], truth) == pytest.approx(5.0)


def test_running_jitter_matches_landmark_jitter_in_constant_memory():
    rng = np.random.default_rng(5)
    seq = sinusoid_path(500)[:, None, :] + OFFSETS + rng.normal(0, 2.0, (500, 5, 2))
    running = RunningJitter()
    for k, lm in enumerate(seq):
        running.push(lm)
        if k == 1:
            assert running.value is None  # fewer than 3 frames: no figure, as the report had
    assert running.value == pytest.approx(landmark_jitter(seq), rel=1e-12)
    assert all(np.size(v) <= 10 for v in vars(running).values())


# ------------------------------------------------------------------------------------------ tracking


def test_two_faces_crossing_keep_their_ids():
    rng = np.random.default_rng(2)
    n = 80
    t = np.arange(n)
    a = np.stack([100 + 5.0 * t, np.full(n, 240.0)], axis=1)  # left → right
    b = np.stack([500 - 5.0 * t, np.full(n, 260.0)], axis=1)  # right → left, 20 px lower; they cross at t = 40
    tracker = FaceTracker(TrackerOptions())
    ids_a, ids_b = set(), set()
    for i in range(n):
        dets = [detection(a[i], rng), detection(b[i], rng)]
        if i % 2:
            dets.reverse()  # detection order must not matter
        for f in tracker.update(i, dets):
            centre = f.landmarks.mean(axis=0) - OFFSETS.mean(axis=0)
            (ids_a if np.linalg.norm(centre - a[i]) < np.linalg.norm(centre - b[i]) else ids_b).add(f.track_id)
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b


def test_detect_every_k_frames_is_bridged_by_prediction():
    rng = np.random.default_rng(3)
    n, k = 120, 4
    centres = sinusoid_path(n, period=90, vx=3.0, vy=1.0)
    truth = centres[:, None, :] + OFFSETS
    opts = TrackerOptions()
    tracker, smoother = FaceTracker(opts), FixedLagSmoother(opts)
    est, hold, smooth = [], [], {}
    for i in range(n):
        dets = [detection(centres[i], rng)] if i % k == 0 else None
        faces = tracker.update(i, dets)
        collect(smoother.push(i, dets), smooth)
        if i >= k:  # confirmed at the second detection, then shown on every frame
            assert [f.track_id for f in faces] == [0]
            est.append(faces[0].landmarks)
            hold.append(hold[-1] if dets is None else dets[0].landmarks)
        elif dets is not None:
            hold = [dets[0].landmarks]
    collect(smoother.flush(), smooth)
    est, hold, g = np.stack(est)[20:], np.stack(hold[1:])[20:], truth[k + 20 :]
    s = np.stack([smooth[i][0].landmarks for i in range(k + 20, n)])
    # Measured: offset 3.1 px predicted vs 4.2 holding the last detection; jitter 1.6 vs 3.2 px;
    # the fixed-lag smoother: 1.6 px and 0.36 px.
    assert mean_offset(est, g) < 0.85 * mean_offset(hold, g)
    assert landmark_jitter(est, g) < 0.6 * landmark_jitter(hold, g)
    assert mean_offset(s, g) < 2.0 and landmark_jitter(s, g) < 0.2 * landmark_jitter(hold, g)


def test_detect_every_5_keeps_one_track_through_turns():
    """With the stage's settings (constant acceleration, innovation gate) and a detection every 5 frames, a face
    that turns (peak 8 px/frame, reversing every 18 frames) stays one track: between detections the prediction can
    drift past the gate at a turn, so association also tries the track's last detection. (Before: a new id at
    most turns, and the smoothing restarted with it.)"""
    from vidrestore.faces.stage import FaceOptions, tracker_options

    rng = np.random.default_rng(5)
    n, k = 150, 5
    t = np.arange(n)
    centres = np.stack([320 + 45 * np.sin(2 * np.pi * t / 36), 240 + 10 * np.cos(2 * np.pi * t / 30)], axis=1)
    tracker = FaceTracker(tracker_options(FaceOptions(detect_every=k)))
    ids = set()
    for i in range(n):
        faces = tracker.update(i, [detection(centres[i], rng, sigma=1.0)] if i % k == 0 else None)
        ids |= {f.track_id for f in faces}
    assert ids == {0}, ids


def test_short_miss_gap_keeps_the_track_and_long_one_ends_it():
    rng = np.random.default_rng(4)
    opts = TrackerOptions(max_misses=3, coast=1)
    tracker = FaceTracker(opts)
    c = np.array([300.0, 200.0])
    for i in range(10):
        assert len(tracker.update(i, [detection(c, rng)])) == (1 if i >= 1 else 0)
    # three misses (detector ran, found nothing): survives, shown only while coasting (1 miss)
    shown = [len(tracker.update(i, [])) for i in range(10, 13)]
    assert shown == [1, 0, 0]
    assert tracker.active_ids == [0]
    assert [f.track_id for f in tracker.update(13, [detection(c, rng)])] == [0]
    # four misses end it; the face coming back is a new track with a new id
    for i in range(14, 18):
        tracker.update(i, [])
    assert tracker.active_ids == []
    tracker.update(18, [detection(c, rng)])
    assert [f.track_id for f in tracker.update(19, [detection(c, rng)])] == [1]


def test_max_age_ends_a_track_that_is_never_detected_again():
    rng = np.random.default_rng(5)
    tracker = FaceTracker(TrackerOptions(max_age=10))
    for i in range(3):
        tracker.update(i, [detection(np.array([300.0, 200.0]), rng)])
    for i in range(3, 13):
        assert len(tracker.update(i, None)) == 1
    assert tracker.update(13, None) == []


def test_reset_on_cut_gives_new_ids_and_false_positives_get_none():
    rng = np.random.default_rng(6)
    tracker = FaceTracker(TrackerOptions(min_hits=2))
    c = np.array([300.0, 200.0])
    tracker.update(0, [detection(np.array([50.0, 60.0]), rng)])  # a one-frame false positive
    for i in range(1, 5):
        faces = tracker.update(i, [detection(c, rng)])
    assert [f.track_id for f in faces] == [0]
    tracker.reset()
    tracker.update(0, [detection(c, rng)])  # indices may restart after a reset
    assert [f.track_id for f in tracker.update(1, [detection(c, rng)])] == [1]
    with pytest.raises(ValueError):
        tracker.update(1, None)


def test_box_follows_the_landmarks():
    rng = np.random.default_rng(7)
    tracker = FaceTracker(TrackerOptions())
    for i in range(30):
        c = np.array([200.0 + 3 * i, 200.0])
        faces = tracker.update(i, [detection(c, rng, sigma=0.5)])
    assert box_iou(faces[0].box, np.array([c[0] - 50, c[1] - 50, c[0] + 50, c[1] + 50]))[0, 0] > 0.9


# ------------------------------------------------------------------------------------------ smoother protocol


def test_fixed_lag_outputs_every_frame_once_in_order():
    rng = np.random.default_rng(8)
    opts = TrackerOptions(lag=6, min_hits=2, max_misses=3)
    smoother = FixedLagSmoother(opts)
    out: dict[int, list[Face]] = {}
    order: list[int] = []
    c = np.array([300.0, 200.0])
    for i in range(70):
        if i < 10 or 40 <= i < 50:
            dets = []  # no face
        elif 20 <= i < 23:
            dets = []  # a 3-frame detector miss inside the lag window
        elif i % 2:
            dets = None  # detect every other frame
        else:
            dets = [detection(c + [i, 0.0], rng)]
        ready = smoother.push(i, dets, is_cut=(i == 55))
        if i == 55:
            assert [idx for idx, _ in ready] == list(range(49, 55))  # the cut flushes the pending frames
        order += collect(ready, out)
        if i < opts.lag:
            assert ready == []
    order += collect(smoother.flush(), out)
    assert order == list(range(70))
    assert all(out[i] == [] for i in list(range(10)) + list(range(40, 50)) + [55])
    # the face comes back at 50 (a new track), the cut at 55 (no detection that frame) ends it; the next
    # detection at 56 starts another track, new id, shown from its first frame
    assert all([f.track_id for f in out[i]] == [1] for i in range(50, 55))
    assert all([f.track_id for f in out[i]] == [2] for i in range(56, 70))
    # the track's first frame (tentative then) is shown, since it was confirmed within the lag
    assert [f.track_id for f in out[10]] == [0]
    # the detector misses at 20-22 are bridged (a later detection supports them), smoothly
    assert all([f.track_id for f in out[i]] == [0] for i in range(10, 40))
    xs = np.array([out[i][0].landmarks[:, 0].mean() for i in range(12, 38)])
    assert np.abs(xs - (c[0] + np.arange(12, 38) + OFFSETS[:, 0].mean())).max() < 3.0
    # after the face leaves at 40 (misses only), those frames stay empty; coasting over the undetected
    # frame 39 is allowed (no miss since the last detection at 38)
    assert [f.track_id for f in out[39]] == [0]
    assert smoother.flush() == []


def test_causal_mode_passes_frames_straight_through():
    rng = np.random.default_rng(9)
    smoother = FixedLagSmoother(TrackerOptions(causal=True, lag=6))
    for i in range(10):
        ready = smoother.push(i, [detection(np.array([300.0, 200.0]), rng)])
        assert [idx for idx, _ in ready] == [i]
    assert smoother.flush() == []


# ------------------------------------------------------------------------------------------ scene cuts


def _scene(seed: int, h: int = 360, w: int = 1000) -> np.ndarray:
    """A synthetic shot with natural-image statistics: 1/f noise per channel, contrast 0.22, uint8 RGB,
    wider than the frame so it can pan."""
    rng = np.random.default_rng(seed)
    f = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :])
    f[0, 0] = 1.0
    img = np.empty((h, w, 3))
    for ch in range(3):
        spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f
        spec[0, 0] = 0.0
        img[..., ch] = np.fft.irfft2(spec, s=(h, w))
    img = (img - img.mean()) / img.std() * 0.22 * 255 + 128
    return np.clip(img, 0, 255).astype(np.uint8)


def test_scene_cut_fires_on_a_cut_and_not_on_smooth_motion():
    a, b = _scene(1), _scene(2)  # same mean and contrast: the hardest kind of cut for this score
    for speed in (7, 20):  # px/frame pans of a 640×360 frame
        frames = [a[:, speed * i : speed * i + 640] for i in range(8)] + [b[:, speed * i : speed * i + 640] for i in range(8)]
        thumbs = [small_grey(f) for f in frames]
        assert thumbs[0].shape == (36, 64) and thumbs[0].dtype == np.float32
        scores = [scene_cut_score(p, q) for p, q in zip(thumbs[:-1], thumbs[1:])]
        cuts = [is_scene_cut(p, q) for p, q in zip(thumbs[:-1], thumbs[1:])]
        assert cuts == [i == 7 for i in range(15)]
        assert scores[7] > 1.4 * DEFAULT_CUT_THRESHOLD
        if speed == 7:
            assert max(s for i, s in enumerate(scores) if i != 7) < DEFAULT_CUT_THRESHOLD / 2
    # a plain mean-abs-diff would not separate them: 7 px/frame already costs a third of a cut
    moving = np.abs(small_grey(a[:, 7:647]) - small_grey(a[:, :640])).mean()
    cut = np.abs(small_grey(b[:, :640]) - small_grey(a[:, :640])).mean()
    assert moving > cut / 3


def test_fast_pans_are_explained_by_motion_and_cuts_are_not():
    """Pans of 2–3.5 thumbnail pixels a frame (20–35 px of a 640-wide frame) pass scene_cut_score's threshold, but
    the motion-compensated second test explains them; the hardest cut (same statistics) fails both."""
    a, b = _scene(1, w=1300), _scene(2, w=1300)
    for speed in (25, 30, 35):
        frames = [shot[:, speed * i : speed * i + 640] for shot in (a, b) for i in range(8)]
        thumbs = [small_grey(f) for f in frames]
        pairs = list(zip(thumbs[:-1], thumbs[1:]))
        assert max(scene_cut_score(p, q) for p, q in pairs) > DEFAULT_CUT_THRESHOLD  # the first test alone would cut
        mc = [motion_compensated_score(p, q) for p, q in pairs]
        assert max(s for i, s in enumerate(mc) if i != 7) < 0.6 * mc[7], (speed, np.round(mc, 4))
        assert [is_scene_cut(p, q) for p, q in pairs] == [i == 7 for i in range(15)], speed


def test_small_grey_is_an_area_mean():
    img = np.zeros((72, 128, 3), np.uint8)
    img[:, 64:] = 255
    thumb = small_grey(img)
    assert np.allclose(thumb[:, :32], 0) and np.allclose(thumb[:, 32:], 1.0, atol=1e-6)
    with pytest.raises(ValueError):
        small_grey(np.zeros((10, 10, 3), np.uint8))


def test_tracker_state_stays_bounded_as_many_tracks_come_and_go():
    """200 faces, each seen for 10 frames then gone: the tracker and the smoother keep only recent tracks."""
    rng = np.random.default_rng(6)
    opts = TrackerOptions(lag=6)
    smoother = FixedLagSmoother(opts)
    sizes, ids = [], set()
    for i in range(200 * 20):
        k, phase = divmod(i, 20)
        centre = np.array([150.0 + 200 * (k % 2), 200.0])
        for _, faces in smoother.push(i, [detection(centre, rng)] if phase < 10 else []):
            ids.update(f.track_id for f in faces)
        tracker = smoother.tracker
        sizes.append(len(tracker._tracks) + len(tracker._ended) + len(smoother._pending))
        assert all(len(t.history) <= opts.lag + 1 for t in tracker._tracks + tracker._ended)
    assert len(ids) == 200
    assert max(sizes) <= opts.lag + 3, max(sizes)


def test_small_grey_by_bands_equals_the_whole_frame_at_once():
    """small_grey converts one band of thumbnail rows at a time (a 24 MP photo never becomes a full float image);
    the thumbnail is exactly the one of converting the whole frame, so scene cuts in videos are unchanged."""

    def whole(frame, size=(64, 36)):
        grey = frame.astype(np.float32)[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0
        rows = np.linspace(0, grey.shape[0], size[1] + 1).astype(int)
        cols = np.linspace(0, grey.shape[1], size[0] + 1).astype(int)
        sums = np.add.reduceat(np.add.reduceat(grey, rows[:-1], axis=0), cols[:-1], axis=1)
        return (sums / (np.diff(rows)[:, None] * np.diff(cols)[None, :])).astype(np.float32)

    rng = np.random.default_rng(3)
    for shape in [(36, 64, 3), (240, 320, 3), (481, 719, 3), (1080, 1920, 3), (2000, 3000, 3)]:
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
        assert np.array_equal(small_grey(frame), whole(frame)), shape
