"""GFPGANv1Clean and the GFP-GAN restorer against the official reference outputs (synthetic weights).

The synthetic checkpoint is built once per session from the key manifest by the reference folder's
``make_weights.py``; one model instance is shared by all forward-pass tests (a 512 px face costs ~2.5 s here).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from vidrestore.errors import CheckpointError, DeviceError, VidrestoreError, WeightsError
from vidrestore.models.gfpgan import GFPGANv1Clean
from vidrestore.restorers import (
    RESTORER_FILES,
    GFPGANRestorer,
    faces_to_tensor,
    load_restorer,
    tensor_to_faces,
)
from vidrestore.testing import IdentityRestorer

ARCH_TOL = 1e-4  # README: max |ours - ref| < 1e-4 (official reformulations differ by ~2e-6)
BATCH_TOL = 2e-5  # README: batch 1 vs row 0 of batch 2 differ by 3.6e-6 in the official code


@pytest.fixture(scope="session")
def gfpgan_ref(shared_ref: Path) -> Path:
    ref = shared_ref / "gfpgan"
    if not (ref / "make_weights.py").is_file():
        pytest.skip(f"GFPGAN reference data not found in {ref}")
    return ref


@pytest.fixture(scope="session")
def synthetic_ckpt(gfpgan_ref: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gfpgan") / "synthetic_gfpgan_v1clean.pth"
    subprocess.run(
        [sys.executable, str(gfpgan_ref / "make_weights.py"), str(gfpgan_ref / "gfpgan_v1clean_keys.json"), str(out)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="session")
def synthetic_sd(synthetic_ckpt: Path) -> "OrderedDict[str, torch.Tensor]":
    return torch.load(synthetic_ckpt, map_location="cpu", weights_only=True)["params_ema"]


@pytest.fixture(scope="session")
def restorer(synthetic_ckpt: Path) -> GFPGANRestorer:
    # the torch module against the official code (test_backends.py holds OpenVINO to this one, fp32 <= 1e-4)
    return load_restorer(synthetic_ckpt, device="cpu", precision="fp32", batch_size=2, backend="torch")


@pytest.fixture(scope="session")
def ref_input(gfpgan_ref: Path) -> torch.Tensor:
    return torch.from_numpy(np.load(gfpgan_ref / "ref_input.npy"))


@pytest.fixture(scope="session")
def ref_out_batch2(restorer: GFPGANRestorer, ref_input: torch.Tensor) -> torch.Tensor:
    """Unclamped model output on the batch-2 reference input, stored noise, one batch of 2."""
    with torch.inference_mode():
        return restorer.model(ref_input)


@pytest.fixture(scope="session")
def face_rgb(gfpgan_ref: Path) -> np.ndarray:
    return np.load(gfpgan_ref / "ref_aligned_face_in_bgr_uint8.npy")[..., ::-1][None].copy()


@pytest.fixture(scope="session")
def face_out(restorer: GFPGANRestorer, face_rgb: np.ndarray) -> np.ndarray:
    return restorer.restore(face_rgb)


@pytest.fixture(scope="session")
def small_model(gfpgan_ref: Path) -> GFPGANv1Clean:
    """A 64 px GFPGANv1Clean (narrow channels) with weights from the reference rule: fast noise/batch checks."""
    spec = importlib.util.spec_from_file_location("make_weights", gfpgan_ref / "make_weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = GFPGANv1Clean(out_size=64, num_style_feat=64, channel_multiplier=1, narrow=0.125, num_mlp=2)
    sd = {name: mod.make_tensor(i, name, list(t.shape)) for i, (name, t) in enumerate(model.state_dict().items())}
    model.load_state_dict(sd, strict=True)
    return model.eval()


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg, repr(msg)
    return msg


# --- architecture and loading ---------------------------------------------------------------------------


def test_state_dict_matches_manifest(gfpgan_ref: Path) -> None:
    manifest = json.loads((gfpgan_ref / "gfpgan_v1clean_keys.json").read_text())
    with torch.device("meta"):
        model = GFPGANv1Clean()
    sd = model.state_dict()
    assert {name: tuple(shape) for name, shape, _ in manifest} == {k: tuple(v.shape) for k, v in sd.items()}
    assert len(sd) == 285
    assert sum(p.numel() for p in model.parameters()) == 86_444_252
    assert len(list(model.buffers())) == 15


def test_strict_load_gives_the_synthetic_weights(restorer: GFPGANRestorer, gfpgan_ref: Path) -> None:
    # sums rather than sha256: torch.randn is last-bit different on CPUs without AVX2/AVX512 (README caveat)
    sums = json.loads((gfpgan_ref / "synthetic_weights_checksums.json").read_text())["tensors"]
    sd = restorer.model.state_dict()
    assert sd.keys() == sums.keys()
    for name, tensor in sd.items():
        t = tensor.detach().double()
        assert t.abs().sum().item() == pytest.approx(sums[name]["abs_sum"], rel=1e-5), name
        assert t.flatten()[0].item() == pytest.approx(sums[name]["first"], rel=1e-4, abs=1e-6), name
    assert restorer.crop_size == 512 and restorer.name.startswith("gfpgan")
    assert str(restorer.device) == "cpu" and restorer.precision == "fp32"


def test_matches_official_output(ref_out_batch2: torch.Tensor, gfpgan_ref: Path) -> None:
    ref = np.load(gfpgan_ref / "ref_output_fixednoise.npy")
    ours = ref_out_batch2.numpy()
    assert ours.shape == ref.shape == (2, 3, 512, 512)
    assert np.isfinite(ours).all()
    assert np.abs(ours - ref).max() < ARCH_TOL
    # the model itself does not clamp (the reference has values beyond +-1)
    assert np.abs(ours).max() > 1.0


def test_batch_size_independence(restorer: GFPGANRestorer, ref_input: torch.Tensor, ref_out_batch2: torch.Tensor) -> None:
    single = GFPGANRestorer(restorer.model, restorer.name, restorer.device, batch_size=1)
    out = single.restore_tensor(ref_input[1:2])
    assert out.shape == (1, 3, 512, 512)
    assert out.min() >= -1.0 and out.max() <= 1.0
    diff = (out[0] - ref_out_batch2[1].clamp(-1, 1)).abs().max().item()
    assert diff < BATCH_TOL


def test_uint8_face_matches_gfpganer(face_out: np.ndarray, gfpgan_ref: Path) -> None:
    ref_bgr = np.load(gfpgan_ref / "ref_aligned_face_out_bgr_uint8_fixednoise.npy")
    assert face_out.dtype == np.uint8 and face_out.shape == (1, 512, 512, 3)
    ours_bgr = face_out[0][..., ::-1]
    diff = np.abs(ours_bgr.astype(np.int16) - ref_bgr.astype(np.int16))
    assert diff.max() <= 1
    assert (diff == 0).mean() > 0.999  # off by one only at rounding boundaries


def test_deterministic(restorer: GFPGANRestorer, face_rgb: np.ndarray, face_out: np.ndarray) -> None:
    # a second call through the tensor entry point and basicsr-style conversion: bit-identical
    again = restorer.restore_tensor(faces_to_tensor(face_rgb))
    np.testing.assert_array_equal(tensor_to_faces(again), face_out)


def test_no_global_rng_use(small_model: GFPGANv1Clean) -> None:
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        state = torch.get_rng_state()
        a = small_model(x)
        assert torch.equal(torch.get_rng_state(), state)
        torch.manual_seed(99)
        b = small_model(x)
    assert torch.equal(a, b)
    assert a.shape == (2, 3, 64, 64) and torch.isfinite(a).all()


def test_noise_argument(small_model: GFPGANv1Clean) -> None:
    restorer = GFPGANRestorer(small_model, "small", torch.device("cpu"), batch_size=2)
    assert restorer.crop_size == 64 and len(restorer.noise_shapes()) == restorer.num_noise == 9
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    default = restorer.restore_tensor(x)
    stored = [t.clone() for t in small_model.stylegan_decoder.stored_noise()]
    assert torch.equal(restorer.restore_tensor(x, noise=stored), default)
    other = restorer.make_noise(seed=123)
    assert all(torch.equal(a, b) for a, b in zip(other, restorer.make_noise(seed=123)))  # seeded, repeatable
    changed = restorer.restore_tensor(x, noise=other)
    assert (changed - default).abs().max().item() > 1e-2
    # per-face noise (N, 1, h, w), split across batches of 2: row k uses noise row k
    per_face = restorer.make_noise(seed=5, batch=3)
    mixed = restorer.restore_tensor(x, noise=per_face)
    for k in range(3):
        alone = restorer.restore_tensor(x[k:k + 1], noise=[t[k:k + 1] for t in per_face])
        assert (mixed[k] - alone[0]).abs().max().item() < BATCH_TOL
    with pytest.raises(ValueError):
        restorer.restore_tensor(x, noise=other[:-1])
    with pytest.raises(ValueError):
        restorer.restore_tensor(x, noise=restorer.make_noise(seed=1, batch=2))


def test_small_model_batch_independence(small_model: GFPGANv1Clean) -> None:
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    by4 = GFPGANRestorer(small_model, "small", torch.device("cpu"), batch_size=4).restore_tensor(x)
    by1 = GFPGANRestorer(small_model, "small", torch.device("cpu"), batch_size=1).restore_tensor(x)
    assert (by4 - by1).abs().max().item() < BATCH_TOL


@pytest.mark.parametrize("batch", [1, 3])
def test_in_place_forward_equals_the_out_of_place_form_and_keeps_autograd(small_model: GFPGANv1Clean,
                                                                          batch: int) -> None:
    # Inference runs the SFT and the elementwise tails in place (bench/forward_gap.py); with autograd recording
    # the SFT takes the official out-of-place form. Both must give the same bits, in fp32 and under bf16 autocast,
    # and a backward pass must still work (in-place ops never overwrite what autograd saved).
    gen = torch.Generator().manual_seed(11)
    x = torch.rand(batch, 3, 64, 64, generator=gen) * 2 - 1
    noise = [torch.randn(batch, *s[1:], generator=gen) for s in small_model.noise_shapes()]
    for frozen_decoder in (False, True):  # the official fine-tuning freezes the decoder: SFT inputs differ in grad
        model = copy.deepcopy(small_model).requires_grad_(True)
        model.stylegan_decoder.requires_grad_(not frozen_decoder)
        for dtype in (None, torch.bfloat16):
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                with torch.inference_mode():
                    fast = model(x, noise)
                recorded = model(x, noise)
            assert recorded.requires_grad and torch.equal(fast, recorded.detach()), (frozen_decoder, dtype)
        recorded.float().square().mean().backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert len(grads) > 50 and all(torch.isfinite(g).all() for g in grads)


def test_forward_makes_no_full_size_temporaries(small_model: GFPGANv1Clean) -> None:
    # what closed the gap to the official forward (bench/forward_gap.py): leaky ReLU in place (the official code
    # does so too) and no split/cat for the SFT; the out-of-place forms allocate a full-size tensor each
    from torch.profiler import ProfilerActivity, profile

    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        small_model(x)
    calls = {e.key: e.count for e in prof.key_averages()}
    # 64 px: body first + final (2), 4 down and 4 up ResBlocks (2 each), 4 levels of scale/shift (2), 9 StyleConvs
    assert calls.get("aten::leaky_relu_") == 2 + 8 * 2 + 4 * 2 + 9
    assert "aten::leaky_relu" not in calls and "aten::cat" not in calls and "aten::split" not in calls

def test_preprocessing_is_gfpganer_exact() -> None:
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    expected = ((faces / 255.0).astype(np.float32) - np.float32(0.5)) / np.float32(0.5)
    got = faces_to_tensor(faces).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(got, expected)
    # post-processing: basicsr tensor2img, (clamp, (x+1)/2, *255, round half to even)
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0, 1 / 255 - 1]).view(1, 1, 2, 3).expand(1, 3, 2, 3)
    x_np = np.clip(x.numpy(), -1, 1)
    exp = (((x_np + 1) / 2) * np.float32(255.0)).round().astype(np.uint8).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(tensor_to_faces(x), exp)


def test_empty_batch(restorer: GFPGANRestorer) -> None:
    out = restorer.restore(np.zeros((0, 512, 512, 3), np.uint8))
    assert out.shape == (0, 512, 512, 3) and out.dtype == np.uint8
    assert restorer.restore_tensor(torch.zeros(0, 3, 512, 512)).shape == (0, 3, 512, 512)
    with pytest.raises(ValueError):
        restorer.restore(np.zeros((1, 256, 256, 3), np.uint8))


# --- checkpoint safety and errors ----------------------------------------------------------------------


class _CreatesFile:
    """Unpickling this calls open(path, 'w'): it creates the file. A safe loader must never run it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    control, target = tmp_path / "control_created", tmp_path / "must_not_exist"
    bad_control, bad = tmp_path / "control.pth", tmp_path / "evil.pth"
    torch.save({"params_ema": {"x": torch.zeros(1)}, "payload": _CreatesFile(control)}, bad_control)
    torch.save({"params_ema": {"x": torch.zeros(1)}, "payload": _CreatesFile(target)}, bad)
    # the payload is live: an unsafe load does create its file
    torch.load(bad_control, weights_only=False)
    assert control.exists()
    with pytest.raises(CheckpointError) as info:
        load_restorer(bad, device="cpu")
    assert not target.exists()
    assert str(bad) in _one_line(info.value)


def test_truncated_checkpoint(synthetic_ckpt: Path, tmp_path: Path) -> None:
    cut = tmp_path / "half.pth"
    size = synthetic_ckpt.stat().st_size
    with synthetic_ckpt.open("rb") as src, cut.open("wb") as dst:
        dst.write(src.read(size // 2))
    with pytest.raises(CheckpointError) as info:
        load_restorer(cut, device="cpu")
    assert "half.pth" in _one_line(info.value)


def test_missing_key_is_refused(synthetic_sd: dict, tmp_path: Path) -> None:
    sd = dict(synthetic_sd)
    del sd["stylegan_decoder.style_mlp.7.bias"]  # unused in forward, but the load is strict
    path = tmp_path / "missing.pth"
    torch.save({"params_ema": sd}, path)
    with pytest.raises(CheckpointError) as info:
        load_restorer(path, device="cpu")
    msg = _one_line(info.value)
    assert "missing" in msg and "style_mlp.7.bias" in msg and "missing.pth" in msg


def test_wrong_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"params_ema": {"encoder.weight": torch.randn(4, 4), "decoder.bias": torch.randn(4)}}, path)
    with pytest.raises(CheckpointError) as info:
        load_restorer(path, device="cpu")
    assert "GFPGAN" in _one_line(info.value)
    wrong_shape = tmp_path / "shape.pth"
    torch.save({"params_ema": {"a": torch.zeros(2)}, "note": "x"}, wrong_shape)
    with pytest.raises(CheckpointError):
        load_restorer(wrong_shape, device="cpu")


def test_params_and_module_prefix_load(synthetic_sd: dict, restorer: GFPGANRestorer, tmp_path: Path) -> None:
    path = tmp_path / "wrapped.pth"
    torch.save({"params": OrderedDict((f"module.{k}", v) for k, v in synthetic_sd.items())}, path)
    loaded = load_restorer(path, device="cpu", backend="torch")
    ref = restorer.model.state_dict()
    got = loaded.model.state_dict()
    assert got.keys() == ref.keys()
    assert all(torch.equal(got[k], ref[k]) for k in ref)


def test_names_and_paths(synthetic_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert dict(RESTORER_FILES) == {"gfpgan-1.4": "GFPGANv1.4.pth", "gfpgan-1.3": "GFPGANv1.3.pth"}
    with pytest.raises(TypeError):
        RESTORER_FILES["x"] = "y"  # type: ignore[index]
    with pytest.raises(WeightsError) as info:
        load_restorer("gfpgan-9", device="cpu")
    msg = _one_line(info.value)
    assert "gfpgan-1.4" in msg and "gfpgan-1.3" in msg
    with pytest.raises(CheckpointError) as info:
        load_restorer(tmp_path / "nope.pth", device="cpu")
    assert "nope.pth" in _one_line(info.value)
    with pytest.raises(CheckpointError):
        load_restorer(str(tmp_path / "nope.pt"), device="cpu")

    import vidrestore.weights as weights

    calls = []

    def fake_resolve(filename, weights_dir=None, **kwargs):
        calls.append((filename, weights_dir))
        return synthetic_ckpt

    monkeypatch.setattr(weights, "resolve_weights", fake_resolve)
    r = load_restorer("gfpgan-1.3", device="cpu", weights_dir=tmp_path, backend="torch")
    assert calls == [("GFPGANv1.3.pth", tmp_path)]
    assert r.name == "gfpgan-1.3" and isinstance(r, GFPGANRestorer)


def test_device_and_precision_errors(synthetic_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vidrestore.device.cpu_has_bf16", lambda: False)  # bf16 runs on CPUs that have it
    with pytest.raises(DeviceError) as info:
        load_restorer(synthetic_ckpt, device="cpu", precision="fp16")
    _one_line(info.value)
    with pytest.raises(DeviceError):
        load_restorer(synthetic_ckpt, device="cpu", precision="fp64")
    with pytest.raises(DeviceError):
        load_restorer(synthetic_ckpt, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError) as info:
            load_restorer(synthetic_ckpt, device="cuda")
        _one_line(info.value)
        with pytest.raises(DeviceError):
            load_restorer(synthetic_ckpt, device=None, precision="bf16")  # None -> cpu here
    assert issubclass(DeviceError, VidrestoreError)


# --- the fake backend -------------------------------------------------------------------------------------


def test_identity_restorer() -> None:
    fake = IdentityRestorer()
    faces = np.random.default_rng(1).integers(0, 256, (3, 512, 512, 3), dtype=np.uint8)
    out = fake.restore(faces)
    np.testing.assert_array_equal(out, faces)
    assert out is not faces
    assert fake.restore(faces[:0]).shape == (0, 512, 512, 3)
    x = faces_to_tensor(faces[:1])
    assert torch.equal(fake.restore_tensor(x), x)
    assert fake.crop_size == 512 and fake.name == "identity" and str(fake.device) == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_precisions(synthetic_ckpt: Path, ref_input: torch.Tensor, gfpgan_ref: Path) -> None:
    ref = torch.from_numpy(np.load(gfpgan_ref / "ref_output_fixednoise.npy")).clamp(-1, 1)
    fp32 = load_restorer(synthetic_ckpt, device="cuda", precision="fp32")
    out = fp32.restore_tensor(ref_input.cuda()).cpu()
    assert (out - ref).abs().max().item() < 1e-3  # TF32 / cuDNN algorithms differ from the CPU
    for precision in ("fp16", "bf16"):
        r = GFPGANRestorer(fp32.model, fp32.name, fp32.device, precision=precision)
        low = r.restore_tensor(ref_input.cuda()).cpu()
        assert torch.isfinite(low).all()
        assert (low - ref).abs().mean().item() < 0.02
