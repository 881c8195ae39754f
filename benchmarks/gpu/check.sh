#!/usr/bin/env bash
# GPU check of the deeprnn_fast CUDA kernels, end to end in under 8 minutes:
#   1. builds the TF-free module deeprnn_fast._kernels and the C++ self-check for the local GPU
#      (benchmarks/gpu/build_kernels.py: nvcc + g++, no setup.py, no TensorFlow);
#   2. correctness of forward and backward, every schedule, every cell (tanh / relu RNN, GRU, LSTM), dense and token
#      inputs, against the float64 oracle (deeprnn_fast/testing/gpu_check.py), and the C++ self-check (CUDA library
#      against the CPU library, every cell, dense and tokens);
#   3. compute-sanitizer memcheck and racecheck on the self-check's small cases, where the tool works;
#   4. timings of the fused tanh RNN against PyTorch's cuDNN RNN, of the fused GRU against cuDNN's GRU
#      (nn.GRU(num_layers=L)) and of the fused LSTM against nn.LSTM(num_layers=L), and the cost of one grid barrier;
#      three tables at the end.
# Everything it prints also goes to $OUT (or build/gpu_check/out): gpu_check_table.txt, gpu_check.log,
# gpu_check.json, build.log, selfcheck.log, sanitizer_*.log, ptxas_sm_*.txt.
#
# Usage:  benchmarks/gpu/check.sh [--dry-run] [extra gpu_check options, e.g. --quick --skip-timing]
#   --dry-run   no GPU, no nvcc: the correctness part on the CPU backend of the already built module
#               (tests/test_gpu_check_dryrun.py runs this).
# Needs: python3 with numpy, pybind11 and (for the GPU run) torch; nvcc (CUDA_HOME, /usr/local/cuda or PATH).
# pybind11 missing and no network: carry a wheel in .whl/ (see benchmarks/gpu/build_kernels.py); the build then
# installs it from there, or stops saying so.
set -uo pipefail

START=$(date +%s)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PYTHON:-python3}"
OUT_DIR="${OUT:-$ROOT/build/gpu_check/out}"
BUILD_DIR="${DEEPRNN_GPU_CHECK_BUILD:-$ROOT/build/gpu_check}"
BUDGET_S="${DEEPRNN_GPU_CHECK_BUDGET_S:-460}"   # whole script; the lease has ~15 min including machine start
mkdir -p "$OUT_DIR"
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

if [[ "${1:-}" == "--dry-run" ]]; then
  shift
  exec "$PY" -m deeprnn_fast.testing.gpu_check --dry-run --out "$OUT_DIR" "$@"
fi

echo "== check.sh: build ($(date -u +%H:%M:%S))"
if ! "$PY" -c "import numpy" 2>/dev/null; then
  echo "check.sh: $PY has no numpy" >&2
  exit 2
fi
if ! "$PY" benchmarks/gpu/build_kernels.py --cuda on --arch "${DEEPRNN_GPU_ARCH:-native}" --out "$BUILD_DIR" \
    2>&1 | tee "$OUT_DIR/build.log"; then
  echo "check.sh: build failed (log: $OUT_DIR/build.log)" >&2
  exit 1
fi
cp "$BUILD_DIR"/ptxas_sm_*.txt "$OUT_DIR/" 2>/dev/null || true
MODULE=$(ls "$BUILD_DIR"/_kernels*.so | head -n 1)
echo "== check.sh: built in $(( $(date +%s) - START )) s; running gpu_check"
"$PY" -m deeprnn_fast.testing.gpu_check --kernels "$MODULE" --selfcheck "$BUILD_DIR/stacked_rnn_selfcheck" \
  --out "$OUT_DIR" --deadline $(( START + BUDGET_S )) "$@"
RC=$?
echo "== check.sh: finished in $(( $(date +%s) - START )) s with exit code $RC; outputs in $OUT_DIR"
exit $RC
