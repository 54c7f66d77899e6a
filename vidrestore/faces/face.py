"""The ``Face`` record passed between detection, tracking and alignment."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Face:
    """One detected face in one frame, in pixel coordinates of the stored frame.

    ``box`` is (x1, y1, x2, y2) float32; ``landmarks`` is (5, 2) float32 in facexlib's order (left eye,
    right eye, nose, left mouth corner, right mouth corner, "left" as seen in the image); ``score`` the
    detector's confidence. ``track_id`` is set by the tracker (None straight from a detector).
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float = 1.0
    track_id: int | None = field(default=None)

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(5, 2)
        self.score = float(self.score)

    @property
    def size(self) -> float:
        """The larger side of the box, in pixels."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2], dtype=np.float32)
