"""Loading a face restorer by name or from a checkpoint path, and the weight files a run needs.

Names: ``"gfpgan-1.4"``, ``"gfpgan-1.3"``, ``"codeformer"``, ``"restoreformer"`` (case-insensitive), found (or
downloaded) through :func:`vidrestore.weights.resolve_weights`. A bare name is never read from the working
directory. A path is loaded as what its keys say it is (GFP-GAN first, then CodeFormer or RestoreFormer).
Name-or-path resolution lives here only (:func:`resolve_restorer`).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import torch

from ..device import check_precision as _check_precision
from ..device import is_openvino_gpu, openvino_device, resolve_device
from ..errors import CheckpointError, UsageError, WeightsError
from ..models.checkpoint import clean_state_dict, read_checkpoint
from .base import Restorer
from .codeformer import DEFAULT_FIDELITY, CodeFormerRestorer, build_codeformer, check_fidelity
from .gfpgan import RESTORER_FILES, GFPGANRestorer, build_gfpgan
from .restoreformer import RestoreFormerRestorer, build_restoreformer

__all__ = [
    "FACE_RESTORER_FILES",
    "RESTORER_FILES",
    "checkpoint_arch",
    "load_face_restorer",
    "load_restorer",
    "resolve_restorer",
    "resolve_run_weights",
    "run_weight_files",
]

#: The VQ-codebook restorers: name → registry file name (resolved by :func:`vidrestore.weights.resolve_weights`)
FACE_RESTORER_FILES: Mapping[str, str] = MappingProxyType(
    {
        "codeformer": "codeformer.pth",
        "restoreformer": "RestoreFormer.pth",
    }
)
#: every restorer name → (arch, registry file name)
_NAMED: Mapping[str, tuple[str, str]] = MappingProxyType(
    {**{k: ("gfpgan", f) for k, f in RESTORER_FILES.items()}, **{k: (k, f) for k, f in FACE_RESTORER_FILES.items()}}
)


def checkpoint_arch(path: str | Path) -> str:
    """Guess which face restorer a checkpoint file is for: ``"codeformer"``, ``"restoreformer"`` or ``"gfpgan"``.

    Only a guess from marker keys (the strict load still checks every key); :class:`CheckpointError` when no
    marker matches.
    """
    keys = set(clean_state_dict(read_checkpoint(path), path))
    if "position_emb" in keys and "quantize.embedding.weight" in keys:
        return "codeformer"
    if "quantize.embedding.weight" in keys and "post_quant_conv.weight" in keys:
        return "restoreformer"
    if any(k.startswith("stylegan_decoder.") for k in keys):
        return "gfpgan"
    raise CheckpointError(f"{path}: not a GFPGAN, CodeFormer or RestoreFormer checkpoint (no known key layout)")


def resolve_restorer(
    name_or_path: str | Path,
    weights_dir: str | Path | None,
    known: Mapping[str, tuple[str, str]] = _NAMED,
    arch: str | None = None,
) -> tuple[str | None, str, Path]:
    """→ (arch, restorer name, checkpoint path); ``arch`` is ``None`` for a path (its keys decide).

    ``known``: the names accepted (all by default); ``arch``: the model a name must be, if any. Raises
    :class:`WeightsError` for an unknown name, :class:`UsageError` for a name of another ``arch``,
    :class:`CheckpointError` for a path that is no file.
    """
    text = str(name_or_path)
    key = text.lower()
    if not isinstance(name_or_path, Path) and key in known:
        from ..weights import resolve_weights  # lazy: downloading is only needed for named weights

        found, filename = known[key]
        if arch is not None and arch != found:
            raise UsageError(f"restorer {text!r} is a {found} model, not {arch}")
        return found, key, Path(resolve_weights(filename, weights_dir=weights_dir))
    path = Path(text).expanduser()
    if isinstance(name_or_path, Path) or path.exists() or text.endswith((".pth", ".pt")):
        if not path.is_file():
            raise CheckpointError(f"{path}: no such checkpoint file")
        return None, path.name, path
    raise WeightsError(
        f"unknown restorer {text!r}; known names: {', '.join(known)} (or give a path to a .pth file)"
    )


def _device_and_backend(
    device: str | torch.device | None, precision: str, backend: str
) -> tuple[torch.device, str]:
    """(torch device, backend that runs) for a loader, checked before any weights are read: ``auto`` is OpenVINO
    on the CPU (or an Intel ``gpu``) when the extra is installed, else torch (:func:`choose_backend`)."""
    from ..models.openvino import choose_backend

    chosen = choose_backend(backend, device)
    dev = resolve_device(device)
    _check_precision(precision, device if is_openvino_gpu(device) else dev)
    return dev, chosen


def load_restorer(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    batch_size: int = 8,
    weights_dir: str | Path | None = None,
    channels_last: bool | None = None,
    fidelity: float = DEFAULT_FIDELITY,
    backend: str = "auto",
) -> Restorer:
    """Load a face restorer by name (``"gfpgan-1.4"``, ``"gfpgan-1.3"``, ``"codeformer"``, ``"restoreformer"``)
    or from a checkpoint path (GFP-GAN, or a CodeFormer/RestoreFormer file recognised by its keys).
    ``fidelity`` is CodeFormer's ``w`` (0–1; ignored by the others).

    ``backend``: ``"torch"``, ``"openvino"`` (CPU or Intel ``gpu``; needs the ``openvino`` extra; the converted
    network is cached beside the weights) or ``"auto"`` (OpenVINO on the CPU when the extra is installed, else
    torch). fp32 stays exact either way (OpenVINO is asked for f32: max diff ~1e-5). ``restorer.backend`` says
    which one runs.

    The device, precision and backend are checked before any weights are read. Raises :class:`WeightsError`
    (unknown name, missing download), :class:`CheckpointError` (missing or unreadable file, wrong architecture)
    or :class:`DeviceError` (device, precision or backend this machine lacks).
    """
    if str(name_or_path).lower() in FACE_RESTORER_FILES:
        return load_face_restorer(str(name_or_path).lower(), device, precision, batch_size, weights_dir,
                                  fidelity=fidelity, backend=backend)
    dev, chosen = _device_and_backend(device, precision, backend)
    arch, name, path = resolve_restorer(name_or_path, weights_dir, _NAMED)
    try:
        model = build_gfpgan(path, dev)
    except CheckpointError:
        if arch is not None:
            raise
        # a CodeFormer or RestoreFormer file given by path: load it as what it is
        arch = checkpoint_arch(path)
        if arch == "gfpgan":
            raise
        return load_face_restorer(path, device, precision, batch_size, weights_dir, fidelity=fidelity, arch=arch,
                                  backend=backend)
    if chosen == "openvino":
        from ..models.openvino import gfpgan_openvino

        model = gfpgan_openvino(model, path, openvino_device(device), precision)
    return GFPGANRestorer(model, name if arch else f"gfpgan:{name}", dev, precision, batch_size, channels_last,
                          backend=chosen)


def _codeformer_precision(precision: str) -> None:
    """No CodeFormer in bf16: measured (bench/restorer.py --network codeformer, OpenVINO bf16 and torch autocast
    alike), bf16's 8-bit mantissa changes which codebook entries the transformer picks: p99.9 error 74-86 levels
    of 255, not the few levels of GFP-GAN. (fp16, on CUDA, keeps 11 bits.)"""
    if precision == "bf16":
        raise UsageError("CodeFormer does not run in bf16: it picks other codebook entries (errors of 74+ levels "
                         "of 255 measured); use --precision fp32 (or fp16 on CUDA)")


def load_face_restorer(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    batch_size: int = 8,
    weights_dir: str | Path | None = None,
    fidelity: float = DEFAULT_FIDELITY,
    arch: str | None = None,
    backend: str = "auto",
) -> CodeFormerRestorer | RestoreFormerRestorer:
    """Load CodeFormer or RestoreFormer by name (``"codeformer"``, ``"restoreformer"``) or from a checkpoint path.

    For a path, ``arch`` (``"codeformer"``/``"restoreformer"``) says which model it must be; ``None`` guesses it
    from the keys. ``fidelity`` is CodeFormer's ``w`` (ignored by RestoreFormer; with OpenVINO it is part of the
    converted graph and of its cache key). ``backend`` as for :func:`load_restorer`. The device, precision,
    backend and fidelity are checked before any weights are read. Raises :class:`WeightsError` (unknown name, missing
    download), :class:`CheckpointError` (missing or unreadable file, or not a checkpoint of that model),
    :class:`DeviceError` or :class:`UsageError` (fidelity outside [0, 1], conflicting ``arch``).
    """
    if arch is not None and arch not in FACE_RESTORER_FILES:
        raise UsageError(f"unknown arch {arch!r}; choose one of {', '.join(FACE_RESTORER_FILES)}")
    dev, chosen = _device_and_backend(device, precision, backend)
    w = check_fidelity(fidelity)
    if "codeformer" in (arch, str(name_or_path).lower()):
        _codeformer_precision(precision)  # before a download
    known = {k: v for k, v in _NAMED.items() if k in FACE_RESTORER_FILES}
    found, name, path = resolve_restorer(name_or_path, weights_dir, known, arch)
    if found is None:
        found = arch or checkpoint_arch(path)
        if found not in FACE_RESTORER_FILES:
            raise CheckpointError(
                f"{path}: a {found} checkpoint, not CodeFormer or RestoreFormer; load it with load_restorer"
            )
        name = f"{found}:{name}"
    if found == "codeformer":
        _codeformer_precision(precision)
        model = build_codeformer(path, dev)
        if chosen == "openvino":
            from ..models.openvino import codeformer_openvino

            model = codeformer_openvino(model, path, w, openvino_device(device), precision)
        return CodeFormerRestorer(model, name, dev, precision, batch_size, fidelity=w, backend=chosen)
    model = build_restoreformer(path, dev)
    if chosen == "openvino":
        from ..models.openvino import restoreformer_openvino

        model = restoreformer_openvino(model, path, openvino_device(device), precision)
    return RestoreFormerRestorer(model, name, dev, precision, batch_size, backend=chosen)


def run_weight_files(
    model: str | None,
    detector: str | None = None,
    parse: bool = False,
    upscale: int = 1,
    bg_upsampler: str = "realesrgan",
) -> list[str]:
    """The registry files a run with these options loads, in load order (no duplicates).

    ``model``/``detector`` may be registry names or checkpoint paths; paths, unknown names, ``"none"`` and
    ``None`` (not loaded, e.g. an object passed in) need no registry file and are left to their loaders, which
    check them. ``parse``: the ParseNet mask is loaded. ``upscale``/``bg_upsampler``: the background upscaler.
    """
    from ..faces.detect import DETECTOR_FILES
    from ..faces.parse import PARSER_FILES
    from ..models.rrdbnet import RRDBNET_FILES

    files: list[str] = []
    if upscale > 1 and bg_upsampler == "realesrgan":
        files.append(RRDBNET_FILES[4 if upscale == 4 else 2])
    named = _NAMED.get((model or "none").lower())
    if named is not None:
        files.append(named[1])
    if detector is not None and detector in DETECTOR_FILES:
        files.append(DETECTOR_FILES[detector])
    elif detector is not None and detector in DETECTOR_FILES.values():  # a bare registry file name
        files.append(detector)
    if parse:
        files.append(dict(PARSER_FILES)["parsenet"])
    return list(dict.fromkeys(files))


def resolve_run_weights(
    weights_dir: str | Path | None = None,
    *,
    model: str | None,
    detector: str | None = None,
    parse: bool = False,
    upscale: int = 1,
    bg_upsampler: str = "realesrgan",
    download: bool = True,
) -> dict[str, Path]:
    """Find (or download) every weight file a run needs before any model is built or frame decoded.

    Every file is tried; when some are missing, one :class:`WeightsError` names them all, each with its URL and
    the folder to put it in. Returns registry name → local path. The loaders then find the files in place.
    """
    from ..weights import resolve_many

    return resolve_many(
        run_weight_files(model, detector, parse, upscale, bg_upsampler), weights_dir, download=download
    )
