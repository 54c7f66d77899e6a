"""The pipeline every door runs: ``build`` makes the models and the face stage from options, ``stream`` runs
decode → stage → encode in threads joined by bounded queues (``threads``)."""

from __future__ import annotations

from ..util import stale_partials, sweep_partials, temporary_path
from .build import build_stage, identity_stage, upscale_stage
from .stream import (
    FaceStage,
    Output,
    RestoreStats,
    StreamSetup,
    expected_frames,
    filtered,
    keep_input,
    mapped,
    plan_stream,
    read_error,
    run_stream,
    side_by_side,
    write_error,
)

__all__ = [
    "FaceStage", "Output", "RestoreStats", "StreamSetup", "build_stage", "expected_frames", "filtered",
    "identity_stage", "keep_input", "mapped", "plan_stream", "read_error", "run_stream", "side_by_side",
    "stale_partials", "sweep_partials", "temporary_path", "upscale_stage", "write_error",
]
