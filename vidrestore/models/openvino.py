"""The OpenVINO backend: our own PyTorch modules converted with ``openvino.convert_model``, cached on disk, compiled
for the CPU (or an Intel GPU: the device name is the only difference), called like the torch module.

* **Conversion** traces the module with an example input at the shapes it will run (static shapes: the CPU
  plugin picks its kernels per shape). It takes 15-60 s for GFP-GAN on a 2-core CPU, so the result is **cached next
  to the weights** in ``<weights folder>/.openvino/``, named by a key over the checkpoint's sha256, the model
  configuration (network, input shapes, options such as CodeFormer's fidelity), the network code
  (:func:`code_version`) and the OpenVINO version. A second
  load reads the cache (no conversion). Where the weights folder is read-only the cache goes to
  ``~/.cache/vidrestore/openvino``.
* **Precision** is always explicit: OpenVINO's default CPU precision on a CPU with bf16 is bf16, so ``fp32`` asks
  for ``f32`` (parity with torch: max abs diff ~1e-5) and ``bf16`` for ``bf16`` (about 3x faster on AVX512-BF16).
* The compiled network is an ``nn.Module`` without parameters (:class:`OVModule`): ``.eval()``, ``.to()`` and
  ``requires_grad_`` do nothing, and ``forward`` takes and returns CPU float32 tensors. Calls are serialised by a
  lock (one infer request); a second thread waits rather than sharing it.

The restorers' and the detector's adapters are here; ParseNet's and RRDBNet's are in :mod:`.openvino_nets`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import stat
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import DeviceError
from .altstack import kept_signal_stack

__all__ = ["available", "version", "cache_path", "convert", "compile_model", "OVModule", "load_network", "BACKENDS",
           "choose_backend", "gfpgan_openvino", "codeformer_openvino", "restoreformer_openvino",
           "retinaface_openvino", "network_openvino"]

BACKENDS = ("auto", "torch", "openvino")
_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_USER_CACHE = Path("~/.cache/vidrestore/openvino")


def available() -> bool:
    """True where the ``openvino`` extra is installed."""
    return importlib.util.find_spec("openvino") is not None


def _ov() -> Any:
    if not available():
        raise DeviceError("the OpenVINO backend needs the openvino extra: pip install 'vidrestore[openvino]'")
    import openvino

    return openvino


def version() -> str:
    return str(_ov().__version__)


def choose_backend(backend: str, device: str | torch.device | None, precision: str | None = None) -> str:
    """``auto`` → ``openvino`` on the CPU (or an Intel ``gpu``) when the extra is installed, else ``torch``.
    ``openvino`` on a CUDA or MPS device, or without the extra, is refused with one line, and so is a
    ``precision`` the OpenVINO device lacks (given for the networks whose torch twin ignores it)."""
    chosen = _choose(backend, device)
    if chosen == "openvino" and precision is not None:
        from ..device import check_precision, is_openvino_gpu, resolve_device

        check_precision(precision, device if is_openvino_gpu(device) else resolve_device(device))
    return chosen


def _choose(backend: str, device: str | torch.device | None) -> str:
    from ..device import is_openvino_gpu

    if backend not in BACKENDS:
        raise DeviceError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    on_cpu = device is None and not torch.cuda.is_available() or str(device).lower() == "cpu"
    ov_device = on_cpu or is_openvino_gpu(device)
    if backend == "auto":  # an Intel gpu has no torch backend: without the extra, _ov() below says how to get it
        backend = "openvino" if is_openvino_gpu(device) or ov_device and available() else "torch"
        if backend == "torch":
            return backend
    if backend == "openvino":
        if not ov_device:
            raise DeviceError(f"the OpenVINO backend runs on 'cpu' or an Intel 'gpu', not {device!r}; use --backend torch")
        _ov()
    elif is_openvino_gpu(device):
        raise DeviceError("an Intel 'gpu' runs through OpenVINO; use --backend openvino (or auto)")
    return backend


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_sha256(path: Path) -> str:
    """The checkpoint's sha256 (part of the cache key), remembered in ``.openvino/<name>.sha256`` beside it with
    the file's size and modification time: hashing a 350 MB checkpoint takes about a second on every load, a
    stat does not. Recomputed when the file changed (or the note cannot be read); not remembered in a read-only
    folder."""
    st = path.stat()
    stamp = f"{st.st_size} {st.st_mtime_ns}"
    note = path.parent / ".openvino" / f"{path.name}.sha256"
    try:
        size, mtime, digest = note.read_text().split()
        if f"{size} {mtime}" == stamp and len(digest) == 64:
            return digest
    except (OSError, ValueError):
        pass
    digest = file_sha256(path)
    if _writable(note.parent):
        try:
            tmp = note.with_name(f"{note.name}.tmp{os.getpid()}-{threading.get_ident()}")
            tmp.write_text(f"{stamp} {digest}\n")
            os.replace(tmp, note)
        except OSError:
            pass
    return digest


def code_version() -> str:
    """A hash of the network code (``vidrestore/models/*.py``): a converted graph is traced from it, so a change of
    that code (a new release) converts again instead of reading a graph of the old code."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def cache_path(checkpoint: str | Path, config: Mapping[str, Any], folder: str | Path | None = None) -> Path:
    """Where the converted model of ``checkpoint`` with ``config`` lives: ``.openvino/<stem>.<key>.xml`` beside the
    weights (or in ``folder``), keyed by the checkpoint's sha256, the configuration and the OpenVINO version."""
    checkpoint = Path(checkpoint)
    blob = json.dumps({"sha256": checkpoint_sha256(checkpoint), "config": dict(config), "openvino": version()},
                      sort_keys=True, default=str)
    key = hashlib.sha256(blob.encode()).hexdigest()[:20]
    root = Path(folder) if folder is not None else checkpoint.parent / ".openvino"
    return root / f"{checkpoint.stem}.{config.get('network', 'model')}.{key}.xml"


def _writable(folder: Path) -> bool:
    """Whether the cache may go in ``folder``: a weights folder whose mode says read-only (r-x) is left alone even
    where root could write it anyway."""
    try:
        if not folder.exists() and not folder.parent.stat().st_mode & stat.S_IWUSR:
            return False
        folder.mkdir(parents=True, exist_ok=True)
        return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & stat.S_IWUSR)
    except OSError:
        return False


def convert(module: nn.Module, example_inputs: Sequence[torch.Tensor], out: Path,
            shapes: Sequence[Sequence[int]] | None = None) -> Path:
    """Convert ``module`` at the shapes of ``example_inputs`` (or ``shapes``, where ``-1`` is a dynamic dimension)
    and save it as ``out`` (.xml + .bin), atomically: the .bin lands first, the .xml (what a load looks for) last,
    so a killed conversion leaves no half cache."""
    ov = _ov()
    example = tuple(t.detach().cpu().float() for t in example_inputs)
    inputs = [tuple(t.shape) for t in example] if shapes is None else [tuple(s) for s in shapes]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings: shape checks traced as constants, intended
        model = ov.convert_model(module.eval().cpu(), example_input=example, input=inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.stem}.tmp{os.getpid()}-{threading.get_ident()}.xml")
    ov.save_model(model, str(tmp), compress_to_fp16=False)
    os.replace(tmp.with_suffix(".bin"), out.with_suffix(".bin"))
    os.replace(tmp, out)
    return out


def compile_model(xml: str | Path, device: str = "CPU", precision: str = "fp32") -> Any:
    """Compile a saved model for ``device`` (``CPU``, ``GPU``, ``GPU.1``...) with an explicit precision hint."""
    ov = _ov()
    config = {"INFERENCE_PRECISION_HINT": _HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
    with kept_signal_stack():  # OpenVINO swaps the thread's signal stack (models/altstack.py)
        return ov.Core().compile_model(str(xml), device, config)


class OVModule(nn.Module):
    """A compiled OpenVINO network called like the torch module it came from (CPU float32 tensors in and out)."""

    def __init__(self, compiled: Any, precision: str, device: str, xml: Path) -> None:
        super().__init__()
        self.compiled = compiled
        self.precision = precision
        self.ov_device = device
        self.xml = xml
        with kept_signal_stack():
            self._request = compiled.create_infer_request()
        self._lock = threading.Lock()

    def __del__(self) -> None:
        # released here, not at some later garbage collection, so OpenVINO's signal-stack swap is undone at once
        with kept_signal_stack():
            self.__dict__.pop("_request", None)
            self.__dict__.pop("compiled", None)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        arrays = [np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy()) for t in inputs]
        with self._lock:
            result = self._request.infer(arrays)
            outs = tuple(torch.from_numpy(np.array(result[o], dtype=np.float32)) for o in self.compiled.outputs)
        return outs

    def extra_repr(self) -> str:
        return f"device={self.ov_device}, precision={self.precision}, xml={self.xml.name}"


def load_network(
    build: Callable[[], nn.Module],
    example_inputs: Sequence[torch.Tensor],
    checkpoint: str | Path,
    config: Mapping[str, Any],
    device: str = "CPU",
    precision: str = "fp32",
    shapes: Sequence[Sequence[int]] | None = None,
) -> OVModule:
    """The OpenVINO version of the module ``build()`` makes from ``checkpoint``: read from the cache when it is
    there, else converted (``build`` is only called then) and cached. ``config`` names the network and everything
    besides the checkpoint that changes the converted graph; ``shapes`` (``-1``: dynamic) default to the example's."""
    shapes = [list(t.shape) for t in example_inputs] if shapes is None else [list(s) for s in shapes]
    full = {**dict(config), "shapes": shapes, "code": code_version()}
    xml = cache_path(checkpoint, full)
    if not xml.is_file() and not _writable(xml.parent):
        xml = cache_path(checkpoint, full, _USER_CACHE.expanduser())
    if not xml.is_file():
        convert(build(), example_inputs, xml, shapes)
    return OVModule(compile_model(xml, device, precision), precision, device, xml)


# -- per-network adapters: drop-in modules for the torch networks ------------------------------------------------


class _WithNoise(nn.Module):
    """GFP-GAN with its 15 noise maps as explicit inputs (what the converter traces)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, *noise: torch.Tensor) -> torch.Tensor:
        return self.model(x, list(noise))


class OVGFPGAN(nn.Module):
    """GFPGANv1Clean's interface (``forward(x, noise=None)``, ``noise_shapes``, ``num_noise``, ``out_size``) on an
    OpenVINO network converted at batch 1 (faces run one by one, as the CPU stage calls them): the batch-1 path
    folds the style into the small weights, the fastest here."""

    def __init__(self, net: OVModule, model: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.out_size = model.out_size
        self._shapes = model.noise_shapes()
        for i, t in enumerate(model.stylegan_decoder.stored_noise()):
            self.register_buffer(f"noise{i}", t.detach().to("cpu", torch.float32).clone())

    @property
    def num_noise(self) -> int:
        return len(self._shapes)

    def noise_shapes(self) -> list[tuple[int, int, int, int]]:
        return list(self._shapes)

    def forward(self, x: torch.Tensor, noise: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        maps = [getattr(self, f"noise{i}") for i in range(self.num_noise)] if noise is None else list(noise)
        if len(maps) != self.num_noise:
            raise ValueError(f"noise must be a list of {self.num_noise} tensors, got {len(maps)}")
        outs = [self.net(x[i : i + 1], *[m[i : i + 1] if m.shape[0] > 1 else m for m in maps])[0]
                for i in range(x.shape[0])]
        return torch.cat(outs).to(x.device)


def gfpgan_openvino(model: nn.Module, checkpoint: str | Path, device: str = "CPU", precision: str = "fp32") -> OVGFPGAN:
    """The OpenVINO twin of a loaded GFPGANv1Clean (its weights from ``checkpoint``, which keys the cache)."""
    s = model.out_size
    example = [torch.zeros(1, 3, s, s)] + [torch.zeros(1, *shape[1:]) for shape in model.noise_shapes()]
    config = {"network": "gfpgan", "out_size": s}
    net = load_network(lambda: _WithNoise(model), example, checkpoint, config, device, precision)
    return OVGFPGAN(net, model)


class _Fixed(nn.Module):
    """A network with its keyword options fixed (what the converter traces: CodeFormer's ``w``)."""

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__()
        self.model = model
        self.options = options

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, **self.options)


class OVPerItem(nn.Module):
    """A one-input network (CodeFormer at a fixed ``w``, RestoreFormer) converted at batch 1,
    called like the torch module: items run one by one. ``fixed`` are the keyword options baked into the graph;
    a call with another value is refused (it would need another conversion). ``attrs`` are copied from the torch
    module (``img_size``, ``resolution``...) for code that reads them."""

    def __init__(self, net: OVModule, fixed: Mapping[str, Any] | None = None, **attrs: Any) -> None:
        super().__init__()
        self.net = net
        self.fixed = dict(fixed or {})
        for k, v in attrs.items():
            setattr(self, k, v)

    def forward(self, x: torch.Tensor, **options: Any) -> torch.Tensor:
        for k, v in options.items():
            if k not in self.fixed or float(v) != float(self.fixed[k]):
                raise ValueError(f"this OpenVINO network was converted with {self.fixed}, not {k}={v!r}; load it again")
        outs = [self.net(x[i : i + 1])[0] for i in range(x.shape[0])]
        return torch.cat(outs).to(x.device)


def network_openvino(model: nn.Module, checkpoint: str | Path, example: torch.Tensor, network: str,
                     device: str = "CPU", precision: str = "fp32", fixed: Mapping[str, Any] | None = None,
                     **attrs: Any) -> OVPerItem:
    """The OpenVINO twin of a one-input network at the (batch-1) shape of ``example``; ``fixed`` keyword options
    are baked into the graph and its cache key."""
    fixed = dict(fixed or {})
    module = _Fixed(model, **fixed) if fixed else model
    config = {"network": network, **fixed}
    net = load_network(lambda: module, [example[:1]], checkpoint, config, device, precision)
    return OVPerItem(net, fixed, **attrs)


def codeformer_openvino(model: nn.Module, checkpoint: str | Path, fidelity: float, device: str = "CPU",
                        precision: str = "fp32") -> OVPerItem:
    """CodeFormer at fidelity ``w`` (part of the graph and of the cache key: another ``w`` is another conversion)."""
    s = model.img_size
    return network_openvino(model, checkpoint, torch.zeros(1, 3, s, s), "codeformer", device, precision,
                            fixed={"w": float(fidelity)}, img_size=s)


def restoreformer_openvino(model: nn.Module, checkpoint: str | Path, device: str = "CPU",
                           precision: str = "fp32") -> OVPerItem:
    s = model.resolution
    return network_openvino(model, checkpoint, torch.zeros(1, 3, s, s), "restoreformer", device, precision,
                            resolution=s)


class OVRetinaFace(nn.Module):
    """RetinaFace's interface (``forward(x) -> (loc, conf, landmarks)``, ``cfg``) on a network converted with a
    dynamic batch, height and width (frames come in any size). ``anchor`` is an empty parameter: the detector
    reads its device from the model's parameters, and the tensors around an OpenVINO network live on the CPU."""

    def __init__(self, net: OVModule, model: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.cfg = model.cfg
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.net(x)


def retinaface_openvino(model: nn.Module, checkpoint: str | Path, device: str = "CPU",
                        precision: str = "fp32") -> OVRetinaFace:
    example = [torch.zeros(1, 3, 320, 320)]
    config = {"network": "retinaface", "backbone": model.cfg.backbone}
    net = load_network(lambda: model, example, checkpoint, config, device, precision, shapes=[[-1, 3, -1, -1]])
    return OVRetinaFace(net, model)
