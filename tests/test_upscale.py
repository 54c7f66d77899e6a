"""Real-ESRGAN (RRDBNet) and Lanczos upscaling against the official outputs on synthetic weights.

References: ../shared/reference/realesrgan (official BasicSR RRDBNet and RealESRGANer.enhance, run on weights
rebuilt here with the folder's own make_weights_rrdb.py). The official enhance works in BGR; our frames are
RGB, so inputs are flipped to RGB going in and results flipped back to BGR for comparison.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vidrestore.errors import CheckpointError, DeviceError, UsageError, WeightsError
from vidrestore.models.rrdbnet import RRDBNET_FILES, RRDBNet, build_rrdbnet
from vidrestore.upscale import (
    CPU_TILE,
    LanczosUpscaler,
    RealESRGANUpscaler,
    UpscaleOptions,
    choose_tile,
    lanczos_resize_tensor,
    load_upscaler,
    scale_affine,
)

MODEL_TOL = 1e-4  # README §5: float32 model output vs the reference


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core runner, OpenMP threads spinning at each of RRDBNet's 351 conv
    barriers made these small forwards 10-20x slower than a single thread (results are identical)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ref(shared_ref: Path) -> Path:
    folder = shared_ref / "realesrgan"
    if not folder.is_dir():
        pytest.fail(f"no Real-ESRGAN reference data at {folder}", pytrace=False)
    return folder


@pytest.fixture(scope="module")
def make_weights(ref: Path):
    spec = importlib.util.spec_from_file_location("make_weights_rrdb", ref / "make_weights_rrdb.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def manifests(ref: Path) -> dict[int, list]:
    return {s: json.loads((ref / f"rrdbnet_x{s}plus_keys.json").read_text()) for s in (2, 4)}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory, make_weights, manifests) -> dict[int, Path]:
    """Synthetic checkpoints in the official layout ``{'params_ema': OrderedDict}``, built once."""
    folder = tmp_path_factory.mktemp("rrdb_weights")
    out = {}
    for s in (2, 4):
        out[s] = folder / f"synthetic_x{s}plus.pth"
        torch.save(make_weights.make_checkpoint(manifests[s]), out[s])
    return out


@pytest.fixture(scope="module")
def model_x2(ckpt: dict[int, Path]) -> RRDBNet:
    return build_rrdbnet(ckpt[2], 2, "cpu")


@pytest.fixture(scope="module")
def up(model_x2: RRDBNet) -> RealESRGANUpscaler:
    """x2 upscaler as GFPGAN's background upsampler (pre_pad 0), untiled."""
    return RealESRGANUpscaler(model_x2, UpscaleOptions(scale=2, tile=0, tile_pad=10, pre_pad=0))


def _bgr_in(ref: Path, name: str) -> np.ndarray:
    """A reference BGR(A) input as our RGB(A) frame."""
    img = np.load(ref / name)
    if img.ndim == 3:
        order = [2, 1, 0, 3][: img.shape[2]]
        img = img[:, :, order]
    return np.ascontiguousarray(img)


def _to_bgr(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        img = img[:, :, [2, 1, 0, 3][: img.shape[2]]]
    return img


def _assert_close_int(got: np.ndarray, want: np.ndarray, frac: float = 1e-3) -> None:
    """README §5: enhance results within ±1 with at most 0.1 % of values differing (uint8; see the uint16 test)."""
    assert got.shape == want.shape and got.dtype == want.dtype
    diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
    assert diff.max() <= 1, f"max |diff| {diff.max()}"
    assert (diff > 0).mean() <= frac, f"{(diff > 0).mean():.4%} of values differ"


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg
    return msg


# ---------------------------------------------------------------------------------------------------------------
# The network


@pytest.mark.parametrize("scale", [2, 4])
def test_state_dict_layout_matches_official(scale: int, manifests) -> None:
    with torch.device("meta"):
        model = RRDBNet(scale=scale)
    got = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert got == [(name, list(shape)) for name, shape, _ in manifests[scale]]
    assert len(got) == 702 and not list(model.buffers())
    n = sum(p.numel() for p in model.parameters())
    assert n == {2: 16_703_171, 4: 16_697_987}[scale]


def test_synthetic_rebuild_is_bit_exact(ref: Path, ckpt: dict[int, Path]) -> None:
    sums = json.loads((ref / "synthetic_weights_rrdb_checksums.json").read_text())
    for s, tag in ((2, "x2plus"), (4, "x4plus")):
        sd = torch.load(ckpt[s], map_location="cpu", weights_only=True)
        assert list(sd) == ["params_ema"]
        for name, t in sd["params_ema"].items():
            digest = hashlib.sha256(t.numpy().astype(np.float32).tobytes(order="C")).hexdigest()
            assert digest == sums[tag][name]["sha256"], name


def test_x2plus_forward_and_intermediates(ref: Path, model_x2: RRDBNet) -> None:
    acts: dict[str, torch.Tensor] = {}
    mods = {
        "conv_first": model_x2.conv_first,
        "body_0_rdb1": model_x2.body[0].rdb1,
        "body_0": model_x2.body[0],
        "body_11": model_x2.body[11],
        "body": model_x2.body,
        "conv_body": model_x2.conv_body,
        "conv_up1": model_x2.conv_up1,  # pre-LeakyReLU in the reference too
        "conv_up2": model_x2.conv_up2,
        "conv_hr": model_x2.conv_hr,
    }
    hooks = [
        m.register_forward_hook(lambda _m, _i, o, name=name: acts.__setitem__(name, o.detach().clone()))
        for name, m in mods.items()
    ]
    x = torch.from_numpy(np.load(ref / "rrdb_x2plus_input.npy"))
    try:
        with torch.no_grad():
            y = model_x2(x).numpy()
    finally:
        for h in hooks:
            h.remove()
    assert y.shape == (1, 3, 128, 160)
    assert np.abs(y - np.load(ref / "rrdb_x2plus_output.npy")).max() <= MODEL_TOL
    assert np.abs(y - np.load(ref / "rrdb_x2plus_output_f64.npy")).max() <= MODEL_TOL
    inter = np.load(ref / "rrdb_x2plus_intermediates.npz")
    assert torch.equal(torch.nn.functional.pixel_unshuffle(x, 2), torch.from_numpy(inter["pixel_unshuffle"]))
    for name, got in acts.items():
        want = inter[name]
        assert np.abs(got.numpy() - want).max() <= 1e-5 * np.abs(want).max(), name


def test_x4plus_forward(ref: Path, ckpt: dict[int, Path]) -> None:
    model = build_rrdbnet(ckpt[4], 4, "cpu")
    x = torch.from_numpy(np.load(ref / "rrdb_x4plus_input.npy"))
    with torch.no_grad():
        y = model(x).numpy()
    assert y.shape == (1, 3, 128, 160)
    assert np.abs(y - np.load(ref / "rrdb_x4plus_output.npy")).max() <= MODEL_TOL
    assert np.abs(y - np.load(ref / "rrdb_x4plus_output_f64.npy")).max() <= MODEL_TOL


def test_checkpoint_layouts_and_wrong_checkpoints(ckpt: dict[int, Path], tmp_path: Path, model_x2: RRDBNet) -> None:
    sd = torch.load(ckpt[2], map_location="cpu", weights_only=True)["params_ema"]
    ref_sd = model_x2.state_dict()
    # 'params' (what RealESRGANer falls back to) with module.-prefixed names loads the same weights
    p = tmp_path / "params.pth"
    torch.save({"params": {f"module.{k}": v for k, v in sd.items()}}, p)
    m = build_rrdbnet(p, 2)
    assert all(torch.equal(m.state_dict()[k], ref_sd[k]) for k in ref_sd)
    # x4plus weights into the x2 network: conv_first has 3 instead of 12 input channels
    with pytest.raises(CheckpointError) as info:
        build_rrdbnet(ckpt[4], 2)
    msg = _one_line(info.value)
    assert "conv_first.weight" in msg and str(ckpt[4]) in msg and "x2" in msg
    # a missing key
    p = tmp_path / "missing.pth"
    torch.save({"params_ema": {k: v for k, v in sd.items() if k != "conv_hr.bias"}}, p)
    with pytest.raises(CheckpointError) as info:
        build_rrdbnet(p, 2)
    assert "conv_hr.bias" in _one_line(info.value)
    # not a checkpoint at all
    p = tmp_path / "junk.pth"
    p.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError) as info:
        build_rrdbnet(p, 2)
    _one_line(info.value)


# ---------------------------------------------------------------------------------------------------------------
# RealESRGANer.enhance semantics


def test_enhance_untiled_matches_official(ref: Path, up: RealESRGANUpscaler) -> None:
    frame = _bgr_in(ref, "enhance_input_bgr_uint8_150x110.npy")
    got = up.upscale(frame)
    _assert_close_int(_to_bgr(got), np.load(ref / "enhance_x2plus_tile0_bgr_uint8.npy"))
    # the tensor entry (model level, RGB float) against the official float output, clamped as enhance does
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
    t = up.upscale_tensor(x)
    assert t.shape == (1, 3, 300, 220) and t.dtype == torch.float32
    want = np.load(ref / "enhance_x2plus_tile0_rgb_float32_unclamped.npy")
    assert want.max() > 1.0  # the clamp matters here
    assert np.abs(t.numpy() - np.clip(want, 0.0, 1.0)).max() <= MODEL_TOL


def test_enhance_tiled_matches_official_tiling(ref: Path, up: RealESRGANUpscaler) -> None:
    tiled = up.with_options(tile=64, tile_pad=10)
    frame = _bgr_in(ref, "enhance_input_bgr_uint8_150x110.npy")
    assert tiled.tile_for(150, 110) == 64
    want = np.load(ref / "enhance_x2plus_tile64_pad10_bgr_uint8.npy")
    got = tiled.upscale(frame)
    _assert_close_int(_to_bgr(got), want)
    # the tiled result really differs from the untiled one (the official seams are reproduced, not avoided)
    assert not np.array_equal(want, np.load(ref / "enhance_x2plus_tile0_bgr_uint8.npy"))
    # a tile covering the frame is the untiled forward
    assert tiled.with_options(tile=400).tile_for(150, 110) == 0


@pytest.mark.parametrize(
    ("tile", "pre_pad", "name"),
    [
        (0, 10, "enhance_x2plus_37x53_tile0_prepad10_bgr_uint8.npy"),
        (0, 0, "enhance_x2plus_37x53_tile0_prepad0_bgr_uint8.npy"),
        (16, 10, "enhance_x2plus_37x53_tile16_pad10_prepad10_bgr_uint8.npy"),
    ],
)
def test_enhance_odd_size_pre_pad_and_small_tiles(
    ref: Path, up: RealESRGANUpscaler, tile: int, pre_pad: int, name: str
) -> None:
    u = up.with_options(tile=tile, tile_pad=10, pre_pad=pre_pad)
    got = u.upscale(_bgr_in(ref, "enhance_input_bgr_uint8_37x53.npy"))
    assert got.shape == (74, 106, 3)
    _assert_close_int(_to_bgr(got), np.load(ref / name))


def test_outscale_lanczos(ref: Path, up: RealESRGANUpscaler) -> None:
    frame = _bgr_in(ref, "enhance_input_bgr_uint8_150x110.npy")
    got = up.with_options(outscale=1.5).upscale(frame)
    assert got.shape == (225, 165, 3)
    _assert_close_int(_to_bgr(got), np.load(ref / "enhance_x2plus_150x110_outscale1.5_bgr_uint8.npy"))


def test_grey_rgba_and_uint16(ref: Path, up: RealESRGANUpscaler) -> None:
    grey = up.upscale(np.load(ref / "enhance_input_grey_uint8_40x30.npy"))
    assert grey.shape == (80, 60)
    _assert_close_int(grey, np.load(ref / "enhance_x2plus_grey_uint8.npy"))

    rgba = _bgr_in(ref, "enhance_input_bgra_uint8_40x30.npy")
    got = up.upscale(rgba)
    _assert_close_int(_to_bgr(got), np.load(ref / "enhance_x2plus_bgra_alpha_realesrgan_uint8.npy"))
    got = up.with_options(alpha_upsampler="linear").upscale(rgba)
    _assert_close_int(_to_bgr(got), np.load(ref / "enhance_x2plus_bgra_alpha_cv2linear_uint8.npy"))

    got = up.upscale(_bgr_in(ref, "enhance_input_bgr_uint16_40x30.npy"))
    want = np.load(ref / "enhance_x2plus_uint16.npy")
    assert got.dtype == np.uint16 and want.dtype == np.uint16
    # One 16-bit step is 1.5e-5 in float, 6x finer than the model tolerance (MODEL_TOL): float32 noise of ~1e-7
    # (another CPU, another oneDNN kernel) flips the rounding of every value within ~0.03 steps of a .5 tie,
    # about 1 % of them (measured: 0.8 % here; float64 truth rounded differs from the reference by 0.77 %).
    # The 0.1 % rule is for uint8 (x255), where such ties are 257x rarer. A wrong conversion (truncation,
    # x65536, /65536) moves ~50 % of values or by more than one step, so 2 % still catches it.
    _assert_close_int(_to_bgr(got), want, frac=0.02)


def test_scale_one_runs_x2_and_returns_input_size(model_x2: RRDBNet) -> None:
    u = RealESRGANUpscaler(model_x2, UpscaleOptions(scale=1, tile=0))
    frame = np.random.default_rng(1).integers(0, 256, (12, 18, 3), dtype=np.uint8)
    assert u.upscale(frame).shape == (12, 18, 3)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
    assert u.upscale_tensor(x).shape == (1, 3, 12, 18)


# ---------------------------------------------------------------------------------------------------------------
# Options, loading, Lanczos, geometry


def test_options_are_checked() -> None:
    with pytest.raises(UsageError):
        UpscaleOptions(scale=3)
    with pytest.raises(UsageError):
        UpscaleOptions(method="bicubic")
    with pytest.raises(UsageError) as info:
        UpscaleOptions(scale=2, tile=16, tile_pad=5)  # the official code fails in pixel_unshuffle here
    assert "even" in _one_line(info.value)
    UpscaleOptions(scale=4, tile=15, tile_pad=5)  # the x4 model has no such constraint
    with pytest.raises(UsageError):
        UpscaleOptions(tile=-1)
    with pytest.raises(UsageError):
        UpscaleOptions(outscale=0)
    with pytest.raises(DeviceError):
        UpscaleOptions(precision="fp8")
    with pytest.raises(DeviceError) as info:
        load_upscaler(2, device="cpu", precision="fp16")
    assert "GPU" in _one_line(info.value)
    assert UpscaleOptions(scale=1).model_scale == 2 and UpscaleOptions(scale=4).model_scale == 4
    assert UpscaleOptions(scale=2, outscale=1.5).final_scale == 1.5


def test_tile_choice() -> None:
    assert choose_tile(480, 720, 2, free_bytes=100 * 2**30) == 0  # fits: untiled, no seams
    t = choose_tile(2160, 3840, 4, free_bytes=2 * 2**30, tile_pad=10)
    assert t > 0 and t % 8 == 0
    # one padded tile's activations stay inside half of the free memory
    assert ((t + 20) * 4) ** 2 * 3 * 64 * 4 <= 2**30
    assert choose_tile(2160, 3840, 4, free_bytes=1, tile_pad=10) == 32
    opts = UpscaleOptions(scale=2)
    assert opts.tile is None  # automatic; on the CPU that is CPU_TILE
    assert CPU_TILE % 2 == 0


def test_automatic_cuda_tile_is_kept_for_the_run(up: RealESRGANUpscaler, monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA the automatic tile comes from the free memory, which changes from frame to frame: chosen once per
    frame size and kept, so tile seams do not move (and flicker) during a video. No GPU needed: the memory
    queries are faked, the thing under test is the choice."""
    free = iter([6 * 2**30, 1 * 2**30, 1 * 2**30])
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (next(free), 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 0)
    u = up.with_options(tile=None)
    u.device = torch.device("cuda")
    first = u.tile_for(2160, 3840)
    assert first == choose_tile(2160, 3840, u.model_scale, 6 * 2**30, u.options.tile_pad)
    assert u.tile_for(2160, 3840) == first  # less memory free now, the same tile
    assert u.tile_for(1080, 1920) == choose_tile(1080, 1920, u.model_scale, 1 * 2**30, u.options.tile_pad)


def test_load_upscaler_names_the_official_files(
    ckpt: dict[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import vidrestore.weights as weights

    calls = []

    def fake_resolve(name, weights_dir=None, **kwargs):
        calls.append((name, weights_dir))
        return ckpt[4] if name == "RealESRGAN_x4plus.pth" else ckpt[2]

    monkeypatch.setattr(weights, "resolve_weights", fake_resolve)
    u1 = load_upscaler(1, device="cpu", weights_dir="/somewhere", backend="torch")
    u4 = load_upscaler(4, device="cpu", tile=0, backend="torch")
    assert calls == [("RealESRGAN_x2plus.pth", "/somewhere"), ("RealESRGAN_x4plus.pth", None)]
    assert isinstance(u1, RealESRGANUpscaler) and u1.model_scale == 2 and u1.scale == 1.0
    assert u4.model_scale == 4 and u4.scale == 4.0 and u4.options.tile == 0
    assert RRDBNET_FILES == {2: "RealESRGAN_x2plus.pth", 4: "RealESRGAN_x4plus.pth"}
    assert isinstance(load_upscaler(2, method="lanczos"), LanczosUpscaler)
    assert calls[-1][0] == "RealESRGAN_x4plus.pth"  # lanczos resolved nothing


def test_missing_weights_offline_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vidrestore.weights as w

    with socket.socket() as s:  # a port nothing listens on: every download attempt is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(w.ENV_DIRS, raising=False)
    monkeypatch.setenv(w.ENV_URL, f"http://127.0.0.1:{port}/w")
    monkeypatch.setattr(w.locate, "CHECKOUT_WEIGHTS_DIR", tmp_path / "no-checkout")
    monkeypatch.setattr(w.download.time, "sleep", lambda _s: None)  # skip the retry backoff
    with pytest.raises(WeightsError) as info:
        load_upscaler(2, device="cpu", weights_dir=tmp_path / "w")
    assert "RealESRGAN_x2plus.pth" in _one_line(info.value)


def test_lanczos_upscaler() -> None:
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    for s, shape in ((2, (60, 80, 3)), (4, (120, 160, 3)), (1.5, (45, 60, 3))):
        u = LanczosUpscaler(s)
        got = u.upscale(frame)
        assert got.shape == shape and got.dtype == np.uint8
        assert np.array_equal(got, cv2.resize(frame, shape[1::-1], interpolation=cv2.INTER_LANCZOS4))
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
        t = u.upscale_tensor(x)
        assert t.shape == (1, 3, *shape[:2])
        want = cv2.resize(frame.astype(np.float32) / 255.0, shape[1::-1], interpolation=cv2.INTER_LANCZOS4)
        assert np.abs(t[0].permute(1, 2, 0).numpy() - np.clip(want, 0, 1)).max() < 1e-4
    assert np.array_equal(LanczosUpscaler(1).upscale(frame), frame)
    # the tensor kernel is OpenCV's, also when shrinking and at odd ratios
    a = rng.random((37, 53), dtype=np.float32)
    for oh, ow in ((74, 106), (20, 13), (37, 80)):
        want = cv2.resize(a, (ow, oh), interpolation=cv2.INTER_LANCZOS4)
        got = lanczos_resize_tensor(torch.from_numpy(a)[None, None], (oh, ow))[0, 0].numpy()
        assert np.abs(got - want).max() < 1e-4


def test_scale_affine_gfpgan_convention() -> None:
    from vidrestore.faces.align import invert_affine, paste_affine

    a = np.array([[3.05288041, 0.08224438, -439.211075], [-0.08224438, 3.05288041, -49.382587]])
    a_copy = a.copy()
    pts = np.array([[203.5, 101.5], [246.5, 103.5], [225.0, 127.0], [0.0, 0.0], [639.0, 479.0]])
    crop = pts @ a[:, :2].T + a[:, 2]
    for s in (2, 4, 1.5):
        m = scale_affine(a, s)
        # GFPGAN: original pixel (x, y) sits at (s*x + s/2, s*y + s/2) in the upscaled frame
        up = pts * s + 0.5 * s
        assert np.allclose(up @ m[:, :2].T + m[:, 2], crop, atol=1e-9)
        # and it is the inverse of the matrix facexlib pastes with
        if float(s).is_integer():
            assert np.allclose(m, invert_affine(paste_affine(a, int(s))), atol=1e-9)
    assert np.array_equal(scale_affine(a, 1), a)
    assert np.array_equal(a, a_copy)


# OpenVINO (issue 17): the converted RRDBNet (dynamic frame size) against torch and the official outputs


@pytest.fixture(scope="module")
def ov_up(ckpt: dict[int, Path]) -> RealESRGANUpscaler:
    """Converts once (first load: writes the cache beside the synthetic checkpoint)."""
    return load_upscaler(2, device="cpu", tile=0, tile_pad=10, weights=ckpt[2], backend="openvino")


def test_openvino_upscaler_matches_torch_whole_frame_and_tiled(ref: Path, up: RealESRGANUpscaler,
                                                               ov_up: RealESRGANUpscaler) -> None:
    from vidrestore.models.openvino_nets import OVRRDBNet

    assert ov_up.backend == "openvino" and isinstance(ov_up.model, OVRRDBNet) and "openvino" in repr(ov_up)
    assert up.backend == "torch" and isinstance(up.model, RRDBNet)
    frame = _bgr_in(ref, "enhance_input_bgr_uint8_150x110.npy")
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
    whole = ov_up.enhance_raw(x)
    assert (whole - up.enhance_raw(x)).abs().max().item() <= MODEL_TOL
    assert np.abs(whole.numpy() - np.load(ref / "enhance_x2plus_tile0_rgb_float32_unclamped.npy")).max() <= MODEL_TOL
    tiled = ov_up.with_options(tile=64, tile_pad=10)  # tiles of 84, 74, 70... px: one dynamic graph runs them all
    assert tiled.backend == "openvino" and tiled.tile_for(150, 110) == 64
    got = tiled.enhance_raw(x)
    assert (got - up.with_options(tile=64, tile_pad=10).enhance_raw(x)).abs().max().item() <= MODEL_TOL
    want = np.load(ref / "enhance_x2plus_tile64_pad10_rgb_float32_unclamped.npy")
    assert np.abs(got.numpy() - want).max() <= MODEL_TOL
    _assert_close_int(_to_bgr(tiled.upscale(frame)), np.load(ref / "enhance_x2plus_tile64_pad10_bgr_uint8.npy"))


def test_openvino_upscaler_cache_reused_and_bf16_within_bound(ref: Path, ckpt: dict[int, Path], up: RealESRGANUpscaler,
                                                              ov_up: RealESRGANUpscaler,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from vidrestore import device as vdevice
    from vidrestore.models import openvino as vov

    monkeypatch.setattr(vov, "convert", lambda *a, **k: pytest.fail("converted again"))
    again = load_upscaler(2, device="cpu", tile=0, weights=ckpt[2], backend="openvino")
    assert again.model.net.xml == ov_up.model.net.xml == next(ckpt[2].parent.glob(".openvino/*rrdbnet*.xml"))
    frame = _bgr_in(ref, "enhance_input_bgr_uint8_37x53.npy")
    want = up.upscale(frame)
    assert np.abs(again.upscale(frame).astype(int) - want.astype(int)).max() <= 1
    if not vdevice.cpu_has_bf16():
        with pytest.raises(DeviceError):
            load_upscaler(2, device="cpu", weights=ckpt[2], backend="openvino", precision="bf16")
        return
    bf16 = load_upscaler(2, device="cpu", tile=0, weights=ckpt[2], backend="openvino", precision="bf16")
    assert bf16.model.net.precision == "bf16" and bf16.model.net.xml == ov_up.model.net.xml
    err = np.abs(bf16.upscale(frame).astype(int) - want.astype(int))
    assert np.percentile(err, 99.9) <= 6  # issue 17's bf16 bound (uint8 levels)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_precisions(ref: Path, ckpt: dict[int, Path], precision: str) -> None:
    torch.backends.cudnn.allow_tf32 = False
    try:
        u = load_upscaler(2, device="cuda", precision=precision, tile=0, weights=ckpt[2])
        frame = _bgr_in(ref, "enhance_input_bgr_uint8_150x110.npy")
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float().cuda() / 255.0
        raw = u.enhance_raw(x).cpu().numpy()
        tol = {"fp32": MODEL_TOL, "fp16": 1e-2, "bf16": 6e-2}[precision]
        assert np.abs(raw - np.load(ref / "enhance_x2plus_tile0_rgb_float32_unclamped.npy")).max() <= tol
        if precision == "fp32":
            _assert_close_int(_to_bgr(u.upscale(frame)), np.load(ref / "enhance_x2plus_tile0_bgr_uint8.npy"))
    finally:
        torch.backends.cudnn.allow_tf32 = True
