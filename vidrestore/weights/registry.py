"""The registry of known weight files (data): what each file is, where it is published, its size, hashes and
licence. ``weights/manifest.json`` in a checkout is generated from it (a test keeps the two equal).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any, Final

from ..errors import WeightsError

__all__ = ["WeightFile", "WEIGHT_FILES", "REGISTRY", "lookup", "manifest_dict", "manifest_json"]


@dataclass(frozen=True)
class WeightFile:
    """One published weight file. ``size``/``sha256`` are ``None`` where no trustworthy value is known."""

    name: str
    url: str
    size: int | None
    sha256: str | None
    licence: str
    licence_url: str
    non_commercial: bool = False
    md5: str | None = None
    used_by: str = ""
    notice: str = ""  # printed once, on the first download of a non-commercial file

    def __post_init__(self) -> None:
        if self.sha256 is None and self.md5 is None:
            raise ValueError(f"{self.name}: a weight file needs a sha256 or at least an md5")
        if self.url.rsplit("/", 1)[-1] != self.name:
            raise ValueError(f"{self.name}: the URL must end with the file name ({self.url})")



_GFPGAN_LICENCE = "Apache-2.0 (GFPGAN); trained on FFHQ (CC BY-NC-SA 4.0)"

_GFPGAN_LICENCE_URL = "https://github.com/TencentARC/GFPGAN/blob/master/LICENSE"

_FACEXLIB_LICENCE = "MIT (facexlib)"

_FACEXLIB_LICENCE_URL = "https://github.com/xinntao/facexlib/blob/master/LICENSE"

_REALESRGAN_LICENCE = "BSD-3-Clause (Real-ESRGAN; no separate weight licence)"

_REALESRGAN_LICENCE_URL = "https://github.com/xinntao/Real-ESRGAN/blob/master/LICENSE"

_CODEFORMER_NOTICE = (
    "codeformer.pth is covered by the NTU S-Lab License 1.0 (Copyright 2022 S-Lab): redistribution and use, "
    "with or without modification, are permitted for NON-COMMERCIAL purposes only; keep the copyright notice, "
    "conditions and disclaimer; the contributors' names may not be used to endorse derived products; provided "
    "AS IS, without warranty. For commercial use contact the authors. "
    "Full text: https://github.com/sczhou/CodeFormer/blob/master/LICENSE"
)

#: Every file vidrestore knows, in the order ``vidrestore weights list`` shows them.
WEIGHT_FILES: Final[tuple[WeightFile, ...]] = (
    WeightFile(
        name="GFPGANv1.3.pth",
        url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.3.pth",
        size=348_632_874,
        sha256="c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70",
        licence=_GFPGAN_LICENCE,
        licence_url=_GFPGAN_LICENCE_URL,
        used_by="restorer gfpgan v1.3",
    ),
    WeightFile(
        name="GFPGANv1.4.pth",
        url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
        size=348_632_874,
        sha256="e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad",
        licence=_GFPGAN_LICENCE,
        licence_url=_GFPGAN_LICENCE_URL,
        used_by="restorer gfpgan v1.4",
    ),
    WeightFile(
        name="detection_Resnet50_Final.pth",
        url="https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
        size=109_497_761,
        sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
        licence=_FACEXLIB_LICENCE,
        licence_url=_FACEXLIB_LICENCE_URL,
        used_by="face detector RetinaFace ResNet-50",
    ),
    WeightFile(
        name="detection_mobilenet0.25_Final.pth",
        url="https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth",
        size=1_789_735,
        sha256="2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
        licence=_FACEXLIB_LICENCE,
        licence_url=_FACEXLIB_LICENCE_URL,
        used_by="face detector RetinaFace MobileNet-0.25",
    ),
    WeightFile(
        name="parsing_parsenet.pth",
        url="https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth",
        size=85_331_193,
        sha256="3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
        licence=_FACEXLIB_LICENCE,
        licence_url=_FACEXLIB_LICENCE_URL,
        used_by="face parsing mask (paste-back)",
    ),
    WeightFile(
        name="RealESRGAN_x2plus.pth",
        url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth",
        size=67_061_725,
        sha256="49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
        licence=_REALESRGAN_LICENCE,
        licence_url=_REALESRGAN_LICENCE_URL,
        used_by="background upscaler x2",
    ),
    WeightFile(
        name="RealESRGAN_x4plus.pth",
        url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
        size=67_040_989,
        sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
        licence=_REALESRGAN_LICENCE,
        licence_url=_REALESRGAN_LICENCE_URL,
        used_by="background upscaler x4",
    ),
    WeightFile(
        name="codeformer.pth",
        url="https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth",
        size=376_637_898,
        sha256="1009e537e0c2a07d4cabce6355f53cb66767cd4b4297ec7a4a64ca4b8a5684b7",
        licence="NTU S-Lab License 1.0",
        licence_url="https://github.com/sczhou/CodeFormer/blob/master/LICENSE",
        non_commercial=True,
        used_by="restorer codeformer",
        notice=_CODEFORMER_NOTICE,
    ),
    WeightFile(
        name="RestoreFormer.pth",
        url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.4/RestoreFormer.pth",
        size=None,
        sha256=None,
        licence=_GFPGAN_LICENCE,
        licence_url=_GFPGAN_LICENCE_URL,
        md5="eaeeff6c4a1caa1673977cb374e6f699",
        used_by="restorer restoreformer",
    ),
)


#: Read-only name → :class:`WeightFile` view of :data:`WEIGHT_FILES`.
REGISTRY: Final[Mapping[str, WeightFile]] = MappingProxyType({w.name: w for w in WEIGHT_FILES})



def lookup(name: str, registry: Mapping[str, WeightFile] = REGISTRY) -> WeightFile:
    """The registry entry for ``name`` (the ``.pth`` suffix may be left out)."""
    entry = registry.get(name) or registry.get(name + ".pth")
    if entry is None:
        raise WeightsError(f"unknown weight file {name!r}; known files: {', '.join(registry)}")
    return entry



def manifest_dict(files: Iterable[WeightFile] = WEIGHT_FILES) -> dict[str, Any]:
    """The registry as plain data, the content of ``weights/manifest.json``."""
    return {
        "comment": "Generated from vidrestore/weights/registry.py (the source of truth): "
        "python -c 'import vidrestore.weights as w; print(w.manifest_json(), end=\"\")' > weights/manifest.json",
        "files": [asdict(w) for w in files],
    }



def manifest_json(files: Iterable[WeightFile] = WEIGHT_FILES) -> str:
    return json.dumps(manifest_dict(files), indent=2, ensure_ascii=False) + "\n"

