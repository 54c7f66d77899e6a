#!/usr/bin/env python3
"""Temporal stability on real detections: where the face is pasted, how much it jitters, how much it flickers.

Clips are skimage's astronaut moved by known affines (256×256 frames, 36 frames per case); the trained RetinaFace
MobileNet-0.25 of ``../shared/reference/real/`` detects them; the true landmarks are the known affine applied to
the hand-checked reference landmarks. The pasted position of a face is where the FFHQ template's five points land
back in the frame (the inverse of the alignment estimated from the landmarks the stage used); the truth is the
same for the true landmarks. Per case, for the raw detections (aligning on them frame by frame) and for the
stage's smoothed landmarks: the largest and mean position error (px) and the jitter (frame-to-frame change of
the error, :func:`vidrestore.faces.report.landmark_jitter` with truth).

    python bench/stability.py                                  # position table (detector on CPU, ~25 s)
    python bench/stability.py --flicker /tmp/w/GFPGANv1.4.pth  # + flicker, blending on/off (~5 min on 2 cores)
    python bench/stability.py --cases '' --flicker GFPGANv1.4.pth codeformer.pth --cache /tmp/rec   # flicker only
    python bench/stability.py --cases '' --flicker codeformer.pth --clips still --flicker-frames 12 --cache /tmp/rec

Synthetic weights: ``python ../shared/reference/gfpgan/make_weights.py ../shared/reference/gfpgan/gfpgan_v1clean_keys.json
/tmp/w/GFPGANv1.4.pth`` (CodeFormer: ``../shared/reference/codeformer/make_weights_codeformer.py``). One restorer pass
per clip is recorded and replayed for every blending variant (blending runs after the restorer); ``--cache``
keeps the recordings, so a rerun costs seconds (CodeFormer on the CPU: ~10 s a face on 2 busy cores).

The clip builders and metrics are imported by tests/test_stability.py.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vidrestore.faces.align import FFHQ_TEMPLATE_512, estimate_affine, invert_affine  # noqa: E402
from vidrestore.faces.face import Face  # noqa: E402
from vidrestore.faces.report import landmark_jitter  # noqa: E402

SHARED = REPO.parent / "shared" / "reference"
DETECTOR_PATH = SHARED / "real" / "retinaface_mobilenet0.25_trained.pth"
LANDMARKS_PATH = SHARED / "facexlib" / "align_landmarks5_astronaut.npy"

SIZE = 256  # frame side
FRAMES = 36
SCALE = 0.8  # the astronaut's face (~95 px in the 512 image) is ~76 px here
BACKGROUND = 40


# --------------------------------------------------------------------------------------------- clips


def _similarity(scale: float, angle_deg: float, centre_src: np.ndarray, centre_dst: np.ndarray) -> np.ndarray:
    """2×3 affine: rotate by ``angle_deg`` and scale by ``scale`` about ``centre_src``, moved onto ``centre_dst``."""
    a = np.deg2rad(angle_deg)
    lin = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    t = np.asarray(centre_dst, np.float64) - lin @ np.asarray(centre_src, np.float64)
    return np.concatenate([lin, t[:, None]], axis=1)


def face_centre(landmarks: np.ndarray) -> np.ndarray:
    return np.asarray(landmarks, np.float64).reshape(5, 2).mean(axis=0)


def _ease(u: float) -> float:
    return float(np.clip(u, 0.0, 1.0))


def path(case: str, t: int, n: int = FRAMES) -> tuple[float, float, np.ndarray]:
    """(scale, angle°, face centre in the frame) of ``case`` at frame ``t``."""
    mid = np.array([SIZE / 2, SIZE / 2 + 8])
    if case == "still":  # does not move (texture shimmer: only the detector's noise moves the crop)
        return SCALE, 0.0, mid
    if case == "slow":  # drifts a few px (flicker clips)
        return SCALE, 0.0, mid + np.array([6 * np.sin(2 * np.pi * t / 24), 2 * np.cos(2 * np.pi * t / 20)])
    if case == "smooth":  # a sinusoid, up to ~8 px/frame
        return SCALE, 0.0, mid + np.array([45 * np.sin(2 * np.pi * t / 36), 10 * np.cos(2 * np.pi * t / 30)])
    if case == "zoom":  # 0.6 → 1.0 and back
        return SCALE * (1.0 + 0.25 * np.sin(2 * np.pi * t / n)), 0.0, mid
    if case == "rotate":  # ±12°, up to ~2°/frame
        return SCALE, 12.0 * np.sin(2 * np.pi * t / 24), mid
    if case == "entrance":  # enters from the left edge at 12 px/frame, stops at the middle
        x = -20 + 12 * t
        return SCALE, 0.0, np.array([min(x, mid[0]), mid[1]])
    if case == "stop":  # moves at 10 px/frame, stops dead at frame 14
        x = 45 + 10 * min(t, 14)
        return SCALE, 0.0, np.array([x, mid[1]])
    if case == "start":  # still, then moves off at 8 px/frame from frame 18 (abrupt start)
        x = 70 + 8 * max(t - 18, 0)
        return SCALE, 0.0, np.array([x, mid[1]])
    raise ValueError(f"unknown case {case!r}")


CASES = ("smooth", "zoom", "rotate", "entrance", "stop", "start")


@dataclass
class Clip:
    frames: list[np.ndarray]
    truth: np.ndarray  # (T, 5, 2) true landmarks
    visible: np.ndarray  # (T,) bool: the whole face (its landmarks with a margin) is inside the frame


def make_clip(image: np.ndarray, ref_landmarks: np.ndarray, case: str, n: int = FRAMES,
              mouth: Callable[[np.ndarray, int], np.ndarray] | None = None) -> Clip:
    """Render ``case``: ``image`` moved by the known affine of each frame onto a grey ``SIZE``² canvas."""
    ref = np.asarray(ref_landmarks, np.float64).reshape(5, 2)
    c = face_centre(ref)
    frames, truth, visible = [], [], []
    for t in range(n):
        scale, angle, centre = path(case, t, n)
        m = _similarity(scale, angle, c, centre)
        src = image if mouth is None else mouth(image, t)
        canvas = np.full((SIZE, SIZE, 3), BACKGROUND, np.uint8)
        frames.append(cv2.warpAffine(src, m, (SIZE, SIZE), dst=canvas, flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_TRANSPARENT))
        lm = ref @ m[:, :2].T + m[:, 2]
        truth.append(lm)
        margin = 25 * scale
        visible.append(bool((lm.min(0) > margin).all() and (lm.max(0) < SIZE - margin).all()))
    return Clip(frames, np.stack(truth), np.array(visible))


def open_mouth(image: np.ndarray, ref_landmarks: np.ndarray, period: int = 12) -> Callable[[np.ndarray, int], np.ndarray]:
    """A warp that opens and closes the mouth (stretches the lower lip region down, up to 8 px) every ``period``."""
    ref = np.asarray(ref_landmarks, np.float64).reshape(5, 2)
    mouth_c = ref[3:].mean(axis=0)
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = (xx - mouth_c[0]) / 28.0, (yy - mouth_c[1] - 4) / 22.0
    bump = np.exp(-(dx * dx + dy * dy)).astype(np.float32)

    def warp(img: np.ndarray, t: int) -> np.ndarray:
        amount = 8.0 * 0.5 * (1 - np.cos(2 * np.pi * t / period))
        below = np.clip((yy - mouth_c[1] + 2) / 10.0, -1, 1)
        map_y = yy - amount * bump * below
        return cv2.remap(img, xx, map_y.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    return warp


# --------------------------------------------------------------------------------------------- metrics


def pasted_points(landmarks: np.ndarray, fit: str = "lmeds") -> np.ndarray:
    """Where the FFHQ template's five points land in the frame when the face aligned on ``landmarks`` is pasted
    (``fit``: the similarity fit, facexlib's ``"lmeds"`` or ``"lstsq"``, see :func:`estimate_affine`)."""
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    tp = np.asarray(FFHQ_TEMPLATE_512, np.float64).reshape(5, 2)
    inv = invert_affine(estimate_affine(lm, tp, fit))
    return tp @ inv[:, :2].T + inv[:, 2]


def stage_fit() -> str:
    """The similarity fit the face stage aligns with by default on files."""
    from vidrestore.faces.stage import FaceOptions, alignment_fit

    return alignment_fit(FaceOptions())


@dataclass
class PositionFigures:
    max_error: float
    mean_error: float
    jitter: float
    frames: int


def position_figures(landmarks: dict[int, np.ndarray], truth: np.ndarray, fit: str = "lmeds") -> PositionFigures:
    """Error and jitter of the pasted position over the frames in ``landmarks`` (frame → (5, 2)), aligned with
    ``fit``. Jitter runs over consecutive frames only (a gap restarts it)."""
    idx = sorted(landmarks)
    if not idx:
        return PositionFigures(float("nan"), float("nan"), float("nan"), 0)
    est = np.stack([pasted_points(landmarks[i], fit) for i in idx])
    gt = np.stack([pasted_points(truth[i], fit) for i in idx])
    err = np.linalg.norm(est - gt, axis=-1).mean(axis=-1)
    diffs = [np.linalg.norm((est[k] - gt[k]) - (est[k - 1] - gt[k - 1]), axis=-1).mean()
             for k in range(1, len(idx)) if idx[k] == idx[k - 1] + 1]
    return PositionFigures(float(err.max()), float(err.mean()), float(np.mean(diffs)) if diffs else 0.0, len(idx))


# --------------------------------------------------------------------------------------------- running


def load_real_detector():
    from vidrestore.faces.detect import load_detector

    return load_detector(DETECTOR_PATH, device="cpu")


def detect_clip(detector, clip: Clip) -> list[list[Face]]:
    return detector.detect(clip.frames)


def raw_landmarks(dets: list[list[Face]], truth: np.ndarray) -> dict[int, np.ndarray]:
    """Per frame, the detection nearest the true face (frames where nothing was found are left out)."""
    out = {}
    for i, faces in enumerate(dets):
        if faces:
            best = min(faces, key=lambda f: float(np.linalg.norm(f.landmarks - truth[i], axis=-1).mean()))
            out[i] = best.landmarks.astype(np.float64)
    return out


def smoothed_landmarks(dets: list[list[Face]], options=None) -> dict[int, np.ndarray]:
    """The landmarks the face stage would align on (its tracker options), first track only."""
    from vidrestore.faces.stage import FaceOptions, tracker_options
    from vidrestore.faces.smooth import FixedLagSmoother

    smoother = FixedLagSmoother(options or tracker_options(FaceOptions()))
    out: dict[int, np.ndarray] = {}
    ready = []
    for i, faces in enumerate(dets):
        ready += smoother.push(i, faces)
    ready += smoother.flush()
    for i, faces in ready:
        if faces:
            out[i] = faces[0].landmarks.astype(np.float64)
    return out


def position_table(image: np.ndarray, ref: np.ndarray, cases=CASES, options=None) -> list[tuple]:
    detector = load_real_detector()
    rows = []
    for case in cases:
        clip = make_clip(image, ref, case)
        dets = detect_clip(detector, clip)
        vis = {i for i in range(len(clip.frames)) if clip.visible[i]}
        raw = {i: v for i, v in raw_landmarks(dets, clip.truth).items() if i in vis}
        smo = {i: v for i, v in smoothed_landmarks(dets, options).items() if i in vis}
        # raw: facexlib's per-frame alignment (LMEDS); paste: the stage's fit; before: the smoothed landmarks with LMEDS
        r, s = position_figures(raw, clip.truth), position_figures(smo, clip.truth, stage_fit())
        before = position_figures(smo, clip.truth).jitter / max(r.jitter, 1e-9)
        rows.append((case, r, s, before))
    return rows


def _astronaut() -> tuple[np.ndarray, np.ndarray]:
    import skimage.data

    return skimage.data.astronaut(), np.load(LANDMARKS_PATH).astype(np.float64)


# --------------------------------------------------------------------------------------------- flicker


class RecordingRestorer:
    """Wraps a restorer and keeps each restored crop under the hash of its input crop (for :class:`ReplayRestorer`)."""

    def __init__(self, inner) -> None:
        self.inner, self.cache = inner, {}
        if hasattr(inner, "noise_shapes"):
            self.noise_shapes = inner.noise_shapes

    def restore(self, faces: np.ndarray, noise=None) -> np.ndarray:
        out = self.inner.restore(faces, noise=noise) if noise is not None else self.inner.restore(faces)
        for f, o in zip(faces, out):
            self.cache[hashlib.sha1(f.tobytes()).hexdigest()] = o
        return out


class ReplayRestorer:
    """Gives back what a :class:`RecordingRestorer` saw for the same input crop (blending runs after restoring, so
    one restorer pass serves every blending variant). ``misses`` counts crops it had not seen."""

    def __init__(self, cache: dict) -> None:
        self.cache, self.misses = cache, 0

    def restore(self, faces: np.ndarray, noise=None) -> np.ndarray:
        out = []
        for f in faces:
            o = self.cache.get(hashlib.sha1(f.tobytes()).hexdigest())
            self.misses += o is None
            out.append(f if o is None else o)
        return np.stack(out)


class IdentityCrops:
    def restore(self, faces: np.ndarray, noise=None) -> np.ndarray:
        return faces.copy()


class CachedDetector:
    """Detects each chunk once (the stage asks for the same chunks on every run)."""

    def __init__(self, detector) -> None:
        self.detector, self.cache = detector, {}

    def detect(self, frames):
        key = hashlib.sha1(b"".join(np.ascontiguousarray(f).tobytes() for f in frames)).hexdigest()
        if key not in self.cache:
            self.cache[key] = self.detector.detect(frames)
        return copy.deepcopy(self.cache[key])


MOUTH_512 = (slice(330, 420), slice(190, 325))  # the mouth in an FFHQ-aligned 512 crop


def run_stage(clip: Clip, detector, restorer, temporal=None):
    """Run the face stage on ``clip`` (in memory); ``temporal``: a TemporalProfile (what a restorer declares: blend
    strength, gate, paste low-pass), TemporalOptions (the blend alone), or None (blending off).
    Returns (flicker in, flicker out, mouth ghost mean, mouth ghost max): the stage's motion-compensated face-region
    flicker (levels) and, per frame, the mean |output − input| over the mouth of the aligned crops."""
    from fractions import Fraction

    from vidrestore.faces.align import align_face
    from vidrestore.faces.stage import FaceOptions, FaceStage
    from vidrestore.faces.temporal import TemporalProfile
    from vidrestore.media.source import Frame

    class Stage(FaceStage):
        def _profile(self):
            return temporal if isinstance(temporal, TemporalProfile) else super()._profile()

        def _temporal_options(self):
            if temporal is None or isinstance(temporal, TemporalProfile):
                return super()._temporal_options()
            return temporal

    stage = Stage(detector, restorer, FaceOptions(parse=False, temporal=temporal is not None, batch_size=4))
    frames = [Frame(i, i, Fraction(1, 24), 1, rgb=f.copy()) for i, f in enumerate(clip.frames)]
    ghost = []
    for out in stage(frames):
        for face in out.meta.get("faces", []):
            a, _ = align_face(out.rgb, face.landmarks)
            b, _ = align_face(clip.frames[out.index], face.landmarks)
            ghost.append(float(np.abs(a.astype(np.float32) - b)[MOUTH_512].mean()))
    tracks = stage.report.as_dict()["tracks"]
    t = tracks[min(tracks)]
    return t["temporal_diff_input"], t["temporal_diff_output"], float(np.mean(ghost)), float(np.max(ghost))


def blending_variants():
    from vidrestore.faces.temporal import TemporalOptions, TemporalProfile
    from vidrestore.restorers.codeformer import CodeFormerRestorer

    return [
        ("off", None),
        ("EMA 0.5, not compensated (before)", TemporalOptions(strength=0.5, compensate=False)),
        ("EMA 0.5 (default)", TemporalProfile()),
        ("EMA 0.8 (CodeFormer's before)", TemporalProfile(strength=0.8)),
        ("CodeFormer's: 0.95, gate, low-pass", CodeFormerRestorer.temporal),
    ]


FLICKER_CLIPS = ("slow", "still", "mouth")


def flicker_clip(image, ref, name: str, frames: int) -> Clip:
    """``slow``: the astronaut drifting a few px; ``still``: not moving, with a little sensor noise (Gaussian, 2
    levels, seeded; what makes a still face's texture shimmer); ``mouth``: drifting, the mouth opening and closing."""
    if name == "mouth":
        return make_clip(image, ref, "slow", frames, mouth=open_mouth(image, ref))
    clip = make_clip(image, ref, name, frames)
    if name == "still":
        rng = np.random.default_rng(0)
        clip.frames = [np.clip(f + rng.normal(0, 2.0, f.shape), 0, 255).astype(np.uint8) for f in clip.frames]
    return clip


def recorded(recorder_for, clip: Clip, detector, cache: Path | None, key: str) -> dict:
    """The restorer's outputs for ``clip`` (one pass; kept in ``cache/key.pkl`` when given, to replay later)."""
    import pickle

    file = cache / f"{key}.pkl" if cache is not None else None
    if file is not None and file.is_file():
        return pickle.loads(file.read_bytes())
    recorder = RecordingRestorer(recorder_for())
    run_stage(clip, detector, recorder)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(pickle.dumps(recorder.cache))
    return recorder.cache


def flicker_table(image, ref, weights: list[Path], frames: int, clips=FLICKER_CLIPS, cache: Path | None = None,
                  variants=None) -> list[tuple]:
    """Per clip and restorer (``weights``: checkpoints), the flicker with each blending variant, and the identity
    restorer's mouth ghost (the same for every restorer). ``cache``: a folder keeping each restorer pass."""
    from vidrestore.restorers import load_restorer

    detector = CachedDetector(load_real_detector())
    rows = []
    for name in clips:
        clip = flicker_clip(image, ref, name, frames)
        ghosts = {label: run_stage(clip, detector, IdentityCrops(), opts)[2:]
                  for label, opts in variants or blending_variants()}
        for w in weights:
            key = f"{w.stem}_{name}_{frames}"
            outputs = recorded(lambda: load_restorer(w, device="cpu"), clip, detector, cache, key)
            for label, opts in variants or blending_variants():
                replay = ReplayRestorer(outputs)
                f_in, f_out, _, _ = run_stage(clip, detector, replay, opts)
                rows.append((name, w.stem, label, f_in, f_out, *ghosts[label], replay.misses))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--flicker", type=Path, nargs="+", metavar="WEIGHTS.pth",
                    help="also measure flicker with blending on/off with these restorer checkpoints (e.g. the synthetic "
                         "weights: python ../shared/reference/gfpgan/make_weights.py KEYS OUT); GFPGAN ~1 min, "
                         "CodeFormer ~4 min per clip of 20 frames on 2 busy cores")
    ap.add_argument("--flicker-frames", type=int, default=20)
    ap.add_argument("--clips", default=",".join(FLICKER_CLIPS), help="flicker clips: slow, still, mouth")
    ap.add_argument("--cache", type=Path, help="keep each restorer pass here and replay it on the next run")
    args = ap.parse_args(argv)
    image, ref = _astronaut()
    t0 = time.perf_counter()
    rows = position_table(image, ref, [c for c in args.cases.split(",") if c])
    print(f"{'case':10} {'raw max':>8} {'raw mean':>8} {'raw jit':>8} | {'paste max':>9} {'paste mean':>10} "
          f"{'paste jit':>9} {'jit ratio':>9} {'lmeds ratio':>11}")
    for case, r, s, before in rows:
        print(f"{case:10} {r.max_error:8.2f} {r.mean_error:8.2f} {r.jitter:8.2f} | {s.max_error:9.2f} "
              f"{s.mean_error:10.2f} {s.jitter:9.2f} {s.jitter / max(r.jitter, 1e-9):9.2f} {before:11.2f}")
    print(f"(px; raw: aligning on each frame's detection with facexlib's LMEDS fit; paste: the stage's smoothed "
          f"landmarks aligned with its fit ({stage_fit()}); jitter: mean frame-to-frame change of the error; "
          "jit ratio: paste jitter / raw jitter; lmeds ratio: the same if the smoothed landmarks were aligned with "
          "LMEDS)")
    print(f"({time.perf_counter() - t0:.1f} s)")
    if args.flicker:
        t0 = time.perf_counter()
        print(f"\n{'clip':6} {'restorer':12} {'blending':34} {'flicker in':>10} {'out':>6} {'out/in':>6} | "
              f"{'mouth ghost':>11} {'max':>5}")
        for name, rest, label, f_in, f_out, g_mean, g_max, misses in flicker_table(
                image, ref, args.flicker, args.flicker_frames, args.clips.split(","), args.cache):
            note = f"  ({misses} crops not replayed)" if misses else ""
            print(f"{name:6} {rest[:12]:12} {label:34} {f_in:10.2f} {f_out:6.2f} {f_out / max(f_in, 1e-9):6.2f} | "
                  f"{g_mean:11.2f} {g_max:5.2f}{note}")
        print("(flicker: the stage's motion-compensated face-region mean |Δ| between frames, levels; mouth ghost: "
              f"identity restorer, mean |output − input| over the mouth, levels; {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
