"""The public API is pinned: what __all__ promises exists, and importing the package stays light."""

from __future__ import annotations

import subprocess
import sys

import vidrestore


def test_all_is_pinned_and_resolvable():
    assert sorted(vidrestore.__all__) == [
        "Face",
        "RestoreOptions",
        "RestoreStats",
        "VidrestoreError",
        "__version__",
        "align_face",
        "errors",
        "load_detector",
        "load_restorer",
        "restore_video",
    ]
    for name in vidrestore.__all__:
        assert getattr(vidrestore, name) is not None
    assert callable(vidrestore.load_restorer) and callable(vidrestore.load_detector)


def test_error_tree():
    e = vidrestore.errors
    for cls in (e.UsageError, e.MediaError, e.OutputError, e.WeightsError, e.CheckpointError, e.DeviceError):
        assert issubclass(cls, vidrestore.VidrestoreError)
    assert issubclass(e.ChecksumError, e.WeightsError)


def test_import_does_not_load_torch():
    code = "import sys, vidrestore; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
