"""Shared fixtures. Media are made by the tests themselves (PyAV); reference data comes from ../shared."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def shared_ref() -> Path:
    """The read-only reference folder beside the checkout (official outputs on synthetic weights)."""
    if not SHARED_REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {SHARED_REFERENCE}")
    return SHARED_REFERENCE


@pytest.fixture(scope="session")
def synthetic_gfpgan(shared_ref: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GFPGANv1Clean checkpoint in the official layout with the reference's synthetic weights (348 MB)."""
    ref = shared_ref / "gfpgan"
    out = tmp_path_factory.mktemp("gfpgan-weights") / "GFPGANv1.4.pth"
    subprocess.run(
        [sys.executable, str(ref / "make_weights.py"), str(ref / "gfpgan_v1clean_keys.json"), str(out)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    skimage = pytest.importorskip("skimage")
    return skimage.data.astronaut()


@pytest.fixture(scope="session")
def true_landmarks(shared_ref: Path) -> np.ndarray:
    """The astronaut's 5 landmarks in the 512 image (the facexlib reference's)."""
    return np.load(shared_ref / "facexlib" / "align_landmarks5_astronaut.npy").astype(np.float64)
