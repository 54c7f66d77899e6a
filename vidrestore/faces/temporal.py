"""Temporal stability of restored faces: motion-weighted blending, fixed noise per track, a flicker metric.

Blending happens per track in aligned space (the 512×512 crop the restorer returns), before paste-back::

    blender = TemporalBlender(TemporalOptions(strength=0.5))
    noise = TrackNoise(base_seed=0, device=device)
    ...
    restored = restorer(aligned, noise=noise.for_tracks([f.track_id for f in faces]))   # fixed noise per track
    out = blender.blend(face.track_id, restored_crop, face.landmarks, frame_index)     # per face
    ...
    on a scene cut: blender.reset(); noise.reset()        on a track's end: blender.forget(id); noise.forget(id)

The blend is an exponential moving average ``out = cur + w·(prev_out − cur)`` with
``w = blend_weight(motion_between(prev_landmarks, landmarks), strength, options)``: ``w = strength``
while the face is still, falling smoothly to 0 at ``motion_none`` aligned-crop pixels per frame. A
per-pixel gate lowers ``w`` where the face changed (a mouth opening, an eye blinking: the 5 landmarks do not
see those), so changes of expression do not ghost:

* given the aligned **input** crop (``blend(..., source=crop_in)``, what the file pipeline does), the gate
  compares the input with the average of the inputs the blended output stands for (blurred, signed: noise
  averages out): the restorer's own flicker is averaged where the input did not change, and nothing is
  averaged where it did, however slowly (:func:`source_gate`). Measured (bench/stability.py --flicker,
  identity restorer on a clip whose mouth opens and closes): the mouth region of the output stays as close to
  the input as on a clip without mouth movement (1.15 vs 1.32 levels, at worst 1.53), where gating on the
  output's own change (the older rule, below) let the mouth lag by 3.6 levels on average, 6.2 at worst; with
  GFPGAN (synthetic weights) the output flickers 0.60–0.65× as much as the input (0.68–0.72× unblended);
* without it (live preview), where the new crop differs a lot from the previous output (``pixel_gate``).

Motion compensation (``compensate``, on by default, input-gated mode): the aligned crop of a moving face still
moves a little (the smoothed landmarks are ~1 frame px off, ~3 px in a 512 crop of a 76 px face), so before the
gate and the average the state is moved onto this frame's input by the rotation and shift that ECC finds between
the averaged input and this one (:func:`residual_motion`, 128 px grey, ~15 ms). Without it the gate closed on every
edge of a slowly drifting face (20–40 % of the face region) and the restorer's flicker stayed there.

A restorer declares how hard its output must be held (:class:`TemporalProfile`, ``restorer.temporal``). CodeFormer
redraws its codebook texture on the least change of the input, so it holds at 0.95 with a wider gate (0.02–0.05),
and its held crop is low-passed before the paste (``paste_antialias``): facexlib's paste shrinks the 512 crop ~3.4×
without a low-pass, so a held fine texture on a drifting face aliases (a frozen CodeFormer crop pasted back
measured 2.15× the input's flicker). Measured (bench/stability.py --flicker, synthetic weights, 20-frame 256 px
clips; flicker of the output ÷ the input's): CodeFormer unblended 7.65× (drifting), 6.60× (mouth moving), 10.4×
(still, 2-level sensor noise); at 0.8 as before 2.60×, 2.08×, 1.82×; with its profile 1.07×, 0.89×, 0.50×. The
price, with the identity restorer under that profile: the mouth region differs from the input by 3.9 levels (mean;
0.7 unblended, 1.3 at GFP-GAN's 0.5), the same with or without the mouth moving (no ghost: the gate opens where it
moves), 2.4 of them the low-pass's softening. GFP-GAN keeps 0.5 and facexlib's paste (0.63×, 0.56×, 0.25×).

On a perfectly still face the EMA leaves ``(1−w)²/(1+w)`` of the frame-to-frame noise variance
(w = 0.5: 0.41× the frame-to-frame difference).

Motion unit (:func:`motion_between`): the mean landmark displacement between two frames, in frame pixels,
scaled into aligned-crop pixels by the current alignment scale (the ratio of the FFHQ template's spread
to the landmarks' spread). So the thresholds mean the same for a close-up and a small face: 1 aligned
pixel of a 512 crop is ≈ 0.2 frame pixels of a 100 px face.

No module-level mutable state: the stateful pieces are small objects owned by the pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from .align import FFHQ_TEMPLATE_512
from .noise import GFPGAN_NOISE_RESOLUTIONS, TrackNoise  # re-exported: the pipeline imports them from here

__all__ = [
    "FFHQ_TEMPLATE_512",
    "GFPGAN_NOISE_RESOLUTIONS",
    "TemporalBlender",
    "TemporalOptions",
    "TemporalProfile",
    "TrackNoise",
    "blend_weight",
    "residual_motion",
    "source_gate",
    "face_region_mask",
    "face_temporal_difference",
    "motion_between",
]


@dataclass(frozen=True)
class TemporalOptions:
    """Temporal blending settings.

    ``strength`` (0…1): EMA weight of the previous output while the face is still (1 keeps the first
    restored crop of a perfectly still face). ``motion_full`` / ``motion_none``: aligned-crop pixels per
    frame (see :func:`motion_between`) up to which the full weight applies / from which no blending happens.
    ``crop_size``: side of the aligned crop the motion is expressed in. ``pixel_gate`` (lo, hi) as
    fractions of the value range, or None: per pixel, the weight falls linearly from full at a
    channel-mean difference ``lo`` to 0 at ``hi`` between the new crop and the previous output.
    ``float_range``: the span of float inputs (2.0 for GFP-GAN's [-1, 1]; uint8 inputs use 255).
    ``gate``: ``"input"`` gates on the aligned input crop when :meth:`TemporalBlender.blend` is given it
    (``source=``), ``"output"`` always on the output's own change (``pixel_gate``; the older rule, kept to measure).
    ``source_gate`` (lo, hi) and ``gate_blur``: for :meth:`TemporalBlender.blend` given the aligned input crop
    (``source=``): per pixel the weight falls from full at an input change ``lo`` (fraction of the range; the
    channel-mean difference, box-blurred over ``gate_blur`` px before its magnitude is taken, so noise averages
    out) to 0 at ``hi``, between this frame's input crop and the average of the inputs the blended output
    stands for. See :func:`source_gate`. ``compensate``: in that mode, move the state onto this frame's input by
    the residual motion between the inputs first (see the module docstring).
    """

    enabled: bool = True
    strength: float = 0.5
    motion_full: float = 4.0
    motion_none: float = 24.0
    crop_size: int = 512
    pixel_gate: tuple[float, float] | None = (0.08, 0.24)
    float_range: float = 2.0
    gate: str = "input"
    source_gate: tuple[float, float] = (0.01, 0.03)
    gate_blur: int = 7
    compensate: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"TemporalOptions: strength must be in [0, 1], got {self.strength}")
        if not 0.0 <= self.motion_full < self.motion_none:
            raise ValueError("TemporalOptions: need 0 <= motion_full < motion_none")
        if self.pixel_gate is not None and not 0.0 <= self.pixel_gate[0] < self.pixel_gate[1]:
            raise ValueError("TemporalOptions: pixel_gate needs 0 <= lo < hi")
        if self.gate not in ("input", "output"):
            raise ValueError(f"TemporalOptions: gate must be 'input' or 'output', got {self.gate!r}")
        if not 0.0 <= self.source_gate[0] < self.source_gate[1] or self.gate_blur < 1:
            raise ValueError("TemporalOptions: source_gate needs 0 <= lo < hi, gate_blur >= 1")
        if self.crop_size <= 0 or self.float_range <= 0:
            raise ValueError("TemporalOptions: crop_size and float_range must be > 0")


@dataclass(frozen=True)
class TemporalProfile:
    """How much a restorer's output needs holding over time, declared by the restorer (``restorer.temporal``): the
    blend's ``strength`` while the face is still, its input gate ``source_gate`` (see :class:`TemporalOptions`), and
    ``paste_antialias``: the restored crop is low-passed (Gaussian, sigma = ``paste_antialias`` × sqrt(s² − 1) crop
    px for a paste that shrinks it s times) before the paste-back, where blending is on, so a texture held still on
    a moving face does not alias (faces/paste.py :func:`antialias_crop`); 0: facexlib's unfiltered paste."""

    strength: float = 0.5
    source_gate: tuple[float, float] = (0.01, 0.03)
    paste_antialias: float = 0.0


# --------------------------------------------------------------------------------------------- maths


def _rms_spread(points: np.ndarray) -> float:
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return float(np.sqrt(((p - p.mean(axis=0)) ** 2).sum(axis=1).mean()))


def motion_between(landmarks_prev: np.ndarray, landmarks_cur: np.ndarray, crop_size: int = 512) -> float:
    """Mean landmark displacement from ``landmarks_prev`` to ``landmarks_cur`` (5, 2 frame pixels), in
    aligned-crop pixels of a ``crop_size`` crop (scaled by template spread / current landmark spread)."""
    prev = np.asarray(landmarks_prev, dtype=np.float64).reshape(5, 2)
    cur = np.asarray(landmarks_cur, dtype=np.float64).reshape(5, 2)
    spread = _rms_spread(cur)
    if spread <= 1e-6:
        return float("inf")
    scale = _rms_spread(np.array(FFHQ_TEMPLATE_512)) * (crop_size / 512.0) / spread
    return float(np.linalg.norm(cur - prev, axis=1).mean() * scale)


def blend_weight(motion_px: float, strength: float, opts: TemporalOptions) -> float:
    """EMA weight of the previous output: ``strength`` up to ``motion_full``, a smoothstep down to 0 at
    ``motion_none`` and 0 beyond (non-increasing in motion; 0 for NaN motion)."""
    if not np.isfinite(motion_px) or motion_px >= opts.motion_none:
        return 0.0
    if motion_px <= opts.motion_full:
        return float(strength)
    u = (motion_px - opts.motion_full) / (opts.motion_none - opts.motion_full)
    return float(strength * (1.0 - u * u * (3.0 - 2.0 * u)))


def face_region_mask(height: int = 512, width: int = 512) -> np.ndarray:
    """Boolean (H, W) ellipse covering the face in an FFHQ-aligned crop (centre (0.5, 0.56), radii (0.3, 0.36))."""
    y, x = np.mgrid[0:height, 0:width]
    u = ((x + 0.5) / width - 0.5) / 0.30
    v = ((y + 0.5) / height - 0.56) / 0.36
    return (u * u + v * v) <= 1.0


def _as_hwc_array(crop: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(crop, torch.Tensor):
        t = crop.detach().to("cpu", torch.float32)
        if t.ndim == 4:
            t = t[0]
        return t.permute(1, 2, 0).numpy()
    return np.asarray(crop, dtype=np.float32)


def face_temporal_difference(
    crops_seq: Sequence[np.ndarray | torch.Tensor] | np.ndarray, mask: np.ndarray | None = None
) -> float:
    """Flicker metric: mean absolute difference of consecutive aligned crops over the face region.

    ``crops_seq``: T crops (H, W, 3) numpy (or (3, H, W) / (1, 3, H, W) tensors), all of one size; the
    result is in the crops' own units (0–255 for uint8). ``mask``: boolean (H, W); default
    :func:`face_region_mask`. Fewer than two crops give 0.0.
    """
    crops = [_as_hwc_array(c) for c in crops_seq]
    if len(crops) < 2:
        return 0.0
    h, w = crops[0].shape[:2]
    m = face_region_mask(h, w) if mask is None else np.asarray(mask, dtype=bool)
    diffs = [float(np.abs(b[m] - a[m]).mean()) for a, b in zip(crops[:-1], crops[1:])]
    return float(np.mean(diffs))


# --------------------------------------------------------------------------------------------- blending


def residual_motion(prev_src: np.ndarray, src: np.ndarray, size: int = 128) -> np.ndarray | None:
    """The affine (2, 3) that moves ``prev_src`` onto ``src`` (aligned input crops of one size, any value range),
    a rotation and shift found by ECC on grey copies ``size`` px wide inside the face ellipse; None where it does not converge or moves
    more than an eighth of the crop (then nothing is compensated)."""
    h, w = src.shape[:2]
    grey = [cv2.resize(np.asarray(c, np.float32).mean(axis=-1), (size, size), interpolation=cv2.INTER_AREA)
            for c in (prev_src, src)]
    mask = face_region_mask(size, size).astype(np.uint8)
    warp = np.eye(2, 3, dtype=np.float32)
    try:
        _, warp = cv2.findTransformECC(grey[1], grey[0], warp, cv2.MOTION_EUCLIDEAN,
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4), mask, 3)
    except cv2.error:
        return None
    warp = warp.astype(np.float64)
    warp[:, 2] *= w / size  # ECC's map: current pixel -> previous pixel, at ``size``; to full size
    if not np.all(np.isfinite(warp)) or np.abs(warp[:, 2]).max() > w / 8 or np.abs(warp[:, :2] - np.eye(2)).max() > 0.1:
        return None
    return warp


def _follow(state: np.ndarray, warp: np.ndarray | None) -> np.ndarray:
    """``state`` resampled where ``warp`` (current pixel -> state pixel) says (bicubic: repeated warps stay sharp)."""
    if warp is None:
        return state
    h, w = state.shape[:2]
    return cv2.warpAffine(state, warp, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def source_gate(src: np.ndarray, prev_src: np.ndarray, value_range: float, opts: TemporalOptions) -> np.ndarray:
    """Per-pixel blend gate (H, W, 1) in [0, 1] from how far the aligned input crop ``src`` is from ``prev_src``
    (the average of the inputs the blended output stands for): 1 where the input stayed (flicker there is the
    restorer's own), falling to 0 where it changed by ``source_gate[1]`` (a mouth opening, an eye closing: the
    output must change with it, no ghost)."""
    lo, hi = opts.source_gate
    d = (src - prev_src).mean(axis=-1)
    if opts.gate_blur > 1:  # signed, then blurred: grain and alignment noise average out, a real change stays
        d = cv2.blur(d, (opts.gate_blur, opts.gate_blur))
    d = np.abs(d) / value_range
    return np.clip((hi - d) / (hi - lo), 0.0, 1.0).astype(np.float32)[..., None]


@dataclass
class _TrackState:
    prev: np.ndarray | torch.Tensor  # float32 numpy (uint8 input) or the input's tensor dtype
    landmarks: np.ndarray
    frame_index: int | None
    source: np.ndarray | None = None  # input-gated mode: the average of the inputs ``prev`` stands for (float32)


@dataclass
class TemporalBlender:
    """Per-track EMA of restored aligned crops, weighted by motion (see the module docstring).

    ``blend`` accepts an RGB crop as numpy (H, W, 3) (uint8 or float) or a float tensor (3, H, W) /
    (N, 3, H, W) on any device, and returns the same kind. A track's first crop, a crop after a gap in
    ``frame_index``, or a crop of another shape starts its state afresh and comes back unchanged.
    """

    options: TemporalOptions = field(default_factory=TemporalOptions)
    _state: dict[int, _TrackState] = field(default_factory=dict, init=False, repr=False)

    def blend(
        self,
        track_id: int,
        crop: np.ndarray | torch.Tensor,
        landmarks: np.ndarray,
        frame_index: int | None = None,
        source: np.ndarray | None = None,
    ) -> np.ndarray | torch.Tensor:
        opts = self.options
        if not opts.enabled:
            return crop
        if source is not None and opts.gate == "input":
            return self._blend_gated(track_id, np.asarray(crop), np.asarray(source), landmarks, frame_index)
        lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2).copy()
        is_tensor = isinstance(crop, torch.Tensor)
        cur = crop.detach() if is_tensor else np.asarray(crop).astype(np.float32)
        st = self._state.get(track_id)
        fresh = (
            st is None
            or isinstance(st.prev, torch.Tensor) != is_tensor
            or tuple(st.prev.shape) != tuple(cur.shape)
            or (is_tensor and (st.prev.device != cur.device or st.prev.dtype != cur.dtype))
            or (frame_index is not None and st.frame_index is not None and frame_index != st.frame_index + 1)
        )
        if fresh:
            self._state[track_id] = _TrackState(cur.clone() if is_tensor else cur, lm, frame_index)
            return crop
        w = blend_weight(motion_between(st.landmarks, lm, opts.crop_size), opts.strength, opts)
        if is_tensor:
            out = self._blend_tensor(cur, st.prev, w)
        else:
            out = self._blend_array(cur, st.prev, w, 255.0 if np.asarray(crop).dtype == np.uint8 else opts.float_range)
        self._state[track_id] = _TrackState(out, lm, frame_index)
        if is_tensor:
            return out.clone()  # the state must not alias what the caller may modify
        if np.asarray(crop).dtype == np.uint8:
            return np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return out.astype(np.asarray(crop).dtype)

    def _blend_gated(
        self, track_id: int, crop: np.ndarray, source: np.ndarray, landmarks: np.ndarray, frame_index: int | None
    ) -> np.ndarray:
        """The EMA of restored crops, gated off per pixel where the input differs from what the average stands for."""
        opts = self.options
        lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2).copy()
        value_range = 255.0 if crop.dtype == np.uint8 else opts.float_range
        src = source.astype(np.float32)
        out = crop.astype(np.float32)
        cur = out
        st = self._state.get(track_id)
        fresh = (
            st is None
            or st.source is None
            or st.prev.shape != out.shape
            or (frame_index is not None and st.frame_index is not None and frame_index != st.frame_index + 1)
        )
        src_avg = src
        w = 0.0 if fresh else blend_weight(motion_between(st.landmarks, lm, opts.crop_size), opts.strength, opts)
        if w > 0.0:
            # the state follows what is left of the face's motion in aligned space, then the gate compares this
            # input with the input the average stands for (its own average): so the output never stands for a
            # mouth or an eye the input no longer shows, however slow the change
            warp = residual_motion(st.source, src) if opts.compensate else None
            prev, prev_src = _follow(st.prev, warp), _follow(st.source, warp)
            g = w * source_gate(src, prev_src, value_range, opts)
            cur = cur + g * (prev - cur)
            src_avg = src + g * (prev_src - src)
        out = cur
        self._state[track_id] = _TrackState(cur, lm, frame_index, src_avg)
        if crop.dtype == np.uint8:
            return np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return out.astype(crop.dtype)

    def _blend_array(self, cur: np.ndarray, prev: np.ndarray, w: float, value_range: float) -> np.ndarray:
        if w <= 0.0:
            return cur
        gate = self.options.pixel_gate
        if gate is None:
            return cur + np.float32(w) * (prev - cur)
        d = np.abs(cur - prev).mean(axis=-1, keepdims=True) / value_range
        g = np.clip((gate[1] - d) / (gate[1] - gate[0]), 0.0, 1.0).astype(np.float32)
        return cur + (np.float32(w) * g) * (prev - cur)

    def _blend_tensor(self, cur: torch.Tensor, prev: torch.Tensor, w: float) -> torch.Tensor:
        if w <= 0.0:
            return cur.clone()
        gate = self.options.pixel_gate
        if gate is None:
            return torch.lerp(cur, prev, w)
        d = (cur - prev).abs().mean(dim=-3, keepdim=True) / self.options.float_range
        g = ((gate[1] - d) / (gate[1] - gate[0])).clamp_(0.0, 1.0)
        return cur + (w * g) * (prev - cur)

    def forget(self, track_id: int) -> None:
        """Drop a track's state (its track ended)."""
        self._state.pop(track_id, None)

    def reset(self) -> None:
        """Drop every track's state (scene cut)."""
        self._state.clear()

    @property
    def track_ids(self) -> list[int]:
        return sorted(self._state)
