"""The motion model of a face track: the tracker's settings, the Kalman transition matrices (constant velocity
or constant acceleration over the 5 landmarks), and the innovation gate that widens the process noise at a
manoeuvre. Pure maths shared by :mod:`.track` (prediction, correction) and :mod:`.smooth` (the RTS pass)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "NDIM", "TrackerOptions", "constant_acceleration_matrices", "constant_velocity_matrices", "gate",
    "maneuver_noise", "motion_matrices", "state_order",
]

NDIM = 10  # 5 landmarks × (x, y)


@dataclass(frozen=True)
class TrackerOptions:
    """Tracker and smoother settings.

    Noises are fractions of the face size (× 100 = pixels at a 100 px face): ``measurement_noise`` the
    landmark noise std, ``process_noise`` the std of the white acceleration per frame. Their ratio sets how
    hard the filter smooths (larger ``process_noise``: less lag, more jitter).
    ``iou_gate`` / ``landmark_gate``: a detection can match a track only if the IoU of the boxes is at
    least ``iou_gate`` and the mean landmark distance is at most ``landmark_gate`` face sizes.
    ``min_hits``: matched detections to confirm a track. ``max_misses``: consecutive misses (frames where
    detection ran and missed) a confirmed track survives. ``max_age``: frames since the last matched
    detection after which a track ends anyway. ``coast``: consecutive misses during which the causal
    output still shows the predicted face. ``lag``: look-ahead of :class:`FixedLagSmoother` in frames;
    ``causal=True`` makes the smoother pass the causal output straight through (lag 0, live preview).
    ``maneuver_gate``: normalized innovation squared of the landmarks' centroid (2 degrees of freedom; 13.8 is
    the 99.9 % point) above which a matched detection is taken as a manoeuvre (a stop, a start, a jerk): see
    :func:`maneuver_noise`.
    None: off.
    """

    measurement_noise: float = 0.02
    process_noise: float = 0.0045
    initial_velocity: float = 0.1
    iou_gate: float = 0.05
    landmark_gate: float = 0.5
    min_hits: int = 2
    max_misses: int = 5
    max_age: int = 30
    coast: int = 1
    lag: int = 6
    causal: bool = False
    motion: str = "velocity"
    jerk_noise: float = 0.0015
    maneuver_gate: float | None = None

    def __post_init__(self) -> None:
        if self.measurement_noise <= 0 or self.process_noise <= 0 or self.initial_velocity <= 0:
            raise ValueError("TrackerOptions: noises must be > 0")
        if self.min_hits < 1:
            raise ValueError("TrackerOptions: min_hits must be >= 1")
        if self.max_misses < 0 or self.max_age < 1 or self.coast < 0 or self.lag < 0:
            raise ValueError("TrackerOptions: max_misses, coast and lag must be >= 0, max_age >= 1")
        if self.motion not in ("velocity", "acceleration") or self.jerk_noise <= 0:
            raise ValueError("TrackerOptions: motion must be 'velocity' or 'acceleration', jerk_noise > 0")
        if self.maneuver_gate is not None and self.maneuver_gate <= 0:
            raise ValueError("TrackerOptions: maneuver_gate must be > 0 (or None: off)")
        if not 0.0 <= self.iou_gate <= 1.0 or self.landmark_gate <= 0:
            raise ValueError("TrackerOptions: iou_gate must be in [0, 1], landmark_gate > 0")

    @property
    def effective_lag(self) -> int:
        return 0 if self.causal else self.lag


def state_order(opts: TrackerOptions) -> int:
    return 3 if opts.motion == "acceleration" else 2


def motion_matrices(size: float, opts: TrackerOptions, steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(F, Q)`` of the chosen motion model (``opts.motion``) over ``steps`` frames."""
    if opts.motion != "acceleration":
        return constant_velocity_matrices(size, opts, steps)
    return constant_acceleration_matrices(size, opts, steps)


def constant_acceleration_matrices(size: float, opts: TrackerOptions, steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(F, Q)`` of the 30-state constant-acceleration model (positions, velocities, accelerations).

    ``Q`` is the continuous white-jerk covariance ``q² [[dt⁵/20, dt⁴/8, dt³/6], [dt⁴/8, dt³/3, dt²/2],
    [dt³/6, dt²/2, dt]]`` per coordinate, with ``q = jerk_noise * size``. On curved paths it follows the
    curvature that a constant-velocity model smooths away as lag.
    """
    dt = float(steps)
    eye = np.eye(NDIM)
    zero = np.zeros_like(eye)
    f = np.block([[eye, dt * eye, 0.5 * dt * dt * eye], [zero, eye, dt * eye], [zero, zero, eye]])
    q = (opts.jerk_noise * size) ** 2
    q3 = q * np.array(
        [[dt**5 / 20, dt**4 / 8, dt**3 / 6], [dt**4 / 8, dt**3 / 3, dt**2 / 2], [dt**3 / 6, dt**2 / 2, dt]]
    )
    return f, np.kron(q3, eye)


def constant_velocity_matrices(size: float, opts: TrackerOptions, steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(F, Q)`` of the 20-state constant-velocity model over ``steps`` frames for a face of ``size`` px.

    State order: 10 positions then 10 velocities. ``Q`` is the discrete white-noise-acceleration
    covariance ``q² [[dt⁴/4, dt³/2], [dt³/2, dt²]]`` per coordinate, with ``q = process_noise * size``.
    """
    dt = float(steps)
    eye = np.eye(NDIM)
    f = np.block([[eye, dt * eye], [np.zeros_like(eye), eye]])
    q = (opts.process_noise * size) ** 2
    q2 = q * np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]])
    return f, np.kron(q2, eye)


def maneuver_noise(innovation: np.ndarray, r: float, order: int) -> np.ndarray:
    """Extra process noise for one step where the innovation ``y`` (10,) failed the gate: per coordinate,
    the part of ``y²`` the measurement noise ``r`` does not explain, on the velocity (and acceleration) and a
    quarter of it on the position. Added to the predicted covariance and to the step's ``Q`` (the RTS pass
    reads it), it lets the state change course at this frame: a face that stops dead is followed within a
    frame or two instead of overshooting by its lag's worth of motion."""
    y2 = np.maximum(np.asarray(innovation, np.float64) ** 2 - r, 0.0)
    return np.diag(np.concatenate([0.25 * y2, y2] + [y2] * (order - 2)))



def gate(kf, step: tuple[np.ndarray, np.ndarray], measured: np.ndarray, r: float, opts: TrackerOptions,
         ) -> tuple[np.ndarray, np.ndarray]:
    """Innovation gate on the landmarks' common motion: a detection ``measured`` (10,) whose centroid is too far
    from the predicted one widens this step's process noise, so the filter follows it and the RTS pass puts the
    kink at this step instead of overshooting. (The centroid, not all ten coordinates: independent landmark noise
    averages out in it, a real change of motion does not.) Widens ``kf.P`` in place; returns the step's
    ``(F, Q)``, with the extra noise in ``Q`` when the gate fired."""
    y = measured - kf.H @ kf.x
    avg = np.kron(np.full((1, 5), 0.2), np.eye(2))  # (2, 10): the centroid of the five landmarks
    s = avg @ (kf.H @ kf.P @ kf.H.T + np.eye(NDIM) * r) @ avg.T
    ybar = avg @ y
    if float(ybar @ np.linalg.solve(s, ybar)) <= opts.maneuver_gate:
        return step
    extra = maneuver_noise(np.tile(ybar, 5), r / 5, state_order(opts))
    kf.P = kf.P + extra
    return step[0], step[1] + extra
