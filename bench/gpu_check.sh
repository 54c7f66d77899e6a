#!/usr/bin/env bash
# GPU readiness check for a bare NVIDIA machine that has Python and torch (CUDA build) but not PyAV or filterpy:
# installs them from the wheels kept in .whl/ (ignored by git; fill it beforehand on a machine with network:
#   pip download -d .whl --no-deps --only-binary=:all: --python-version 311 --platform manylinux_2_28_x86_64 \
#       -c .ci/constraints.txt av
#   pip download -d .whl --no-deps -c .ci/constraints.txt filterpy
# ), then runs the CUDA-marked tests and the GPU rows of bench/restorer.py, bench/pipeline.py (1080p, 1 and 3
# faces, bf16) and bench/upscale.py, writing each table into the folder given as the argument. Under 8 minutes on
# an H100/H200-class GPU; every step has its own time limit, and a failed step is recorded, not fatal.
#
#   bash bench/gpu_check.sh /tmp/gpu-tables
set -uo pipefail
out="${1:?usage: bench/gpu_check.sh OUTPUT_FOLDER}"
cd "$(dirname "$0")/.."
mkdir -p "$out"
py="${PYTHON:-python3}"
status=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, tee into OUT/NAME.txt, remember a failure
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)" | tee -a "$out/summary.txt"
    local t0=$SECONDS
    timeout -k 10 "$limit" "$@" >"$out/$name.txt" 2>&1
    local rc=$?
    echo "   rc=$rc in $((SECONDS - t0)) s" | tee -a "$out/summary.txt"
    [ $rc -eq 0 ] || status=1
}

"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "error: torch sees no CUDA device here" | tee "$out/summary.txt"; exit 1; }
"$py" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" | tee "$out/summary.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$out/summary.txt" 2>&1 || true

missing=$("$py" - <<'EOF'
import importlib.util
print(" ".join(m for m in ("av", "filterpy", "pytest", "cv2", "scipy", "rich", "filelock", "skimage")
               if importlib.util.find_spec(m) is None))
EOF
)
if [ -n "$missing" ]; then
    echo "installing from .whl/: $missing" | tee -a "$out/summary.txt"
    "$py" -m pip install -q --no-index --find-links .whl av filterpy >>"$out/summary.txt" 2>&1 || status=1
    # the rest of the runtime set, from .whl/ when present there, else from the index if one is reachable
    "$py" -m pip install -q --find-links .whl -c .ci/constraints.txt pytest opencv-python scipy rich filelock \
        scikit-image pillow >>"$out/summary.txt" 2>&1 || true
fi

export VIDRESTORE_NO_SKIPS=1 RAY_AUTH_MODE=disabled
step tests_cuda 150 "$py" -m pytest -q -m gpu -x -p no:cacheprovider
step nvenc 60 "$py" -m pytest -q -p no:cacheprovider tests/test_cli.py -k nvenc  # encodes with h264_nvenc there
step bench_restorer 90 "$py" bench/restorer.py --device cuda --precision both --faces 64 --batches 1,8,16,32
step bench_upscale 90 "$py" bench/upscale.py --device cuda --precision bf16
step bench_pipeline_1face 90 "$py" bench/pipeline.py --device cuda --size 1920x1080 --faces 1 --frames 120 --precision bf16
step bench_pipeline_3faces 90 "$py" bench/pipeline.py --device cuda --size 1920x1080 --faces 3 --frames 120 --precision bf16
echo "tables in $out; overall status $status" | tee -a "$out/summary.txt"
exit $status
