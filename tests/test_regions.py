"""Detection in regions around the faces already found (faces/regions.py), with the trained RetinaFace
MobileNet-0.25 of ../shared/reference/real on real faces (skimage's astronaut and its mirror image)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import stability as bs  # noqa: E402
from vidrestore.faces.face import Face  # noqa: E402
from vidrestore.faces.regions import STRIDE, RegionDetector, RegionOptions, region_boxes  # noqa: E402

W, H = 640, 480


def face(x0, y0, x1, y1) -> Face:
    lm = np.array([[x0 + 0.3 * (x1 - x0), y0 + 0.4 * (y1 - y0)]] * 5, np.float32)
    return Face(np.array([x0, y0, x1, y1], np.float32), lm, 0.99)


def test_region_boxes_sit_on_the_stride_and_merge():
    boxes = region_boxes([face(100, 100, 200, 200)], H, W, margin=0.5)
    (x0, y0, x1, y1), = boxes
    assert x0 % STRIDE == 0 and y0 % STRIDE == 0 and x1 % STRIDE == 0 and y1 % STRIDE == 0
    assert x0 <= 50 and y0 <= 50 and x1 >= 250 and y1 >= 250 and (x1 - x0) * (y1 - y0) < 0.3 * W * H
    # a small face gets the context in pixels, not in face sizes
    (x0, y0, x1, y1), = region_boxes([face(300, 200, 330, 230)], H, W, margin=0.5, context=100)
    assert x0 <= 200 and y0 <= 100 and x1 >= 430 and y1 >= 330
    # near the frame's corner: clipped to the frame
    assert region_boxes([face(600, 440, 639, 479)], H, W, margin=0.5) == [(576, 416, W, H)]
    # two faces whose regions overlap give one region covering both; far apart, two
    both = region_boxes([face(100, 100, 200, 200), face(230, 100, 330, 200)], H, W, margin=0.5)
    assert len(both) == 1 and both[0][0] <= 50 and both[0][2] >= 380
    assert len(region_boxes([face(10, 10, 60, 60), face(500, 380, 550, 430)], H, W, margin=0.5)) == 2


@pytest.fixture(scope="module")
def detector(shared_ref):
    return bs.load_real_detector()


def scene(astronaut: np.ndarray, at: list[tuple[int, int, bool]], side: int = 200) -> np.ndarray:
    """A 640x480 grey frame with the astronaut's head (a 256-px crop scaled to ``side``) at each (x, y, mirrored)."""
    frame = np.full((H, W, 3), 118, np.uint8)
    head = cv2.resize(astronaut[20:276, 120:376], (side, side), interpolation=cv2.INTER_AREA)
    for x, y, mirror in at:
        frame[y:y + side, x:x + side] = head[:, ::-1] if mirror else head
    return frame


def test_regions_give_the_full_frame_landmarks_for_less(detector, astronaut):
    frames = [scene(astronaut, [(60 + 6 * i, 120 + 2 * i, False)]) for i in range(9)]
    regions = RegionDetector(detector.detect, RegionOptions(scan_every=4), detector.detect_regions)
    got = [regions.detect([f], [i], [False])[0] for i, f in enumerate(frames)]
    full = [detector.detect([f])[0] for f in frames]
    assert (regions.full_searches, regions.region_searches) == (3, 6)  # frames 0, 4, 8 in full
    for a, b in zip(got, full):
        assert len(a) == len(b) == 1
        # measured ≤ 0.03 px (the same pixels on the same prior grid, with 128 px of context around the face)
        assert np.abs(a[0].landmarks - b[0].landmarks).max() < 0.1
    o = RegionOptions()
    (x0, y0, x1, y1), = region_boxes(full[0], H, W, o.margin, o.context)
    assert (x1 - x0) * (y1 - y0) < 0.5 * W * H


def test_a_face_that_enters_is_found_at_the_next_full_search(detector, astronaut):
    one = scene(astronaut, [(40, 140, False)])
    two = scene(astronaut, [(40, 140, False), (400, 140, True)])
    regions = RegionDetector(detector.detect, RegionOptions(scan_every=4), detector.detect_regions)
    counts = [len(regions.detect([f], [i], [False])[0]) for i, f in enumerate([one, one, two, two, two, two])]
    # the second face, far from the first one's region, waits for frame 4's full search
    assert counts == [1, 1, 1, 1, 2, 2]


def test_a_face_lost_in_its_region_makes_the_next_frame_a_full_search(detector, astronaut):
    here = scene(astronaut, [(40, 140, False)])
    jumped = scene(astronaut, [(420, 140, False)])  # a jump no region follows (a cut the cut test missed)
    regions = RegionDetector(detector.detect, RegionOptions(scan_every=8), detector.detect_regions)
    counts = [len(regions.detect([f], [i], [False])[0]) for i, f in enumerate([here, here, jumped, jumped])]
    assert counts == [1, 1, 0, 1] and regions.full_searches == 2


def test_a_face_cut_by_the_region_edge_is_dropped(detector, astronaut):
    """A face half inside another face's region is not reported from there (its half would be a wrong face:
    measured here, the half is found with its box ending at the region's edge)."""
    frame = scene(astronaut, [(0, 140, False), (120, 140, True)], side=160)
    regions = RegionDetector(detector.detect, RegionOptions(scan_every=8, margin=0.5), detector.detect_regions)
    first = regions.detect([frame], [0], [False])[0]
    assert len(first) == 2
    left = min(first, key=lambda f: f.box[0])
    regions._last = [left]  # follow only the left face
    (box,) = region_boxes([left], H, W, 0.5, RegionOptions().context)
    halves = [f for f in detector.detect_regions(frame, [box])[0] if f.box[0] > left.box[2]]
    assert halves and halves[0].box[2] > box[2] - 3  # the right face's piece, cut by the region's edge
    faces = regions.detect([frame], [1], [False])[0]
    assert len(faces) == 1 and faces[0].box[0] < left.box[2]


def test_without_region_support_every_frame_is_searched_whole():
    from vidrestore.testing import ScriptedDetector

    scripted = ScriptedDetector(lambda i, f: [face(10, 10, 60, 60)])
    regions = RegionDetector(scripted.detect, RegionOptions(scan_every=4), None)
    for i in range(5):
        regions.detect([np.zeros((H, W, 3), np.uint8)], [i], [False])
    assert regions.full_searches == 5 and scripted.frames_seen == 5
