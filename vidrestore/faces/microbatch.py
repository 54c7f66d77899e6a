"""The restorer called in fixed-size micro-batches: the last crop is repeated to fill a short batch, so the compute
shape, and so a face's restored pixels, never depend on ``batch_size`` or on how many faces share the call."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..errors import VidrestoreError

__all__ = ["Restorer", "restore_crops"]


class Restorer(Protocol):
    def restore(self, faces: np.ndarray) -> np.ndarray: ...


def restore_crops(restorer: Restorer, crops: np.ndarray, micro: int, noise: Any) -> np.ndarray:
    """``crops`` (n, 512, 512, 3) uint8 restored ``micro`` at a time. A restorer that takes StyleGAN noise
    (``noise_shapes``) gets ``noise.for_tracks`` of one fixed track for every face: a face's texture must not depend
    on the id its tracker gave it (a batch segment, or a run started elsewhere in the file, numbers the same face
    differently)."""
    out = np.empty_like(crops)
    uses_noise = hasattr(restorer, "noise_shapes")
    for start in range(0, len(crops), micro):
        part = crops[start : start + micro]
        n = len(part)
        if n < micro:  # pad, so the compute shape never depends on how many faces were waiting
            part = np.concatenate([part, np.repeat(part[-1:], micro - n, axis=0)])
        if uses_noise:
            result = restorer.restore(part, noise=noise.for_tracks([0] * len(part)))
        else:
            result = restorer.restore(part)
        result = np.asarray(result)
        if result.shape != part.shape or result.dtype != np.uint8:
            raise VidrestoreError(f"the restorer returned {result.shape} {result.dtype} for {part.shape} uint8 faces")
        out[start : start + n] = result[:n]
    return out
