#!/usr/bin/env bash
# GPU check of the deeprnn_fast CUDA kernels, end to end within 300 s of the machine's start (build included), so
# that a second run fits the same lease. Steps, each a process of its own under `timeout`, the goals' numbers first:
#   1. build: the TF-free module deeprnn_fast._kernels and the C++ self-check for the local GPU
#      (benchmarks/gpu/build_kernels.py: nvcc + g++, no setup.py, no TensorFlow);
#   2. timing: every cell (tanh RNN, GRU, LSTM), forward and forward + backward, T = 128, B in {1, 8, 32, 256},
#      H in {256, 1024}, L in {2, 4}, against torch.nn.RNN / GRU / LSTM(num_layers=L) with cuDNN's TF32 not allowed
#      and allowed, N calls back to back per time; ours also with TF32 allowed at B <= 32 (the tensor-core tile,
#      its outputs against the exact ones'); the cost of one grid barrier, the "x floor" ratio and the cost model's
#      prediction beside each row (csrc/engine/cuda/COST_MODEL.md);
#   3. correctness of forward and backward, every schedule and cell, dense and token inputs, against the float64
#      oracle (deeprnn_fast/testing/gpu_check.py), as far as its slot goes; then masks and dropout (every cell with
#      each mask pattern and dropout, small shapes) against the float64 oracle of them, in 30 s kept for them;
#   4. the C++ self-check, then compute-sanitizer memcheck and racecheck, each in a fixed slot, on the self-check's
#      --sanitize cases (the B = 32 tile, blocks above 48 KB of shared memory, the tensor-core tile);
#   5. report: tables and gpu_check.json from what the steps wrote (no GPU).
# Every result goes to $OUT as it is produced (results.jsonl: one JSON line per check or timing row), so a kill or a
# hang loses nothing already measured. $OUT (or build/gpu_check/out) holds at most 8 files: build.log, ptxas.txt,
# results.jsonl, gpu_check.log, gpu_check_table.txt, gpu_check.json, selfcheck.log, sanitizers.log.
#
# Usage:  benchmarks/gpu/check.sh [--dry-run] [extra gpu_check options, e.g. --quick]
#   --dry-run   every step but the GPU calls: the build (with nvcc for sm_90 where there is one, as on the GPU
#               machine; DEEPRNN_GPU_CHECK_DRY_COMPILE=0 skips it and uses the package's module), then every phase
#               of gpu_check --dry-run (tests/test_gpu_check_dryrun.py runs this).
# Needs: python3 with numpy, pybind11 and (for the GPU run) torch; nvcc (CUDA_HOME, /usr/local/cuda or PATH).
# pybind11 missing and no network: carry a wheel in .whl/ (see benchmarks/gpu/build_kernels.py); the build then
# installs it from there, or stops saying so.
set -uo pipefail

START=$(date +%s)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PYTHON:-python3}"
OUT_DIR="${OUT:-$ROOT/build/gpu_check/out}"
BUILD_DIR="${DEEPRNN_GPU_CHECK_BUILD:-$ROOT/build/gpu_check}"
DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then
  DRY=1
  shift
fi
# The whole script: 300 s of the machine's start, less its start-up; a dry run (on a CPU machine that may be busy)
# gets more.
BUDGET_S="${DEEPRNN_GPU_CHECK_BUDGET_S:-$(( DRY ? 900 : 290 ))}"
SANITIZER_SLOT_S="${DEEPRNN_GPU_CHECK_SANITIZER_SLOT_S:-30}"
DEADLINE=$(( START + BUDGET_S ))
mkdir -p "$OUT_DIR"
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# This script's own files from an earlier run (nothing else in $OUT is touched).
for f in build.log ptxas.txt results.jsonl gpu_check.log gpu_check_table.txt gpu_check.json selfcheck.log \
    sanitizers.log; do
  rm -f "$OUT_DIR/$f"
done

left() { echo $(( DEADLINE - $(date +%s) )); }
# Seconds for the next step: what is left less what the later steps keep (at least 5).
slot() { local s=$(( $(left) - $1 )); (( s < 5 )) && s=5; echo "$s"; }

echo "== check.sh: build ($(date -u +%H:%M:%S))"
if ! "$PY" -c "import numpy" 2>/dev/null; then
  echo "check.sh: $PY has no numpy" >&2
  exit 2
fi
MODULE=""
SELFCHECK=""
if (( DRY )) && [[ "${DEEPRNN_GPU_CHECK_DRY_COMPILE:-1}" == "0" ]]; then
  echo "check.sh: dry run without the compile (DEEPRNN_GPU_CHECK_DRY_COMPILE=0): the package's module" \
    | tee "$OUT_DIR/build.log"
else
  if (( DRY )); then
    ARCH_ARGS=(--cuda auto --arch "${DEEPRNN_GPU_ARCH:-90}")
  else
    ARCH_ARGS=(--cuda on --arch "${DEEPRNN_GPU_ARCH:-native}")
  fi
  # The build keeps 2 + 2 x the sanitizer slot + 60 s for the other steps (and no more than that on the GPU).
  if ! timeout -k 10 "$(slot $(( 2 * SANITIZER_SLOT_S + 100 )))" "$PY" benchmarks/gpu/build_kernels.py \
      "${ARCH_ARGS[@]}" --out "$BUILD_DIR" 2>&1 | tee "$OUT_DIR/build.log"; then
    echo "check.sh: build failed or ran out of time (log: $OUT_DIR/build.log)" >&2
    exit 1
  fi
  cat "$BUILD_DIR"/ptxas_sm_*.txt > "$OUT_DIR/ptxas.txt" 2>/dev/null || rm -f "$OUT_DIR/ptxas.txt"
  MODULE=$(ls "$BUILD_DIR"/_kernels*.so | head -n 1)
  SELFCHECK="$BUILD_DIR/stacked_rnn_selfcheck"
fi
echo "== check.sh: built in $(( $(date +%s) - START )) s"

GPU_CHECK=("$PY" -m deeprnn_fast.testing.gpu_check --out "$OUT_DIR" --sanitizer-slot-s "$SANITIZER_SLOT_S")
[[ -n "$MODULE" ]] && GPU_CHECK+=(--kernels "$MODULE")
[[ -n "$SELFCHECK" && -x "$SELFCHECK" ]] && GPU_CHECK+=(--selfcheck "$SELFCHECK")
(( DRY )) && GPU_CHECK+=(--dry-run)
RC=0
# phase, then the seconds the later phases keep.
run_phase() {
  local phase=$1 keep=$2 limit
  shift 2
  limit=$(slot "$keep")
  echo "== check.sh: $phase ($limit s, $(date -u +%H:%M:%S))"
  timeout -k 10 "$limit" "${GPU_CHECK[@]}" --phase "$phase" --deadline $(( $(date +%s) + limit - 5 )) "$@"
  local rc=$?
  if (( rc == 124 || rc == 137 )); then
    echo "check.sh: $phase ran out of its $limit s (what it measured is in results.jsonl)"
  elif (( rc != 0 )); then
    RC=$rc
  fi
}
EXTRA=("$@")
run_phase timing $(( 2 * SANITIZER_SLOT_S + 60 )) "${EXTRA[@]}"
run_phase correctness $(( 2 * SANITIZER_SLOT_S + 40 )) "${EXTRA[@]}"
run_phase sanitizers 15 "${EXTRA[@]}"
timeout -k 5 "$(slot 0)" "${GPU_CHECK[@]}" --phase report "${EXTRA[@]}"
REPORT=$?
(( REPORT != 0 )) && RC=$REPORT
echo "== check.sh: finished in $(( $(date +%s) - START )) s with exit code $RC; outputs in $OUT_DIR"
exit $RC
