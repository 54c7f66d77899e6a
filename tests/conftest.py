"""Shared fixtures. Media are made by the tests themselves (PyAV); reference data comes from ../shared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = REPO.parent / "shared" / "reference"

#: Set by CI (.ci/run): a test that skips fails instead, unless it skips for a reason below (no CUDA device).
NO_SKIPS_ENV = "VIDRESTORE_NO_SKIPS"
ALLOWED_SKIPS = ("needs CUDA",)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Under ``VIDRESTORE_NO_SKIPS=1`` a skipped test is reported as failed: CI installs everything the tests need
    (Xvfb, Chromium, the ray extra), so a skip there means a test silently did not run."""
    outcome = yield
    report = outcome.get_result()
    if not os.environ.get(NO_SKIPS_ENV) or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if any(allowed in reason for allowed in ALLOWED_SKIPS):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped, but {NO_SKIPS_ENV}=1 requires every test to run: {reason}"


@pytest.fixture(scope="session")
def shared_ref() -> Path:
    """The read-only reference folder beside the checkout (official outputs on synthetic weights).

    Missing, it FAILS every test that needs it (never a skip): a run without it would pass with the face
    pipeline untested.
    """
    if not SHARED_REFERENCE.is_dir():
        pytest.fail(
            f"reference data not found at {SHARED_REFERENCE}: the face-pipeline tests need the shared/ folder "
            "beside the checkout (clone or copy it there); without it these tests cannot run",
            pytrace=False,
        )
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
