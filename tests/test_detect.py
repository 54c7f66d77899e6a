"""RetinaFace (both backbones) against facexlib 0.3.0's outputs on synthetic weights, and the detector API."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vidrestore.errors import CheckpointError, UsageError, WeightsError
from vidrestore.faces.detect import (
    DetectorOptions,
    RetinaFaceDetector,
    load_detector,
    nms,
    select_detections,
)
from vidrestore.faces.face import Face
from vidrestore.models.retinaface import RetinaFace, prior_boxes
from vidrestore.testing import ScriptedDetector

FX = "facexlib"
FILES = {"resnet50": "detection_Resnet50_Final.pth", "mobile0.25": "detection_mobilenet0.25_Final.pth"}
MANIFESTS = {"resnet50": "retinaface_resnet50_keys.json", "mobile0.25": "retinaface_mobile0.25_keys.json"}


@pytest.fixture(scope="session")
def fx_ref(shared_ref: Path) -> Path:
    path = shared_ref / FX
    if not (path / "make_weights_fx.py").is_file():
        pytest.skip("facexlib reference data not found")
    return path


@pytest.fixture(scope="session")
def det_weights(fx_ref: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The synthetic RetinaFace checkpoints, built once per session by the reference script."""
    spec = importlib.util.spec_from_file_location("make_weights_fx", fx_ref / "make_weights_fx.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)  # the reference folder's own builder, run in this process
    out = tmp_path_factory.mktemp("fx_det_weights")
    paths = {}
    for backbone, name in FILES.items():
        paths[backbone] = out / name
        builder.build_file(str(fx_ref / MANIFESTS[backbone]), str(paths[backbone]))
    return paths


@pytest.fixture(scope="module")
def detectors(det_weights: dict[str, Path]) -> dict[str, RetinaFaceDetector]:
    # the torch module against facexlib (test_backends.py holds OpenVINO to the torch module)
    return {b: load_detector(p, device="cpu", backend="torch") for b, p in det_weights.items()}


@pytest.fixture(scope="session")
def astronaut_rgb(fx_ref: Path) -> np.ndarray:
    return np.ascontiguousarray(np.load(fx_ref / "astronaut_bgr_uint8.npy")[:, :, ::-1])


# ----------------------------------------------------------------------------------------------------------
# Layout and loading


@pytest.mark.parametrize("backbone", ["resnet50", "mobile0.25"])
def test_state_dict_matches_manifest(fx_ref: Path, backbone: str) -> None:
    manifest = json.loads((fx_ref / MANIFESTS[backbone]).read_text())
    state = RetinaFace(backbone).state_dict()
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in state.items()]
    assert ours == manifest


def test_strict_load_of_synthetic_checkpoints(detectors: dict[str, RetinaFaceDetector],
                                             det_weights: dict[str, Path]) -> None:
    for backbone, det in detectors.items():
        assert det.backbone == backbone
        state = torch.load(det_weights[backbone], weights_only=True)
        ours = det.model.state_dict()
        assert set(state) == set(ours)
        assert all(torch.equal(state[k], ours[k]) for k in state)


def test_module_prefix_and_missing_bn_counters_load(det_weights: dict[str, Path], tmp_path: Path) -> None:
    state = torch.load(det_weights["mobile0.25"], weights_only=True)
    prefixed = {"module." + k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "some_detector.pth"  # a name that says nothing: the backbone comes from the keys
    torch.save(prefixed, path)
    det = load_detector(path, device="cpu", backend="torch")
    assert det.backbone == "mobile0.25"
    ours = det.model.state_dict()
    assert all(torch.equal(state[k], ours[k]) for k in state)


def test_wrong_architecture_is_one_line_checkpoint_error(det_weights: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        load_detector(det_weights["mobile0.25"], device="cpu", backbone="resnet50")
    msg = str(info.value)
    assert "\n" not in msg and str(det_weights["mobile0.25"]) in msg and "RetinaFace-resnet50" in msg
    other = tmp_path / "other.pth"
    torch.save({"encoder.0.conv2d.weight": torch.zeros(64, 3, 3, 3)}, other)
    with pytest.raises(CheckpointError) as info:
        load_detector(other, device="cpu")
    assert "\n" not in str(info.value)


def test_names_resolve_through_the_weights_registry(det_weights: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    import vidrestore.weights

    calls = []

    def fake_resolve(name, weights_dir=None, **kw):
        calls.append((name, weights_dir))
        return det_weights["mobile0.25"]

    monkeypatch.setattr(vidrestore.weights, "resolve_weights", fake_resolve)
    det = load_detector("retinaface_mobile0.25", device="cpu", weights_dir=tmp_path, conf_threshold=0.5,
                        backend="torch")
    assert calls == [("detection_mobilenet0.25_Final.pth", tmp_path)]
    assert det.backbone == "mobile0.25" and det.options.conf_threshold == 0.5
    with pytest.raises(WeightsError):
        load_detector("retinaface_resnet18", device="cpu")
    with pytest.raises(UsageError):
        load_detector(det_weights["mobile0.25"], device="cpu", threshold=0.5)


# ----------------------------------------------------------------------------------------------------------
# Network outputs, priors, decoding


@pytest.mark.parametrize("backbone", ["resnet50", "mobile0.25"])
@pytest.mark.parametrize("case", ["astronaut", "nonsquare"])
def test_raw_outputs_match_facexlib(fx_ref: Path, detectors: dict[str, RetinaFaceDetector],
                                    astronaut_rgb: np.ndarray, backbone: str, case: str) -> None:
    ref = np.load(fx_ref / f"retinaface_{backbone}_{case}_raw.npz")
    frame = astronaut_rgb if case == "astronaut" else astronaut_rgb[0:360, 0:500]
    det = detectors[backbone]
    # Our RGB-frame input transform gives exactly the tensor facexlib feeds its net.
    x = det.preprocess(frame[None])
    np.testing.assert_array_equal(x.numpy(), ref["input_nchw"])
    with torch.inference_mode():
        loc, logits, lmk = det.model.forward_logits(x)
    conf = torch.softmax(logits, dim=-1)
    np.testing.assert_allclose(loc[0].numpy(), ref["loc"][0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(conf[0].numpy(), ref["conf"][0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(lmk[0].numpy(), ref["landmarks"][0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(logits[0].numpy(), ref["conf_logits"][0], rtol=0, atol=1e-4)
    h, w = frame.shape[:2]
    np.testing.assert_array_equal(det.priors(h, w).numpy(), ref["priors"])


def test_prior_counts_follow_ceil_feature_sizes() -> None:
    assert prior_boxes(512, 512).shape == (10752, 4)
    assert prior_boxes(360, 500).shape == (2 * (45 * 63 + 23 * 32 + 12 * 16), 4)


@pytest.mark.parametrize(
    "name", ["decode3_resnet50_astronaut", "decode3_resnet50_nonsquare", "decode3_mobile0.25_astronaut"]
)
def test_decode_threshold_nms_on_reference_raw_outputs(fx_ref: Path, name: str) -> None:
    ref = np.load(fx_ref / f"{name}.npz")
    h, w = (int(v) for v in ref["image_hw"])
    args = [torch.from_numpy(ref[k][0]) for k in ("loc", "conf", "landmarks")] + [torch.from_numpy(ref["priors"])]
    rows = select_detections(*args, h, w).numpy()
    expected = ref["expected_dets"]
    assert rows.shape == expected.shape == (2, 15)
    np.testing.assert_array_equal(rows[:, 4], expected[:, 4])
    np.testing.assert_allclose(rows, expected, rtol=0, atol=1e-3)
    # Without suppression the three confident priors come out decoded and sorted, as before facexlib's NMS.
    unsuppressed = select_detections(*args, h, w, nms_threshold=1.0).numpy()
    np.testing.assert_allclose(unsuppressed, ref["above_threshold_sorted_rows"], rtol=0, atol=1e-3)


def test_nms_semantics() -> None:
    boxes = torch.tensor([[0, 0, 10, 4], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 2]], dtype=torch.float32)
    scores = torch.tensor([0.5, 0.9, 0.7, 0.6])
    # IoU(box1, box0) = 40/100, which is 0.4f > 0.4 in double (torchvision's comparison): suppressed.
    # IoU(box1, box3) = 0.2: kept. Order is by decreasing score.
    assert nms(boxes, scores, 0.4).tolist() == [1, 2, 3]
    assert nms(boxes, scores, 0.5).tolist() == [1, 2, 3, 0]
    assert nms(boxes, scores, 0.1).tolist() == [1, 2]
    assert nms(torch.zeros((0, 4)), torch.zeros(0), 0.4).numel() == 0


# ----------------------------------------------------------------------------------------------------------
# Full detection


def test_detect_matches_facexlib_detect_faces(fx_ref: Path, detectors: dict[str, RetinaFaceDetector],
                                              astronaut_rgb: np.ndarray) -> None:
    ref = np.load(fx_ref / "retinaface_resnet50_astronaut_detect_faces_th0.8.npy")
    det = detectors["resnet50"]
    assert det.options.conf_threshold == 0.8 and det.options.nms_threshold == 0.4
    faces = det.detect([astronaut_rgb])
    assert len(faces) == 1 and len(faces[0]) == len(ref) == 6
    for face, row in zip(faces[0], ref):
        np.testing.assert_allclose(face.box, row[:4], rtol=0, atol=1e-2)
        np.testing.assert_allclose(face.score, row[4], rtol=0, atol=1e-5)
        np.testing.assert_allclose(face.landmarks, row[5:].reshape(5, 2), rtol=0, atol=1e-2)
        assert face.track_id is None


def test_batched_detect_equals_single(fx_ref: Path, detectors: dict[str, RetinaFaceDetector],
                                      astronaut_rgb: np.ndarray) -> None:
    ref = np.load(fx_ref / "retinaface_resnet50_astronaut_detect_faces_th0.8.npy")  # = one frame alone (above)
    pair = detectors["resnet50"].detect_rows([astronaut_rgb, astronaut_rgb])
    assert len(pair) == 2
    for rows in pair:
        assert rows.shape == ref.shape
        np.testing.assert_allclose(rows, ref, rtol=0, atol=1e-2)


@pytest.fixture(scope="module")
def mobile06(det_weights: dict[str, Path]) -> RetinaFaceDetector:
    return load_detector(det_weights["mobile0.25"], device="cpu", conf_threshold=0.6, batch_size=2, backend="torch")


def test_mixed_sizes_grouped_in_order_and_mobilenet_at_0_6(fx_ref: Path, mobile06: RetinaFaceDetector,
                                                            astronaut_rgb: np.ndarray) -> None:
    ref = np.load(fx_ref / "retinaface_mobile0.25_astronaut_detect_faces_th0.6.npy")
    assert ref.shape == (136, 15)
    crop = np.ascontiguousarray(astronaut_rgb[0:360, 0:500])
    crop_alone = mobile06.detect_rows([crop])[0]
    assert len(crop_alone) > 0
    mixed = mobile06.detect_rows([astronaut_rgb, crop, astronaut_rgb])  # one batch of two 512s, one of the crop
    for got, want in zip(mixed, [ref, crop_alone, ref]):
        assert got.shape == want.shape
        np.testing.assert_allclose(got[:, 4], want[:, 4], rtol=0, atol=1e-5)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-2)
    assert set(mobile06._priors) == {(512, 512), (360, 500)}
    assert mobile06.priors(360, 500) is mobile06.priors(360, 500)


def test_selection_options(fx_ref: Path, mobile06: RetinaFaceDetector, astronaut_rgb: np.ndarray) -> None:
    ref = np.load(fx_ref / "retinaface_mobile0.25_astronaut_detect_faces_th0.6.npy")
    side = np.maximum(ref[:, 2] - ref[:, 0], ref[:, 3] - ref[:, 1])
    min_face = float(np.median(side))
    big = ref[side >= min_face]
    centre = ((big[:, 0] + big[:, 2]) / 2 - 256) ** 2 + ((big[:, 1] + big[:, 3]) / 2 - 256) ** 2
    expected = big[np.argmin(centre)]
    det = RetinaFaceDetector(mobile06.model, mobile06.options, min_face=min_face, only_center_face=True)
    (faces,) = det.detect([astronaut_rgb])
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].box, expected[:4], rtol=0, atol=1e-2)
    # Eye-distance filter (GFPGAN's eye_dist_threshold): faces whose eyes are closer are dropped.
    eye = np.hypot(ref[:, 5] - ref[:, 7], ref[:, 6] - ref[:, 8])
    det = RetinaFaceDetector(mobile06.model, mobile06.options, eye_dist_threshold=float(np.median(eye)))
    (faces,) = det.detect([astronaut_rgb])
    kept = ref[eye >= np.median(eye)]
    assert 0 < len(faces) == len(kept) < len(ref)
    np.testing.assert_allclose(np.stack([f.box for f in faces]), kept[:, :4], rtol=0, atol=1e-2)


def test_max_side_downscales_and_maps_back(det_weights: dict[str, Path], astronaut_rgb: np.ndarray) -> None:
    det = load_detector(det_weights["mobile0.25"], device="cpu", conf_threshold=0.6, max_side=256, backend="torch")
    assert det.preprocess(astronaut_rgb[None]).shape == (1, 3, 256, 256)
    rows = det.detect_rows([astronaut_rgb])[0]
    small = np.ascontiguousarray(astronaut_rgb[::2, ::2])  # not the same pixels, but the same scale
    parity = load_detector(det_weights["mobile0.25"], device="cpu", conf_threshold=0.6, backend="torch")
    assert parity.options.max_side is None
    ref = parity.detect_rows([small])[0]
    assert len(rows) > 0 and len(ref) > 0
    # The same network input decoded in its own 256-px coordinates, scaled by 2, gives the frame's pixels.
    x = det.preprocess(astronaut_rgb[None])
    with torch.inference_mode():
        loc, conf, lmk = det.model(x)
    small_rows = select_detections(loc[0], conf[0], lmk[0], prior_boxes(256, 256, det.model.cfg), 256, 256, 0.6)
    expected = small_rows.numpy().copy()
    expected[:, [0, 1, 2, 3, *range(5, 15)]] *= 2
    np.testing.assert_allclose(rows, expected, rtol=0, atol=1e-3)
    # And the downscale itself is sane: about what a half-size frame gives (different pixels, same scale).
    np.testing.assert_allclose(rows[:, [0, 2]].max(), 2 * ref[:, [0, 2]].max(), rtol=0.1)


def test_options_are_validated() -> None:
    with pytest.raises(UsageError):
        DetectorOptions(batch_size=0)
    with pytest.raises(UsageError):
        DetectorOptions(conf_threshold=1.5)
    with pytest.raises(UsageError):
        DetectorOptions(max_side=8)


def test_bad_frames_are_rejected(detectors: dict[str, RetinaFaceDetector]) -> None:
    det = detectors["mobile0.25"]
    with pytest.raises(ValueError):
        det.detect([np.zeros((64, 64), np.uint8)])
    with pytest.raises(TypeError):
        det.detect([torch.zeros(64, 64, 3, dtype=torch.uint8)])
    assert det.detect([]) == []


# ----------------------------------------------------------------------------------------------------------
# The scripted fake


def _face(x: float, score: float = 0.9) -> Face:
    return Face(box=[x, 10, x + 40, 50], landmarks=np.full((5, 2), x + 20), score=score)


def test_scripted_detector_returns_what_it_was_given() -> None:
    script = [[_face(0)], [], [_face(5), _face(100, 0.5)]]
    det = ScriptedDetector(script)
    frames = [np.zeros((8, 8, 3), np.uint8)] * 2
    first = det.detect(frames)
    second = det.detect(frames)  # frame indices 2 and 3 (past the end: no faces)
    assert [len(x) for x in first + second] == [1, 0, 2, 0]
    assert np.array_equal(second[0][1].box, script[2][1].box) and second[0][1].score == 0.5
    second[0][0].track_id = 7  # the caller owns the copies
    assert script[2][0].track_id is None
    det.reset()
    assert len(det([frames[0]])[0]) == 1


def test_scripted_detector_with_a_callable() -> None:
    seen = []

    def script(index: int, frame: np.ndarray) -> list[Face]:
        seen.append((index, frame.shape))
        return [_face(float(index))] if index % 2 == 0 else []

    det = ScriptedDetector(script)
    out = det.detect([np.zeros((4, 6, 3), np.uint8)] * 3)
    assert [len(x) for x in out] == [1, 0, 1]
    assert out[2][0].box[0] == 2.0
    assert seen == [(0, (4, 6, 3)), (1, (4, 6, 3)), (2, (4, 6, 3))]
