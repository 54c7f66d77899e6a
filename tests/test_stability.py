"""Temporal stability on real detections (issue 15): the smoother follows real motion, the report is always written.

Clips: skimage's astronaut moved by known affines (bench/stability.py builds them: 256×256, 36 frames), detected
by the trained RetinaFace MobileNet-0.25 of ../shared/reference/real/. The truth is the known affine applied to the
hand-checked reference landmarks.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import stability as bs  # noqa: E402
from media import decoded_frames, within  # noqa: E402

import vidrestore  # noqa: E402
from vidrestore.faces.stage import FaceOptions, tracker_options  # noqa: E402
from vidrestore.faces.motion import TrackerOptions  # noqa: E402
from vidrestore.restorers.codeformer import CodeFormerRestorer  # noqa: E402
from vidrestore.testing import MarkerRestorer  # noqa: E402


@pytest.fixture(scope="module")
def real_detector(shared_ref):
    return bs.load_real_detector()


@pytest.fixture(scope="module")
def detected(real_detector, astronaut, true_landmarks):
    """case -> (clip, detections), detected once per module (~1.5 s a case on this CPU)."""
    cache: dict[str, tuple[bs.Clip, list]] = {}

    def get(case: str):
        if case not in cache:
            clip = bs.make_clip(astronaut, true_landmarks, case)
            cache[case] = (clip, bs.detect_clip(real_detector, clip))
        return cache[case]

    return get


def figures(clip: bs.Clip, dets: list, options: TrackerOptions | None = None, fit: str | None = None):
    """Raw: facexlib's per-frame alignment (LMEDS) on the detections; smoothed: the stage's landmarks aligned with
    ``fit`` (default: the stage's own fit on files)."""
    vis = {i for i in range(len(clip.frames)) if clip.visible[i]}
    raw = {i: v for i, v in bs.raw_landmarks(dets, clip.truth).items() if i in vis}
    smo = {i: v for i, v in bs.smoothed_landmarks(dets, options).items() if i in vis}
    return bs.position_figures(raw, clip.truth), bs.position_figures(smo, clip.truth, fit or bs.stage_fit())


@pytest.mark.parametrize("case", ["smooth", "zoom", "rotate", "entrance", "stop", "start"])
def test_pasted_face_stays_on_the_face_with_half_the_raw_jitter(detected, case):
    clip, dets = detected(case)
    raw, smo = figures(clip, dets)
    assert smo.frames == raw.frames >= 30, (smo.frames, raw.frames)
    assert smo.max_error <= 4.0, (case, smo)
    assert smo.jitter <= 0.5 * raw.jitter, (case, smo.jitter, raw.jitter)
    assert smo.mean_error <= raw.mean_error + 0.25, (case, smo.mean_error, raw.mean_error)


def test_rotation_follows_and_smooths_the_landmarks(detected):
    """On a rotating face the smoothed landmarks jitter < 0.5× the raw ones. Aligned with facexlib's LMEDS the pasted
    position still jitters ~0.6× raw: LMEDS's inlier choice flips between frames, which no landmark smoothing removes;
    so the video stage fits its smoothed landmarks by least squares (~0.2×, the parametrized test above)."""
    assert bs.stage_fit() == "lstsq"
    clip, dets = detected("rotate")
    raw, lmeds = figures(clip, dets, fit="lmeds")
    _, lstsq = figures(clip, dets)
    assert lmeds.max_error <= 4.0, lmeds
    assert lstsq.jitter < 0.7 * lmeds.jitter < raw.jitter, (lstsq.jitter, lmeds.jitter, raw.jitter)
    vis = [i for i in range(len(clip.frames)) if clip.visible[i]]
    smoothed = bs.smoothed_landmarks(dets)
    rawlm = bs.raw_landmarks(dets, clip.truth)
    from vidrestore.faces.report import landmark_jitter

    j_smo = landmark_jitter(np.stack([smoothed[i] for i in vis]), clip.truth[vis])
    j_raw = landmark_jitter(np.stack([rawlm[i] for i in vis]), clip.truth[vis])
    assert j_smo <= 0.5 * j_raw, (j_smo, j_raw)


def test_without_the_gate_an_abrupt_stop_overshoots(detected):
    """What the gate buys: the same smoother without it pastes the stopping face several px past where it stopped."""
    clip, dets = detected("stop")
    ungated = TrackerOptions(**{**tracker_options(FaceOptions()).__dict__, "maneuver_gate": None})
    _, old = figures(clip, dets, ungated)
    _, new = figures(clip, dets)
    assert old.max_error > 6.0 and new.max_error <= 4.0, (old, new)


def test_the_video_stage_fits_by_least_squares_and_photos_keep_facexlibs_lmeds(true_landmarks):
    import cv2

    from vidrestore.errors import UsageError
    from vidrestore.faces.align import FFHQ_TEMPLATE_512, estimate_affine, similarity_lstsq
    from vidrestore.faces.stage import alignment_fit

    assert alignment_fit(FaceOptions()) == "lstsq"  # files: the fixed-lag smoother's landmarks
    assert alignment_fit(FaceOptions(causal=True)) == "lmeds"  # photos (and live): facexlib's fit, for parity
    assert alignment_fit(FaceOptions(align_fit="lmeds")) == "lmeds"
    with pytest.raises(UsageError):
        FaceOptions(align_fit="ransac")
    lm = np.asarray(true_landmarks, np.float64) + np.array([[0, 0], [0, 0], [6, -4], [0, 0], [0, 0]])  # nose moved
    lmeds, _ = cv2.estimateAffinePartial2D(lm.astype(np.float32), FFHQ_TEMPLATE_512, method=cv2.LMEDS)
    assert np.array_equal(estimate_affine(lm), lmeds)  # the default is unchanged
    assert np.allclose(estimate_affine(lm, fit="lstsq"), similarity_lstsq(lm, FFHQ_TEMPLATE_512))


# --------------------------------------------------------------------------------------------- scene cuts


def cut_frames(frames: list[np.ndarray]) -> list[int]:
    """The frames :func:`is_scene_cut` starts a new shot at (compared with the frame before)."""
    from vidrestore.faces.cut import is_scene_cut, small_grey

    thumbs = [small_grey(f) for f in frames]
    return [i for i in range(1, len(thumbs)) if is_scene_cut(thumbs[i - 1], thumbs[i])]


def picture(name: str) -> np.ndarray:
    import cv2
    import skimage.data

    return cv2.resize(getattr(skimage.data, name)(), (bs.SIZE, bs.SIZE), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("case", bs.CASES + ("slow",))
def test_a_moving_face_is_not_a_scene_cut(astronaut, true_landmarks, case):
    """A cut resets tracks, smoothing, noise and blending: a face entering at 12 px/frame or stopping from 10 px/frame
    on a 256-px frame (2.5–3 pixels a frame of the 64×36 thumbnail) must not look like one."""
    assert cut_frames(bs.make_clip(astronaut, true_landmarks, case).frames) == [], case


@pytest.mark.parametrize("other", ["coffee", "chelsea"])
def test_a_hard_cut_between_two_pictures_is_found_on_its_frame(astronaut, true_landmarks, other):
    shot_a = bs.make_clip(astronaut, true_landmarks, "stop").frames[:12]  # moving 10 px/frame up to the cut
    shot_b = [np.roll(picture(other), 3 * i, axis=1) for i in range(10)]  # a panning second shot
    assert cut_frames(shot_a + shot_b) == [12]
    # the same picture reframed elsewhere is a cut too
    moved = bs.make_clip(astronaut, true_landmarks, "smooth").frames
    assert cut_frames(moved[:6] + [np.ascontiguousarray(astronaut[300:, 200:456])] * 3) == [6]


def test_a_fade_is_not_a_storm_of_cuts(astronaut, true_landmarks):
    a = bs.make_clip(astronaut, true_landmarks, "stop").frames[20].astype(np.float32)
    b = picture("coffee").astype(np.float32)
    steps = [k / 12 for k in range(13)]
    dissolve = [a] * 3 + [(1 - u) * a + u * b for u in steps] + [b] * 3
    to_black = [a * (1 - u) for u in steps] + [b * u for u in steps]
    for frames in (dissolve, to_black):
        assert cut_frames([np.clip(f, 0, 255).astype(np.uint8) for f in frames]) == []


# --------------------------------------------------------------------------------------------- through the file door




def write_ffv1(path: Path, frames: list[np.ndarray], fps: int = 24) -> Path:
    with av.open(str(path), "w") as out:
        v = out.add_stream("ffv1", rate=fps)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv444p"
        v.codec_context.time_base = v.time_base = Fraction(1, fps)
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    return path


def marker_centroid(frame: np.ndarray, near: np.ndarray, radius: int = 16) -> np.ndarray:
    x0, y0 = max(int(near[0]) - radius, 0), max(int(near[1]) - radius, 0)
    win = frame[y0 : y0 + 2 * radius, x0 : x0 + 2 * radius].astype(np.float64)
    w = np.clip((np.minimum(win[..., 0], win[..., 2]) - win[..., 1]) / 255.0, 0, None) ** 2
    ys, xs = np.mgrid[0 : win.shape[0], 0 : win.shape[1]]
    return np.array([(w * xs).sum() / w.sum() + x0, (w * ys).sum() / w.sum() + y0])


def test_a_stopping_face_is_pasted_where_it_is(astronaut, true_landmarks, tmp_path):
    """The whole file door on real detections: a marker at the template's nose lands ≤ 4 px from the true nose."""
    clip = bs.make_clip(astronaut, true_landmarks, "stop")
    src = write_ffv1(tmp_path / "stop.mkv", clip.frames)
    out = tmp_path / "out.mkv"
    # 10 px/frame on a 256-px frame is 2.5 pixels a frame of the 64×36 cut thumbnail: the motion-compensated cut
    # test explains it, so the face keeps one track (no false cut resets it) at the default cut threshold
    stats = within(lambda: vidrestore.restore_video(
        src, out, codec="ffv1", detector=str(bs.DETECTOR_PATH), device="cpu", restorer=MarkerRestorer(radius=20),
        parse=False, temporal=False))
    assert stats.frames == len(clip.frames) and stats.tracks == 1 and stats.report["scene_cuts"] == 0
    frames = decoded_frames(out)
    nose = [bs.pasted_points(lm)[2] for lm in clip.truth]
    err = [float(np.linalg.norm(marker_centroid(f, n) - n)) for f, n in zip(frames, nose)]
    assert max(err) <= 4.0, np.round(err, 2)


def test_report_is_written_with_model_none(tmp_path):
    frames = [np.full((64, 96, 3), 20 * i % 255, np.uint8) for i in range(6)]
    src = write_ffv1(tmp_path / "plain.mkv", frames)
    report = tmp_path / "report.json"
    stats = within(lambda: vidrestore.restore_video(src, tmp_path / "out.mkv", model="none", codec="ffv1",
                                                    report=str(report)))
    doc = json.loads(report.read_text())
    assert doc["frames"] == stats.frames == 6 and doc["output"].endswith("out.mkv")


# --------------------------------------------------------------------------------------------- blending


class FlickeryIdentity:
    """The input crop plus fresh noise on every call: a restorer whose own output flickers."""

    def __init__(self, sigma: float = 6.0) -> None:
        self.rng, self.sigma = np.random.default_rng(0), sigma

    def restore(self, faces: np.ndarray, noise=None) -> np.ndarray:
        return np.clip(faces + self.rng.normal(0, self.sigma, faces.shape), 0, 255).astype(np.uint8)


def _run(*args):
    return within(lambda: bs.run_stage(*args), 120.0)


@pytest.fixture(scope="module")
def blink_clips(real_detector, astronaut, true_landmarks):
    det = bs.CachedDetector(real_detector)
    slow = bs.make_clip(astronaut, true_landmarks, "slow", 16)
    mouth = bs.make_clip(astronaut, true_landmarks, "slow", 16, mouth=bs.open_mouth(astronaut, true_landmarks))
    return det, slow, mouth


def test_an_opening_mouth_does_not_ghost(blink_clips):
    """Identity restorer: any difference between output and input at the mouth is the blend's lag. The input-gated
    blend adds none for a mouth that opens and closes (vs the same clip without it); gating on the output's own
    change, as before, let the mouth lag behind."""
    from vidrestore.faces.temporal import TemporalOptions

    det, slow, mouth = blink_clips
    now = TemporalOptions(strength=0.5)
    before = TemporalOptions(strength=0.5, gate="output")
    _, _, still_mean, _ = _run(slow, det, bs.IdentityCrops(), now)
    _, _, now_mean, now_max = _run(mouth, det, bs.IdentityCrops(), now)
    _, _, old_mean, old_max = _run(mouth, det, bs.IdentityCrops(), before)
    assert now_mean <= still_mean + 0.5, (now_mean, still_mean)
    assert now_max <= 3.0 and old_max > now_max + 1.0, (now_max, old_max)


def test_blending_takes_out_the_restorers_own_flicker(blink_clips):
    from vidrestore.faces.temporal import TemporalOptions

    det, slow, _ = blink_clips
    f_in, f_off, _, _ = _run(slow, det, FlickeryIdentity(), None)
    _, f_on, _, _ = _run(slow, det, FlickeryIdentity(), TemporalOptions(strength=0.5))
    # measured 0.76×: on top of the input's own frame-to-frame change (2.7 levels here) the restorer's noise is
    # averaged where the input did not change; 0.8 strength takes it to 0.68× (at more lag on moving details)
    assert f_on <= 0.8 * f_off, (f_in, f_off, f_on)


class TokenFlipper:
    """CodeFormer-like (the thing under test is the blend): the input plus a smooth texture drawn from 16x16 random
    tokens seeded by the crop's bytes, so the least change of the input redraws it (synthetic CodeFormer weights do
    that: their output changes by ~20 levels a frame where the input changes by ~3). Declares CodeFormer's profile."""

    temporal = CodeFormerRestorer.temporal

    def restore(self, faces: np.ndarray, noise=None) -> np.ndarray:
        import cv2
        import hashlib

        out = []
        for f in faces:
            seed = int.from_bytes(hashlib.sha1(f.tobytes()).digest()[:8], "little")
            tokens = np.random.default_rng(seed).normal(0.0, 16.0, (16, 16, 3)).astype(np.float32)
            out.append(np.clip(f + cv2.resize(tokens, (512, 512), interpolation=cv2.INTER_CUBIC), 0, 255))
        return np.stack(out).astype(np.uint8)


def test_a_flicker_prone_restorer_gets_a_stronger_blend(real_detector):
    from vidrestore.faces.stage import FaceStage

    profile = CodeFormerRestorer.temporal
    assert profile.strength == 0.95 and profile.source_gate == (0.02, 0.05) and profile.paste_antialias == 0.5
    opts = FaceStage(real_detector, TokenFlipper(), FaceOptions())._temporal_options()
    assert (opts.strength, opts.source_gate) == (0.95, (0.02, 0.05))
    opts = FaceStage(real_detector, bs.IdentityCrops(), FaceOptions())._temporal_options()
    assert (opts.strength, opts.source_gate) == (0.5, (0.01, 0.03))
    # the option, when given, overrides the strength (the gate and the paste's low-pass stay the restorer's)
    opts = FaceStage(real_detector, TokenFlipper(), FaceOptions(temporal_strength=0.3))._temporal_options()
    assert (opts.strength, opts.source_gate) == (0.3, (0.02, 0.05))


def test_token_flips_are_blended_down_and_the_mouth_still_follows(blink_clips):
    """A restorer whose output is redrawn by every input change (CodeFormer-like): CodeFormer's profile (0.95, a wider
    gate, the paste's low-pass) takes nearly all of that flicker out, below what the input itself flickers; with the
    identity restorer under the same profile, the mouth opening and closing adds no lag over the same clip without
    it (the gate on the input opens where the mouth moves)."""
    from vidrestore.faces.temporal import TemporalOptions

    det, slow, mouth = blink_clips
    profile = TokenFlipper.temporal
    f_in, f_off, _, _ = _run(slow, det, TokenFlipper(), None)
    _, f_before, _, _ = _run(slow, det, TokenFlipper(), TemporalOptions(strength=0.8))
    _, f_on, _, _ = _run(slow, det, TokenFlipper(), profile)
    print("token flips: in", f_in, "off", f_off, "0.8 before", f_before, "profile", f_on)
    assert f_on <= 1.1 * f_in and f_on <= 0.7 * f_before, (f_in, f_off, f_before, f_on)  # measured 0.95x, 0.58x
    _, _, s_mean, s_max = _run(slow, det, bs.IdentityCrops(), profile)
    _, _, g_mean, g_max = _run(mouth, det, bs.IdentityCrops(), profile)
    print("identity at the mouth, |out - in|: no mouth movement", s_mean, s_max, "mouth moving", g_mean, g_max)
    assert g_mean <= s_mean + 0.5 and g_max <= s_max + 1.0, (s_mean, s_max, g_mean, g_max)


class Grating:
    """Returns a fine vertical grating (period 3 crop px: finer than the frame's pixels once pasted) for every face,
    declaring ``temporal``: the thing under test is whether the stage low-passes what it pastes."""

    def __init__(self, profile) -> None:
        self.temporal = profile

    def restore(self, faces: np.ndarray, noise=None) -> np.ndarray:
        row = 128 + 100 * np.sin(2 * np.pi * np.arange(512) / 3.0)
        crop = np.repeat(np.repeat(row[None, :, None], 512, axis=0), 3, axis=2).round().astype(np.uint8)
        return np.repeat(crop[None], len(faces), axis=0)


def test_the_stage_low_passes_what_it_pastes_where_the_restorer_asks_and_blending_is_on(blink_clips):
    from vidrestore.faces.stage import FaceStage
    from vidrestore.faces.temporal import TemporalProfile
    from vidrestore.media.source import Frame

    det, slow, _ = blink_clips

    def face_std(profile, temporal: bool) -> float:
        stage = FaceStage(det, Grating(profile), FaceOptions(parse=False, temporal=temporal, batch_size=4))
        frames = [Frame(i, i, Fraction(1, 24), 1, rgb=f.copy()) for i, f in enumerate(slow.frames[:6])]
        outs = within(lambda: list(stage(frames)), 120.0)
        out = outs[-1]
        x0, y0, x1, y1 = out.meta["faces"][0].box.astype(int)
        cx, cy, r = (x0 + x1) // 2, (y0 + y1) // 2, (x1 - x0) // 5
        return float(out.rgb[cy - r:cy + r, cx - r:cx + r].astype(np.float64).std())

    plain = face_std(TemporalProfile(), True)
    asked = face_std(TemporalProfile(paste_antialias=0.5), True)
    off = face_std(TemporalProfile(paste_antialias=0.5), False)
    print("face-centre std: facexlib's paste", plain, "low-passed", asked, "blending off", off)
    assert plain > 20 and asked < 0.1 * plain, (plain, asked)  # the moire is gone
    assert off > 20  # --temporal off: facexlib's unfiltered paste, as photos get (the moire stays)


# --------------------------------------------------------------------------------------------- batch look-back


def _marker_stage(options, stats, notice, detect_every=1):
    from vidrestore.faces.stage import FaceStage

    stage = FaceStage(bs.load_real_detector(), MarkerRestorer(radius=20),
                      FaceOptions(parse=False, temporal=True, cut_threshold=0.2, detect_every=detect_every))
    stats.stage = stage
    return stage


@pytest.mark.parametrize("every", [1, 5])
def test_batch_segments_give_the_single_run_output(astronaut, true_landmarks, tmp_path, monkeypatch, every):
    """A face moving across a segment boundary: the segmented batch output equals one single-file run (FFV1,
    lossless), because the segment's stage starts LOOKBACK_FRAMES early (and the one before runs LOOKAHEAD_FRAMES
    past its end); without the look-back and look-ahead it does not. With --detect-every 5 the segment detects on
    the same frames as the single run (the cadence follows the frame index: the look-back starts at frame 24)."""
    import functools

    import vidrestore.batch.segments as segments
    from vidrestore.batch import restore_folder

    stage_factory = functools.partial(_marker_stage, detect_every=every)

    clip = bs.make_clip(astronaut, true_landmarks, "smooth", 100)
    folder = tmp_path / "in"
    folder.mkdir()
    write_ffv1(folder / "face.mkv", clip.frames)
    single = tmp_path / "single.mkv"
    stats = vidrestore.RestoreStats(input=folder / "face.mkv", output=single)
    within(lambda: vidrestore.restore_video(folder / "face.mkv", single, codec="ffv1",
                                            stage=stage_factory(None, stats, None)))
    ref = [f.astype(int) for f in decoded_frames(single)]

    def batch(out):
        r = within(lambda: restore_folder(folder, out, stage_factory=stage_factory, model="none", codec="ffv1",
                                          engine="inline", segment_seconds=3))
        assert r.exit_code == 0 and r.files[0].segments == 2  # 100 frames at 24 fps: 0-71, 72-99
        return [f.astype(int) for f in decoded_frames(out / "face.mkv")]

    got = batch(tmp_path / "out")  # segment 2 starts its stage at frame 24: 48 frames of history, not 72
    assert len(got) == len(ref) == 100
    worst = [int(np.abs(a - b).max()) for a, b in zip(got, ref)]
    # measured: identical but for 16 frames after the boundary, ≤ 3 levels on the marker's anti-aliased edge (the
    # Kalman state still remembers, by ~0.01 px, the 24 frames the look-back did not see)
    assert max(worst) <= 4 and np.mean([np.abs(a - b).mean() for a, b in zip(got, ref)]) < 0.01, str(worst)
    monkeypatch.setattr(segments, "LOOKBACK_FRAMES", 0)
    monkeypatch.setattr(segments, "LOOKAHEAD_FRAMES", 0)
    cold = batch(tmp_path / "cold")
    assert max(int(np.abs(a - b).max()) for a, b in zip(cold, ref)) > 20  # tracks restarted at the boundary
