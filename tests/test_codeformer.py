"""CodeFormer and its restorer against the official reference outputs (synthetic weights).

The synthetic checkpoint is built once per session by the reference folder's ``make_weights_codeformer.py``. A
512 px face costs ~5 s here, so one model instance is shared, the reference input is encoded once (the codes do
not depend on ``w``) and decoded at w = 0, 0.5 and 1; the restorer repeats the w = 0.5 run once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vidrestore.errors import CheckpointError, DeviceError, UsageError, VidrestoreError, WeightsError
from vidrestore.models.codeformer import CodeFormer, CodeFormerEncoding
from vidrestore.restorers import (
    faces_to_tensor,
    tensor_to_faces,
    DEFAULT_FIDELITY,
    FACE_RESTORER_FILES,
    CodeFormerRestorer,
    checkpoint_arch,
    load_face_restorer,
)

WS = (0.0, 0.5, 1.0)
TIE_GAP = 1e-4  # README: accept a different code only where the reference top-2 logit gap is below 1e-4
FEAT_TOL = 1e-4  # README: logits, lq_feat, quant_feat max abs <= 1e-4
OUT_MAX_TOL, OUT_MEAN_TOL = 1e-4, 1e-5  # README: float outputs
U8_FRAC = 1e-3  # README: uint8 differs by at most 1, on at most 0.1 % of values


@pytest.fixture(scope="session")
def cf_ref(shared_ref: Path) -> Path:
    ref = shared_ref / "codeformer"
    if not (ref / "make_weights_codeformer.py").is_file():
        pytest.skip(f"CodeFormer reference data not found in {ref}")
    return ref


@pytest.fixture(scope="session")
def cf_ckpt(cf_ref: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("codeformer") / "synthetic_codeformer.pth"
    subprocess.run(
        [sys.executable, str(cf_ref / "make_weights_codeformer.py"), str(cf_ref / "codeformer_keys.json"), str(out)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def restorer(cf_ckpt: Path) -> CodeFormerRestorer:
    # the torch module against the official code (test_backends.py holds OpenVINO to the torch module)
    return load_face_restorer(cf_ckpt, device="cpu", precision="fp32", batch_size=2, arch="codeformer",
                              backend="torch")


@pytest.fixture(scope="module")
def ref_enc(restorer: CodeFormerRestorer, cf_ref: Path) -> CodeFormerEncoding:
    x = torch.from_numpy(np.load(cf_ref / "ref_input.npy"))
    with torch.inference_mode():
        return restorer.model.encode(x)


@pytest.fixture(scope="module")
def ref_out(restorer: CodeFormerRestorer, ref_enc: CodeFormerEncoding) -> dict[float, np.ndarray]:
    with torch.inference_mode():
        return {w: restorer.model.decode(ref_enc, w).numpy() for w in WS}


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg, repr(msg)
    return msg


def _fake_ckpt(path: Path, manifest: Path) -> Path:
    """A small file with another model's exact key layout (tensors are placeholders)."""
    names = [name for name, _, _ in json.loads(manifest.read_text())]
    torch.save({"params_ema": {n: torch.zeros(1) for n in names}}, path)
    return path


# --- architecture and loading ---------------------------------------------------------------------------------


def test_state_dict_matches_manifest(cf_ref: Path) -> None:
    manifest = json.loads((cf_ref / "codeformer_keys.json").read_text())
    with torch.device("meta"):
        model = CodeFormer()
    sd = model.state_dict()
    # names, shapes and order (the synthetic seeds follow the manifest order)
    assert [(n, tuple(s)) for n, s, _ in manifest] == [(k, tuple(v.shape)) for k, v in sd.items()]
    assert len(sd) == 515
    assert sum(p.numel() for p in model.parameters()) == 94_112_707
    assert list(model.buffers()) == []


def test_strict_load_gives_the_file(restorer: CodeFormerRestorer, cf_ckpt: Path) -> None:
    stored = torch.load(cf_ckpt, map_location="cpu", weights_only=True)
    assert list(stored) == ["params_ema"]
    sd = restorer.model.state_dict()
    assert sd.keys() == stored["params_ema"].keys()
    assert all(torch.equal(sd[k], v) for k, v in stored["params_ema"].items())
    assert restorer.name == f"codeformer:{cf_ckpt.name}"
    assert restorer.crop_size == 512 and restorer.precision == "fp32" and restorer.fidelity == DEFAULT_FIDELITY == 0.5


# --- parity with the official forward ---------------------------------------------------------------------------


def test_codes_match_first(ref_enc: CodeFormerEncoding, cf_ref: Path) -> None:
    """Argmax is discontinuous: the codes are compared before anything downstream of them."""
    ref_codes = np.load(cf_ref / "ref_codes_w0.5.npy")
    gap = np.load(cf_ref / "ref_top2_gap_w0.5.npy")
    codes = ref_enc.codes[0].numpy()
    differ = codes != ref_codes
    assert not differ[gap >= TIE_GAP].any(), f"codes differ at tokens {np.flatnonzero(differ & (gap >= TIE_GAP))}"
    assert not differ.any()  # the reference has no gap below 1e-4 (smallest 2.8e-4), so all must match here


def test_logits_and_features(ref_enc: CodeFormerEncoding, restorer: CodeFormerRestorer, cf_ref: Path) -> None:
    inter = np.load(cf_ref / "ref_intermediates_w0.5.npz")
    assert np.abs(ref_enc.logits.numpy() - np.load(cf_ref / "ref_logits_w0.5.npy")).max() <= FEAT_TOL
    assert np.abs(ref_enc.lq_feat.numpy() - inter["lq_feat"]).max() <= FEAT_TOL
    with torch.inference_mode():
        raw = restorer.model.quant_feat(ref_enc, adain_style=False).numpy()
        adain = restorer.model.quant_feat(ref_enc).numpy()
    assert np.abs(raw - inter["quant_feat_raw"]).max() <= FEAT_TOL
    assert np.abs(adain - inter["quant_feat_adain"]).max() <= FEAT_TOL


@pytest.mark.parametrize("w", WS)
def test_output_matches_reference(w: float, ref_out: dict[float, np.ndarray], cf_ref: Path) -> None:
    diff = np.abs(ref_out[w] - np.load(cf_ref / f"ref_output_w{w}.npy"))
    assert diff.max() <= OUT_MAX_TOL, diff.max()
    assert diff.mean() <= OUT_MEAN_TOL, diff.mean()


@pytest.mark.parametrize("w", WS)
def test_uint8_matches_reference(w: float, ref_out: dict[float, np.ndarray], cf_ref: Path) -> None:
    ours = tensor_to_faces(torch.from_numpy(ref_out[w]))[0]  # RGB
    ref = np.load(cf_ref / f"ref_restored_bgr_uint8_w{w}.npy")[..., ::-1]  # BGR -> RGB
    diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
    assert diff.max() <= 1
    assert (diff > 0).mean() <= U8_FRAC


def test_fidelity_changes_the_output(ref_out: dict[float, np.ndarray]) -> None:
    # README: std of out(w=0.5) - out(w=0) and of out(w=1) - out(w=0.5) is about 0.21 each
    assert np.std(ref_out[1.0] - ref_out[0.0]) > 0.1
    assert np.std(ref_out[0.5] - ref_out[0.0]) > 0.05


def test_restorer_is_deterministic_and_passes_its_fidelity(
    restorer: CodeFormerRestorer, ref_out: dict[float, np.ndarray], cf_ref: Path
) -> None:
    """The restorer (fidelity 0.5) on the reference input repeats the parity run at w = 0.5 bit for bit.

    (The uint8 entry point runs the same ``_forward`` between ``faces_to_tensor`` and ``tensor_to_faces``; it is
    exercised on a real model in test_restoreformer.py and with a stub below, to spare another 5 s pass here.)
    """
    x = torch.from_numpy(np.load(cf_ref / "ref_input.npy"))
    out = restorer.restore_tensor(x, noise=[torch.zeros(1)])  # noise is ignored
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert torch.equal(out, torch.from_numpy(ref_out[0.5]).clamp(-1.0, 1.0))


# --- wrapper behaviour (a stub model: no 5 s forward passes needed) --------------------------------------------


class _StubCodeFormer(nn.Module):
    """Records batch sizes; output = x * (1 + w) + 0.25, so clamping and w both show."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor, w: float = 0.5) -> torch.Tensor:
        self.batches.append(x.shape[0])
        return x * (1.0 + w) + 0.25


def test_batching_any_n_and_fidelity_reaches_the_model() -> None:
    stub = _StubCodeFormer()
    r = CodeFormerRestorer(stub, device="cpu", batch_size=2, fidelity=1.0)
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (3, 512, 512, 3), dtype=np.uint8)
    out = r.restore(faces)
    assert stub.batches == [2, 1]
    x = faces_to_tensor(faces)
    assert np.array_equal(out, tensor_to_faces((x * 2.0 + 0.25).clamp(-1, 1)))
    t = r.restore_tensor(x)
    assert t.dtype == torch.float32 and float(t.max()) <= 1.0 and float(t.min()) >= -1.0
    assert r.restore(faces[:0]).shape == (0, 512, 512, 3)
    assert r.restore_tensor(x[:0]).shape == (0, 3, 512, 512)
    assert not hasattr(r, "noise_shapes")  # the face stage must not hand it per-track noise
    with pytest.raises(ValueError):
        r.restore(faces[..., :2])
    with pytest.raises(ValueError):
        r.restore(faces.astype(np.float32))


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "high"])
def test_fidelity_out_of_range_is_refused(bad: object) -> None:
    with pytest.raises(UsageError) as info:
        CodeFormerRestorer(_StubCodeFormer(), fidelity=bad)  # type: ignore[arg-type]
    _one_line(info.value)


@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp8"])
def test_cpu_refuses_half_precision(precision: str, cf_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vidrestore.device.cpu_has_bf16", lambda: False)  # bf16 runs on CPUs that have it
    with pytest.raises(DeviceError) as info:
        load_face_restorer(cf_ckpt, device="cpu", precision=precision)
    _one_line(info.value)
    with pytest.raises(DeviceError):
        CodeFormerRestorer(_StubCodeFormer(), device="cpu", precision=precision)


# --- wrong or missing files -------------------------------------------------------------------------------------


def test_gfpgan_layout_is_not_a_codeformer(tmp_path: Path, shared_ref: Path) -> None:
    manifest = shared_ref / "gfpgan" / "gfpgan_v1clean_keys.json"
    if not manifest.is_file():
        pytest.skip("GFPGAN manifest not found")
    bad = _fake_ckpt(tmp_path / "gfpgan_like.pth", manifest)
    with pytest.raises(CheckpointError) as info:
        load_face_restorer(bad, device="cpu", arch="codeformer")
    assert "not a CodeFormer checkpoint" in _one_line(info.value)
    assert checkpoint_arch(bad) == "gfpgan"
    with pytest.raises(CheckpointError) as info:  # guessed: refused with a pointer to load_restorer
        load_face_restorer(bad, device="cpu")
    assert "load_restorer" in _one_line(info.value)


def test_restoreformer_layout_is_not_a_codeformer(tmp_path: Path, shared_ref: Path) -> None:
    manifest = shared_ref / "gfpgan" / "restoreformer_keys.json"
    if not manifest.is_file():
        pytest.skip("RestoreFormer manifest not found")
    bad = _fake_ckpt(tmp_path / "restoreformer_like.pth", manifest)
    with pytest.raises(CheckpointError) as info:
        load_face_restorer(bad, device="cpu", arch="codeformer")
    msg = _one_line(info.value)
    assert "not a CodeFormer checkpoint" in msg and "missing keys" in msg


def test_params_key_is_not_read(tmp_path: Path) -> None:
    """inference_codeformer.py reads only 'params_ema'."""
    with torch.device("meta"):
        names = list(CodeFormer().state_dict())
    path = tmp_path / "params_only.pth"
    torch.save({"params": {n: torch.zeros(1) for n in names}}, path)
    with pytest.raises(CheckpointError) as info:
        load_face_restorer(path, device="cpu", arch="codeformer")
    _one_line(info.value)


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        load_face_restorer(tmp_path / "nope.pth", device="cpu")
    _one_line(info.value)
    with pytest.raises(WeightsError) as info:
        load_face_restorer("codeformer-9", device="cpu")
    _one_line(info.value)
    with pytest.raises(UsageError):
        load_face_restorer("codeformer", device="cpu", arch="restoreformer")
    assert issubclass(CheckpointError, VidrestoreError)


def test_name_resolves_through_the_registry(
    monkeypatch: pytest.MonkeyPatch, cf_ckpt: Path, tmp_path: Path
) -> None:
    import vidrestore.weights

    assert FACE_RESTORER_FILES["codeformer"] in vidrestore.weights.REGISTRY
    asked: list[tuple[str, object]] = []

    def fake_resolve(name: str, weights_dir: object = None, **_: object) -> Path:
        asked.append((name, weights_dir))
        return cf_ckpt

    monkeypatch.setattr(vidrestore.weights, "resolve_weights", fake_resolve)
    r = load_face_restorer("CodeFormer", device="cpu", weights_dir=tmp_path, fidelity=0.7, batch_size=3,
                           backend="torch")
    assert asked == [("codeformer.pth", tmp_path)]
    assert isinstance(r, CodeFormerRestorer)
    assert (r.name, r.fidelity, r.batch_size, str(r.device)) == ("codeformer", 0.7, 3, "cpu")


# --- reduced precision ------------------------------------------------------------------------------------------


def test_autocast_runs_with_mixed_dtypes() -> None:
    """A tiny CodeFormer (64 px, random init) under CPU bf16 autocast: the mixed float32 (codebook, AdaIN,
    norms) and low-precision (convs, attention) tensors must combine without dtype errors, as under CUDA
    autocast. Values are not compared: with random weights the argmax codes flip freely."""
    torch.manual_seed(0)
    model = CodeFormer(
        dim_embd=64, n_layers=1, codebook_size=64, latent_size=4, img_size=64, nf=32, emb_dim=64,
        connect_list=("8", "16", "32"),
    ).eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        enc = model.encode(x)
        out = model.decode(enc, 0.5)
    assert out.shape == x.shape and torch.isfinite(out.float()).all()
    assert enc.codes.dtype == torch.int64


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_precisions(cf_ckpt: Path, cf_ref: Path) -> None:
    x = torch.from_numpy(np.load(cf_ref / "ref_input.npy")).cuda()
    ref = torch.from_numpy(np.load(cf_ref / "ref_output_w0.5.npy")).clamp(-1, 1)
    fp32 = load_face_restorer(cf_ckpt, device="cuda", precision="fp32", arch="codeformer")
    out = fp32.restore_tensor(x).cpu()
    # cuDNN may use TF32 for convolutions (README: loosen to ~1e-2); a flipped near-tie code is local
    assert (out - ref).abs().mean().item() < 2e-3
    for precision in ("fp16", "bf16"):
        r = CodeFormerRestorer(fp32.model, fp32.name, fp32.device, precision=precision, fidelity=0.5)
        low = r.restore_tensor(x).cpu()
        assert torch.isfinite(low).all()
        assert (low - ref).abs().mean().item() < 0.03


def test_bf16_is_refused_before_any_weights_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 changes CodeFormer's codebook choices (bench/restorer.py --network codeformer: p99.9 74 levels), so it
    is refused in one line, by name before a download and for a checkpoint file once its keys say CodeFormer."""
    monkeypatch.setattr("vidrestore.device.cpu_has_bf16", lambda: True)
    with pytest.raises(UsageError) as info:
        load_face_restorer("codeformer", device="cpu", precision="bf16", weights_dir=tmp_path)
    assert "bf16" in _one_line(info.value) and list(tmp_path.iterdir()) == []


def test_bf16_is_refused_for_a_codeformer_file(cf_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vidrestore.device.cpu_has_bf16", lambda: True)
    with pytest.raises(UsageError) as info:
        load_face_restorer(cf_ckpt, device="cpu", precision="bf16")
    assert "fp32" in _one_line(info.value)


class _Nearest2x:
    """A 2x upscaler (nearest): the thing under test is the stage's paste of CodeFormer's held, low-passed face."""

    scale = 2

    def upscale(self, rgb: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)


def test_codeformer_in_the_video_stage_holds_and_low_passes_its_face(restorer, astronaut, true_landmarks):
    """The real (synthetic) CodeFormer through the face stage, with a 2x background: the stage takes CodeFormer's
    profile (0.95, its gate) and pastes a low-passed face; the face is restored, the frame doubled."""
    from fractions import Fraction

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench import stability as bs
    from media import within
    from vidrestore.faces.stage import FaceOptions, FaceStage
    from vidrestore.media.source import Frame

    clip = bs.make_clip(astronaut, true_landmarks, "slow", 3)
    stage = FaceStage(bs.load_real_detector(), restorer, FaceOptions(parse=False, lag=2, min_hits=1),
                      upscaler=_Nearest2x())
    assert (stage._temporal_options().strength, stage._temporal_options().source_gate) == (0.95, (0.02, 0.05))
    frames = [Frame(i, i, Fraction(1, 24), 1, rgb=f.copy()) for i, f in enumerate(clip.frames)]
    result = within(lambda: list(stage(frames)), 300.0)
    assert len(result) == 3
    for out, src in zip(result, clip.frames):
        assert out.rgb.shape == (2 * src.shape[0], 2 * src.shape[1], 3) and len(out.meta["faces"]) == 1
        x0, y0, x1, y1 = (2 * out.meta["faces"][0].box).astype(int)
        face = out.rgb[y0:y1, x0:x1].astype(np.float32)
        assert np.abs(face - _Nearest2x().upscale(src)[y0:y1, x0:x1]).mean() > 5  # restored, not passed through
