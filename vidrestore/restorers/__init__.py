"""Face restorers: GFP-GAN, CodeFormer and RestoreFormer behind one interface (:mod:`.base`).

``load_restorer(name_or_path)`` (:mod:`.registry`) builds any of them; ``resolve_run_weights`` finds every
weight file a run needs before anything loads. The fakes for tests live in :mod:`vidrestore.testing`.
"""

from __future__ import annotations

from .base import CROP_SIZE, Restorer, batch_slices, check_faces, faces_to_tensor, tensor_to_faces
from .codeformer import DEFAULT_FIDELITY, CodeFormerRestorer, build_codeformer
from .gfpgan import RESTORER_FILES, GFPGANRestorer, build_gfpgan
from .registry import (
    FACE_RESTORER_FILES,
    checkpoint_arch,
    load_face_restorer,
    load_restorer,
    resolve_restorer,
    resolve_run_weights,
    run_weight_files,
)
from .restoreformer import RestoreFormerRestorer, build_restoreformer

__all__ = [
    "CROP_SIZE",
    "DEFAULT_FIDELITY",
    "FACE_RESTORER_FILES",
    "RESTORER_FILES",
    "CodeFormerRestorer",
    "GFPGANRestorer",
    "RestoreFormerRestorer",
    "Restorer",
    "batch_slices",
    "build_codeformer",
    "build_gfpgan",
    "build_restoreformer",
    "check_faces",
    "checkpoint_arch",
    "faces_to_tensor",
    "load_face_restorer",
    "load_restorer",
    "resolve_restorer",
    "resolve_run_weights",
    "run_weight_files",
    "tensor_to_faces",
]
