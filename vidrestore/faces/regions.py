"""Detection around the faces already found: a full-frame search every few frames, and in between RetinaFace on
crops around the last frame's faces only.

On the CPU, RetinaFace-R50 over a whole 640x480 frame costs about a sixth of a GFP-GAN face (OpenVINO, fp32), and
more on larger frames, while a face moves only a little from one frame to the next. So
:class:`RegionDetector` searches the whole frame when it must (``scan_every`` frames by frame index, a scene
cut, the frame after a face went missing) and otherwise runs the detector on **regions**: each face's box grown
by ``margin`` face sizes (at least ``context`` px) on every side, overlapping regions merged, their origins on the network's 32-px stride
(so the prior boxes fall where they fall on the whole frame: the landmarks are those a full-frame pass gives, up
to the zero padding at the region's edge, which the context keeps away from the face). A 90-px face in a
640x480 frame is a region of about 40 % of the frame's pixels; in a 1920x1080 frame, 7 %.

* A face found touching a region's edge inside the frame is dropped (it is a piece of a face outside the region,
  or one moving out of it); a region whose face is not found makes the next frame a full search, as does the
  next multiple of ``scan_every``, so a face that enters is found within ``scan_every`` frames.
* The schedule follows the frame index, so a batch segment, once past its first full search, detects exactly as
  a single run does.
* ``scan_every = 1`` searches every frame in full (what the stage did before; the default on CUDA, where
  whole frames in batches cost little).

Pure geometry (:func:`region_boxes`) plus one small stateful object owned by the face stage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .face import Face

__all__ = ["RegionOptions", "RegionDetector", "region_boxes", "detect_in_crops", "STRIDE"]

#: RetinaFace's largest stride: region origins on multiples of it keep the prior boxes on the full frame's grid.
STRIDE = 32


@dataclass(frozen=True)
class RegionOptions:
    """``scan_every``: frames between two full-frame searches (1: every frame). ``margin`` and ``context``: a
    face's region is its box grown on every side by ``margin`` face sizes or ``context`` px, whichever is more
    (the network's receptive field is absolute: measured with the trained MobileNet-0.25 on the astronaut at face
    sizes 34-139 px in a 640x480 frame, the landmarks differ from a full-frame pass by at most 0.03 px with
    128 px of context, 0.19 px with 96, up to 3 px with 0.75 face sizes alone on a 50-px face). ``edge``: px; a
    face whose box comes this close to a region edge inside the frame is dropped."""

    scan_every: int = 4
    margin: float = 0.75
    context: float = 128.0
    edge: float = 2.0

    def __post_init__(self) -> None:
        if self.scan_every < 1 or self.margin <= 0 or self.context < 0 or self.edge < 0:
            raise ValueError("RegionOptions: scan_every >= 1, margin > 0, context >= 0, edge >= 0")


def region_boxes(faces: Sequence[Face], height: int, width: int, margin: float, context: float = 0.0,
                 stride: int = STRIDE) -> list[tuple[int, int, int, int]]:
    """``(x0, y0, x1, y1)`` integer regions around ``faces`` in a ``height`` x ``width`` frame: each box grown by
    ``margin`` × the face's size on every side, origins floored to ``stride``, ends ceiled to it (clipped to the
    frame), overlapping regions merged into their union until none overlap."""
    boxes = []
    for f in faces:
        grow = max(margin * max(f.size, 1.0), context)
        x0, y0, x1, y1 = (float(v) for v in f.box)
        boxes.append([x0 - grow, y0 - grow, x1 + grow, y1 + grow])
    out = []
    for x0, y0, x1, y1 in boxes:
        a = int(max(0, np.floor(x0 / stride) * stride)), int(max(0, np.floor(y0 / stride) * stride))
        b = int(min(width, np.ceil(x1 / stride) * stride)), int(min(height, np.ceil(y1 / stride) * stride))
        if b[0] > a[0] and b[1] > a[1]:
            out.append((a[0], a[1], b[0], b[1]))
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                p, q = out[i], out[j]
                if p[0] < q[2] and q[0] < p[2] and p[1] < q[3] and q[1] < p[3]:
                    out[i] = (min(p[0], q[0]), min(p[1], q[1]), max(p[2], q[2]), max(p[3], q[3]))
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return out


def _inside(face: Face, box: tuple[int, int, int, int], height: int, width: int, edge: float) -> bool:
    """Whether ``face`` (frame pixels) keeps clear of every edge of ``box`` that is not a frame edge."""
    x0, y0, x1, y1 = box
    fx0, fy0, fx1, fy1 = (float(v) for v in face.box)
    return ((x0 == 0 or fx0 > x0 + edge) and (y0 == 0 or fy0 > y0 + edge)
            and (x1 == width or fx1 < x1 - edge) and (y1 == height or fy1 < y1 - edge))


def detect_in_crops(detect: Callable[[list[np.ndarray]], list[list[Face]]], frame: np.ndarray,
                    boxes: Sequence[tuple[int, int, int, int]]) -> list[list[Face]]:
    """``detect`` run on the crops ``boxes`` of ``frame``; faces moved back into the frame's pixels."""
    crops = [np.ascontiguousarray(frame[y0:y1, x0:x1]) for x0, y0, x1, y1 in boxes]
    out = []
    for (x0, y0, _, _), found in zip(boxes, detect(crops) if crops else []):
        shift = np.array([x0, y0], np.float32)
        for f in found:
            f.landmarks = f.landmarks + shift
            f.box = f.box + np.tile(shift, 2)
        out.append(list(found))
    return out


class RegionDetector:
    """``detect(frames, indices, cuts)`` → faces per frame, searching whole frames or regions (module docs).
    ``detect_frames`` is the whole-frame detector call (the stage passes its scaled detection); ``detect_regions``
    ``(frame, boxes) -> faces per box, in frame pixels`` the region call (a detector's ``detect_regions``), or None:
    then every frame is searched whole (a scripted detector in tests knows frames, not crops)."""

    def __init__(self, detect_frames: Callable[[list[np.ndarray]], list[list[Face]]], options: RegionOptions,
                 detect_regions: Callable[[np.ndarray, list[tuple[int, int, int, int]]], list[list[Face]]] | None,
                 ) -> None:
        self.detect_frames = detect_frames
        self.detect_regions = detect_regions
        self.options = options if detect_regions is not None else RegionOptions(scan_every=1)
        self._last: list[Face] = []
        self._lost = False
        self.full_searches = 0
        self.region_searches = 0

    def _full(self, index: int, cut: bool) -> bool:
        return cut or self._lost or index % self.options.scan_every == 0

    def detect(self, frames: Sequence[np.ndarray], indices: Sequence[int], cuts: Sequence[bool]) -> list[list[Face]]:
        out: list[list[Face]] = [[] for _ in frames]
        pending: list[int] = []  # consecutive full searches go to the detector together (batches on a GPU)
        for k, (frame, index, cut) in enumerate(zip(frames, indices, cuts)):
            if self._full(index, cut):
                pending.append(k)
                self._lost = False
                continue
            self._flush(frames, pending, out)
            if self._last:  # else nothing to follow and no search due: a face that enters waits for the next
                out[k] = self._in_regions(frame)
        self._flush(frames, pending, out)
        return out

    def _flush(self, frames: Sequence[np.ndarray], pending: list[int], out: list[list[Face]]) -> None:
        if not pending:
            return
        found = self.detect_frames([frames[k] for k in pending])
        for k, faces in zip(pending, found):
            out[k] = list(faces)
        self.full_searches += len(pending)
        self._last = list(out[pending[-1]])
        pending.clear()

    def _in_regions(self, frame: np.ndarray) -> list[Face]:
        h, w = frame.shape[:2]
        boxes = region_boxes(self._last, h, w, self.options.margin, self.options.context)
        faces = [f for box, found in zip(boxes, self.detect_regions(frame, boxes))  # type: ignore[misc]
                 for f in found if _inside(f, box, h, w, self.options.edge)]
        self.region_searches += 1
        self._lost = len(faces) < len(self._last)
        self._last = faces
        return faces
