"""Per-track paste masks over time: ParseNet run every ``every`` ticks of a clock, and a **ramp** between two
masks instead of a step.

ParseNet costs more than the restorer, and the mask of an aligned face changes slowly (it moves with the aligned
crop and is blurred with a 101-px kernel), so each track's mask is recomputed only when ``clock // every``
changes (the file stage's clock is the frame index, so a batch segment recomputes on the frames a single run does;
the live preview counts a track's restorations). Held constant in between, the mask would jump at every
recomputation, and the face boundary flickers every ``every`` frames (GFPGAN issue #465: flicker at the boundary).
Here the mask shown at clock ``c`` after a recomputation at ``c0`` is::

    shown = previous + (fresh − previous) · min(1, (c − c0 + 1) / every)

where ``previous`` is what was shown at ``c0``: the change a recomputation brings is spread evenly over the
``every`` ticks before the next one, so the largest frame-to-frame change of the mask is ``1/every`` of what the
held masks gave. A track's first mask is shown as computed (photos and ``every = 1`` keep facexlib's mask exactly).

Works with torch tensors or numpy arrays (whatever ``convert`` makes of the parser's output). No module state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["TrackMasks"]


@dataclass
class _Ramp:
    start: int  # the clock at the recomputation
    before: Any  # what was shown then
    after: Any  # the fresh mask


class TrackMasks:
    """``masks(ids, crops, clocks)`` → one mask per face (see the module docstring)."""

    def __init__(self, parser: Any, every: int, convert: Callable[[Any], Any] = lambda m: m) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.parser = parser
        self.every = every
        self.convert = convert
        self._ramps: dict[int, _Ramp] = {}

    def _shown(self, ramp: _Ramp, clock: int) -> Any:
        u = min(1.0, (clock - ramp.start + 1) / self.every)
        return ramp.after if u >= 1.0 else ramp.before + (ramp.after - ramp.before) * u

    def masks(self, ids: Sequence[int], crops: Any, clocks: Sequence[int]) -> list[Any]:
        """The masks of the faces ``ids`` (their restored aligned ``crops``) at ``clocks`` (one per face)."""
        need = [k for k, (tid, c) in enumerate(zip(ids, clocks))
                if tid not in self._ramps or c // self.every != self._ramps[tid].start // self.every]
        if need:
            fresh = self.parser.face_masks(crops[need])
            for j, k in enumerate(need):
                tid, clock, mask = ids[k], clocks[k], self.convert(fresh[j])
                old = self._ramps.get(tid)
                before = mask if old is None else self._shown(old, clock)
                self._ramps[tid] = _Ramp(clock, before, mask)
        return [self._shown(self._ramps[tid], c) for tid, c in zip(ids, clocks)]

    def forget(self, track_id: int) -> None:
        self._ramps.pop(track_id, None)

    def clear(self) -> None:
        self._ramps.clear()

    def __len__(self) -> int:
        return len(self._ramps)
