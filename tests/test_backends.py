"""Backends and precisions on the CPU: OpenVINO parity with the torch networks, the conversion cache, bf16 rules.

GFP-GAN's conversion takes 15-60 s on the shared 2-core machine, so it happens once per session (the cache it
writes beside the synthetic checkpoint is what the reuse test reads back).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidrestore import device as vdevice
from vidrestore.errors import DeviceError
from vidrestore.models import openvino as vov
from vidrestore.models.checkpoint import load_into
from vidrestore.models.gfpgan import GFPGANv1Clean

FP32_TOL = 1e-4  # issue 17: max abs diff of the float output
BF16_P999 = 6  # issue 17: uint8 error, 99.9th percentile, levels of 255


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg, repr(msg)
    return msg


def _u8(x: torch.Tensor) -> np.ndarray:
    return ((x.float().clamp(-1, 1) + 1) / 2 * 255).round().to(torch.uint8).numpy()


def _u8_p999(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.percentile(np.abs(_u8(a).astype(int) - _u8(b).astype(int)), 99.9))


@pytest.fixture(scope="session")
def gfpgan_torch(synthetic_gfpgan: Path) -> GFPGANv1Clean:
    model = GFPGANv1Clean()
    load_into(model, synthetic_gfpgan, "GFPGANv1Clean")
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="session")
def face_and_noise(shared_ref: Path, gfpgan_torch: GFPGANv1Clean) -> tuple[torch.Tensor, list[torch.Tensor]]:
    x = torch.from_numpy(np.load(shared_ref / "gfpgan" / "ref_input.npy"))[:1]
    gen = torch.Generator().manual_seed(7)
    noise = [torch.randn(shape, generator=gen) for shape in gfpgan_torch.noise_shapes()]
    return x, noise


@pytest.fixture(scope="session")
def torch_out(gfpgan_torch: GFPGANv1Clean, face_and_noise) -> torch.Tensor:
    x, noise = face_and_noise
    with torch.inference_mode():
        return gfpgan_torch(x, noise)


@pytest.fixture(scope="session")
def ov_fp32(gfpgan_torch: GFPGANv1Clean, synthetic_gfpgan: Path) -> vov.OVGFPGAN:
    """Converts (first load: writes the cache beside the checkpoint)."""
    return vov.gfpgan_openvino(gfpgan_torch, synthetic_gfpgan, "CPU", "fp32")


def test_gfpgan_openvino_fp32_matches_torch(ov_fp32, face_and_noise, torch_out, synthetic_gfpgan: Path) -> None:
    x, noise = face_and_noise
    out = ov_fp32(x, noise)
    assert out.shape == torch_out.shape and out.dtype == torch.float32
    assert (out - torch_out).abs().max().item() <= FP32_TOL
    assert ov_fp32.net.xml.parent == synthetic_gfpgan.parent / ".openvino" and ov_fp32.net.xml.is_file()


def test_gfpgan_cache_reused_and_bf16_within_bound(
    gfpgan_torch, synthetic_gfpgan: Path, face_and_noise, torch_out, ov_fp32, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    monkeypatch.setattr(vov, "convert", lambda *a, **k: calls.append(a) or pytest.fail("converted again"))
    x, noise = face_and_noise
    bf16 = vov.gfpgan_openvino(gfpgan_torch, synthetic_gfpgan, "CPU", "bf16")  # same graph: read from the cache
    assert calls == [] and bf16.net.xml == ov_fp32.net.xml
    out = bf16(x, noise)
    assert torch.isfinite(out).all()
    assert _u8_p999(out, torch_out) <= BF16_P999
    again = vov.gfpgan_openvino(gfpgan_torch, synthetic_gfpgan, "CPU", "fp32")
    assert calls == [] and torch.equal(again(x, noise), ov_fp32(x, noise))


# --- precisions and devices --------------------------------------------------------------------------------------


def test_cpu_bf16_follows_the_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n\n")
    assert "avx512_bf16" in vdevice.cpu_flags(info)
    cpu = torch.device("cpu")
    monkeypatch.setattr(vdevice, "cpu_has_bf16", lambda: True)
    vdevice.check_precision("bf16", cpu)
    monkeypatch.setattr(vdevice, "cpu_has_bf16", lambda: False)
    with pytest.raises(DeviceError) as err:
        vdevice.check_precision("bf16", cpu)
    assert "bf16" in _one_line(err.value)
    with pytest.raises(DeviceError) as err:
        vdevice.check_precision("fp16", cpu)
    _one_line(err.value)
    vdevice.check_precision("fp32", cpu)


def test_mps_and_intel_gpu_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vdevice, "mps_available", lambda: False)
    with pytest.raises(DeviceError) as err:
        vdevice.resolve_device("mps")
    assert "MPS" in _one_line(err.value)
    monkeypatch.setattr(vdevice, "mps_available", lambda: True)
    assert vdevice.resolve_device("mps").type == "mps"
    with pytest.raises(DeviceError):
        vdevice.check_precision("bf16", torch.device("mps"))
    vdevice.check_precision("fp16", torch.device("mps"))
    # an Intel GPU is OpenVINO's "GPU" plugin; the tensors around it stay on the CPU
    assert vdevice.openvino_device("gpu") == "GPU" and vdevice.openvino_device("gpu.1") == "GPU.1"
    assert vdevice.openvino_device("cpu") == "CPU" and vdevice.resolve_device("gpu").type == "cpu"
    with pytest.raises(DeviceError):
        vdevice.check_precision("bf16", "gpu")


def test_backend_choice() -> None:
    assert vov.choose_backend("auto", "cpu") == ("openvino" if vov.available() else "torch")
    assert vov.choose_backend("torch", "cpu") == "torch"
    assert vov.choose_backend("openvino", "gpu") == "openvino"
    for backend, device in (("openvino", "cuda"), ("fast", "cpu"), ("torch", "gpu")):
        with pytest.raises(DeviceError) as err:
            vov.choose_backend(backend, device)
        _one_line(err.value)
    assert vov.choose_backend("auto", "cuda") == "torch"


# --- detection overlapped with restoration -----------------------------------------------------------------------


def test_detect_ahead_keeps_order_and_runs_in_a_worker() -> None:
    import threading

    from vidrestore.faces.prefetch import DetectAhead

    seen: list[tuple[int, str]] = []

    def detect(job: int) -> int:
        seen.append((job, threading.current_thread().name))
        return job * 10

    got = []
    with DetectAhead(detect, depth=1) as ahead:
        for job in range(5):
            due = ahead.push(job)
            assert len(due) == (0 if job == 0 else 1)  # one chunk waits while the one before is processed
            got += due
        got += ahead.drain()
    assert got == [(j, j * 10) for j in range(5)]
    assert [j for j, _ in seen] == list(range(5)) and all(name.startswith("vidrestore-detect") for _, name in seen)
    with DetectAhead(detect, depth=0) as inline:
        assert inline.push(7) == [(7, 70)]


def test_detect_ahead_raises_at_the_failing_chunk_and_stops() -> None:
    from vidrestore.faces.prefetch import DetectAhead

    def detect(job: int) -> int:
        if job == 2:
            raise RuntimeError("detector broke")
        return job

    ahead = DetectAhead(detect, depth=1)
    assert ahead.push(0) == [] and ahead.push(1) == [(0, 0)] and ahead.push(2) == [(1, 1)]
    with pytest.raises(RuntimeError, match="detector broke"):
        ahead.drain()
    ahead.close()
    assert ahead._pool is not None and ahead._pool._shutdown
