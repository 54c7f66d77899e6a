"""Fakes to plug into vidrestore in place of the models, for tests and benchmarks (like httpx's MockTransport).

A detector is anything with ``detect(frames) -> list[list[Face]]``; a restorer anything with
``restore(faces, noise=None) -> faces`` (uint8 ``(N, S, S, 3)`` RGB, S = 512). Pass them as
``restore_video(..., detector=..., restorer=...)`` or to :class:`vidrestore.faces.stage.FaceStage`.

* :class:`ScriptedDetector`: returns scripted faces (a list per frame, or a function of the frame index).
* :class:`SquareDetector`: calls the white square of a test pattern a face.
* :class:`IdentityRestorer`: returns the faces unchanged (same interface as the real restorers).
* :class:`NoiseIdentityRestorer`: the identity that takes per-track noise as GFP-GAN does.
* :class:`MarkerRestorer`: paints a dot at the template's nose, to see where a face was pasted.
* :class:`InvertRestorer`: the negative of each face (not the identity, to check batching and order).
* :class:`SleepRestorer`: the identity after a delay, for pacing and back-pressure tests.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import cv2
import numpy as np
import torch

from .device import resolve_device
from .faces.align import FFHQ_TEMPLATE_512
from .faces.face import Face
from .restorers.base import CROP_SIZE, check_faces, check_tensor

__all__ = [
    "MARK_RGB",
    "IdentityRestorer",
    "InvertRestorer",
    "MarkerRestorer",
    "NoiseIdentityRestorer",
    "ScriptedDetector",
    "SleepRestorer",
    "SquareDetector",
]

#: The colour :class:`MarkerRestorer` paints (magenta).
MARK_RGB = (255, 0, 255)
#: Five landmarks in a unit square (eyes, nose, mouth corners), scaled onto a detected square.
_UNIT_LANDMARKS = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]])


class ScriptedDetector:
    """A detector that returns scripted faces, for testing the stages after detection.

    ``script`` is either a list (entry ``k`` = the faces of the k-th frame ever passed to :meth:`detect`;
    frames past its end get no faces) or a callable ``(frame_index, frame) -> list[Face]``. Frame indices count
    across calls; :meth:`reset` starts again at 0. Faces are returned as copies, so a tracker that sets
    ``track_id`` does not change the script.
    """

    def __init__(self, script: Sequence[Sequence[Face]] | Callable[[int, np.ndarray], Sequence[Face]]) -> None:
        self.script = script
        self.frames_seen = 0
        self.calls = 0

    def reset(self) -> None:
        self.frames_seen = 0
        self.calls = 0

    def _faces_for(self, index: int, frame: np.ndarray) -> list[Face]:
        if callable(self.script):
            faces = self.script(index, frame)
        else:
            faces = self.script[index] if index < len(self.script) else []
        return [copy.deepcopy(f) for f in faces]

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        self.calls += 1
        out = []
        for frame in frames:
            out.append(self._faces_for(self.frames_seen, frame))
            self.frames_seen += 1
        return out

    def __call__(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        return self.detect(frames)


class SquareDetector:
    """Finds the white square of ``tests/media.py``'s pattern (pixels > 240) and calls it a face, with five
    landmarks inside it; frames with fewer than 9 such pixels have no face."""

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        out: list[list[Face]] = []
        for rgb in frames:
            ys, xs = np.nonzero((rgb > 240).all(axis=-1))
            if len(xs) < 9:
                out.append([])
                continue
            x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            s = max(x1 - x0, y1 - y0)
            lm = _UNIT_LANDMARKS * s + [x0, y0]
            out.append([Face(box=[x0, y0, x1, y1], landmarks=lm, score=0.99)])
        return out


class IdentityRestorer:
    """The fake backend: same interface as the real restorers (``restore``, ``restore_tensor``, ``device``,
    ``batch_size``, ``crop_size``), returns the faces unchanged."""

    name = "identity"
    precision = "fp32"
    crop_size: int = CROP_SIZE

    def __init__(self, device: str | torch.device | None = "cpu", batch_size: int = 8, crop_size: int = CROP_SIZE) -> None:
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.crop_size = crop_size

    def __repr__(self) -> str:
        return f"IdentityRestorer(device={str(self.device)!r}, crop_size={self.crop_size})"

    def restore_tensor(self, x: torch.Tensor, noise: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        check_tensor(x, self.crop_size)
        return x.to(self.device, torch.float32).clamp(-1.0, 1.0)

    def restore(self, faces: np.ndarray, noise: Sequence[torch.Tensor] | None = None) -> np.ndarray:
        check_faces(faces, self.crop_size)
        return faces.copy()


class NoiseIdentityRestorer:
    """The identity, taking per-track noise as GFP-GAN does: it has ``noise_shapes``, so a face stage or the live
    preview draws a noise set per track and passes it (one row per face; refused otherwise). Counts its calls
    and remembers the first value of every noise row it saw (one per track)."""

    device = "cpu"
    noise_shapes = True  # the stages only ask whether the restorer takes noise

    def __init__(self) -> None:
        self.calls = 0
        self.seen: set[float] = set()

    def restore(self, faces: np.ndarray, noise: Sequence[torch.Tensor] | None = None) -> np.ndarray:
        if noise is None or not all(n.shape[0] == len(faces) for n in noise):
            raise ValueError("NoiseIdentityRestorer wants a noise set with one row per face")
        self.calls += 1
        self.seen.update(float(v) for v in noise[0][:, 0, 0, 0])
        return faces.copy()


class MarkerRestorer:
    """Paints a filled dot (``radius`` px, :data:`MARK_RGB`) at the FFHQ-512 template's nose: where it lands in the
    output is where the face was pasted."""

    def __init__(self, radius: int = 28, colour: tuple[int, int, int] = MARK_RGB) -> None:
        self.radius = radius
        self.colour = colour
        nose = FFHQ_TEMPLATE_512[2]
        self.centre = (int(round(float(nose[0]))), int(round(float(nose[1]))))

    def restore(self, faces: np.ndarray, noise: object = None) -> np.ndarray:
        out = faces.copy()
        for f in out:
            cv2.circle(f, self.centre, self.radius, list(self.colour), -1, lineType=cv2.LINE_AA)
        return out


class InvertRestorer:
    """A per-face transform that is not the identity (the negative), to check batching and order."""

    def restore(self, faces: np.ndarray, noise: object = None) -> np.ndarray:
        return 255 - faces


class SleepRestorer:
    """The identity after ``seconds`` per call (a slow model, for pacing and back-pressure); counts its calls."""

    device = "cpu"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0

    def restore(self, faces: np.ndarray, noise: object = None) -> np.ndarray:
        self.calls += 1
        time.sleep(self.seconds)
        return faces.copy()
