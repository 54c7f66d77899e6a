"""Fixed StyleGAN noise per face track, so a track's restored face does not flicker with fresh noise (moved out of
:mod:`vidrestore.faces.temporal`, which re-exports it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["GFPGAN_NOISE_RESOLUTIONS", "TrackNoise"]

#: Resolutions of GFPGANv1Clean's 15 StyleGAN noise inputs (one at 4 px, two per resolution 8 … 512).
GFPGAN_NOISE_RESOLUTIONS: tuple[int, ...] = (4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256, 512, 512)


def _track_seed(base_seed: int, track_id: int) -> int:
    state = np.random.SeedSequence([int(base_seed), int(track_id)]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


@dataclass
class TrackNoise:
    """A fixed set of StyleGAN noise maps per track, so a track's restored face does not flicker with noise.

    ``for_track(id)`` returns 15 tensors (1, 1, r, r) for r in :data:`GFPGAN_NOISE_RESOLUTIONS`, drawn from a
    CPU ``torch.Generator`` seeded from ``(base_seed, track_id)`` through ``numpy.random.SeedSequence``:
    the same for a given id whatever the order in which tracks appear, and the same on every device
    (drawn on the CPU, then moved to ``device``/``dtype``). Ids must be >= 0.
    """

    base_seed: int = 0
    device: str | torch.device = "cpu"
    dtype: torch.dtype = torch.float32
    resolutions: tuple[int, ...] = GFPGAN_NOISE_RESOLUTIONS
    _cache: dict[int, list[torch.Tensor]] = field(default_factory=dict, init=False, repr=False)

    def for_track(self, track_id: int) -> list[torch.Tensor]:
        if track_id < 0:
            raise ValueError(f"track_id must be >= 0, got {track_id}")
        noise = self._cache.get(track_id)
        if noise is None:
            g = torch.Generator(device="cpu").manual_seed(_track_seed(self.base_seed, track_id))
            noise = [
                torch.randn((1, 1, r, r), generator=g, dtype=torch.float32).to(self.device, self.dtype)
                for r in self.resolutions
            ]
            self._cache[track_id] = noise
        return noise

    def for_tracks(self, track_ids: Sequence[int]) -> list[torch.Tensor]:
        """The noise of several tracks stacked for a batch: 15 tensors (N, 1, r, r), rows in ``track_ids`` order."""
        per = [self.for_track(t) for t in track_ids]
        if not per:
            raise ValueError("for_tracks needs at least one track id")
        return [torch.cat(level, dim=0) for level in zip(*per)]

    def forget(self, track_id: int) -> None:
        self._cache.pop(track_id, None)

    def reset(self) -> None:
        self._cache.clear()
