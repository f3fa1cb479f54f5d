#!/usr/bin/env bash
# The one-shot GPU proof: one command, at most 8 minutes by its stages' own limits, on a
# bare copy of this tree with whatever PyTorch the machine has (nothing is installed).
#
#     bash benchmarks/gpu_check.sh              # on a GPU machine: writes to $OUT
#     bash benchmarks/gpu_check.sh --rehearse   # on a CPU machine: the same stages, small
#
# Stages, each bounded by `timeout` and logged to $OUT/<stage>.log; a failing stage is
# recorded and the next one runs:
#   environment      torch, CUDA and driver versions, the GPU, the TF32 environment
#                    variables and every backend's fp32_precision (outside and inside
#                    ablate's pin), where ablate is imported from (into summary.txt)
#   cuda_tests       the cuda-marked tests (tests/engine/test_cuda.py only: collecting
#                    the whole tree would import the serving packages), warnings shown,
#                    not fatal (a newer torch's deprecations must not fail the proof)
#   check            `ablate check --device cuda`: the layer-math properties on the GPU
#   train_throughput benchmarks/train_throughput.py --device cuda (10-seed cohort vs the
#                    per-run loops, the captured step, packing)
#   dropout_study    the main job, studies/dropout.toml on the GPU, on MNIST carried with
#                    the tree; its report (.md, .json, .html with the figures inline)
#                    is copied to $OUT
# $OUT receives at most 8 files: summary.txt, the four stage logs, report.md,
# report.json, report.html (the device tool returns 8). The run directory itself stays
# in a scratch folder.
#
# MNIST: a fresh GPU machine has no cache and no network. Carry it with the tree:
#     mkdir -p .data && cp ~/.cache/ablate/mnist.npz .data/    # .data/ is git-ignored
# and name `.data` in the device tool's `carry`; the script points ABLATE_DATA_DIR at it
# (an ABLATE_DATA_DIR already set wins). Without it the study stage FAILS, saying so, and
# the throughput benchmark tiles the committed 2,000-image subset (its speed does not
# depend on the images) and says so.
#
# Without a visible CUDA device the script stops within seconds (exit 2), unless
# --rehearse: then it copies the tree (tracked and untracked-not-ignored files, as the
# device tool sends it, plus .data/ or the local MNIST cache) into a scratch folder, hides
# ablate's installed copy and the packages the device image lacks
# (benchmarks/gpu_rehearsal/sitecustomize.py), and runs every stage there on the CPU with
# small sizes. .ci/run runs the rehearsal, so what breaks it breaks CI.
#
# Python: $PYTHON, else python3 (the device image's); the rehearsal defaults to this
# tree's .venv/bin/python when there is one.
set -u

REHEARSE=0
case "${1:-}" in
  --rehearse) REHEARSE=1 ;;
  "") ;;
  *) echo "usage: bash benchmarks/gpu_check.sh [--rehearse]" >&2; exit 2 ;;
esac

SRC=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONUNBUFFERED=1          # a stage cut by `timeout` keeps its log
export PYTHONDONTWRITEBYTECODE=1
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1  # only the plugins the tests need, on any image
export COLUMNS=140                 # rich tables at a readable width in the logs
START=$SECONDS

if [ "$REHEARSE" = 1 ]; then
  if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
  elif [ -x "$SRC/.venv/bin/python" ]; then PY=$SRC/.venv/bin/python
  else PY=python3; fi
  SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/gpu-rehearsal.XXXXXX")
  trap 'rm -rf "$SCRATCH"' EXIT
  ROOT=$SCRATCH/tree
  mkdir -p "$ROOT"
  # the tree as the device tool sends it: tracked and untracked-not-ignored files (a
  # tree outside git: everything but the virtual environment and caches)
  if git -C "$SRC" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    (cd "$SRC" && git ls-files -z --cached --others --exclude-standard \
      | tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$ROOT"
  else
    (cd "$SRC" && tar --exclude=./.venv --exclude=./.git --exclude=./runs \
      --exclude='*/__pycache__' -cf - .) | tar -xf - -C "$ROOT"
  fi
  # the carried MNIST: .data/ if this tree has it, else the local cache
  mkdir -p "$ROOT/.data"
  for f in "$SRC/.data/mnist.npz" "${ABLATE_DATA_DIR:-$HOME/.cache/ablate}/mnist.npz"; do
    if [ -f "$f" ]; then cp "$f" "$ROOT/.data/mnist.npz"; break; fi
  done
  export PYTHONPATH=$ROOT/benchmarks/gpu_rehearsal:$ROOT
  DEVICE=cpu
  EXAMPLES=3; IMAGES=1280; ROUNDS=1
  STUDY_ARGS=(--seeds 3 --epochs 2 --subset 2000)
else
  PY=${PYTHON:-python3}
  ROOT=$SRC
  SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
  trap 'rm -rf "$SCRATCH"' EXIT
  export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
  DEVICE=cuda
  EXAMPLES=25; IMAGES=12800; ROUNDS=3
  STUDY_ARGS=()
  if ! timeout 60 "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)"
  then
    echo "gpu_check: no CUDA device is visible to $PY (no torch there, or torch.cuda.is_available() is False);" \
      "run it on a GPU machine, or rehearse it here: bash benchmarks/gpu_check.sh --rehearse" >&2
    exit 2
  fi
fi

OUT=${OUT:-$SRC/gpu-check-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
cd "$ROOT" || exit 2
if [ -z "${ABLATE_DATA_DIR:-}" ] && [ -f "$ROOT/.data/mnist.npz" ]; then
  export ABLATE_DATA_DIR=$ROOT/.data
fi
MNIST=${ABLATE_DATA_DIR:-$HOME/.cache/ablate}/mnist.npz
FAILED=()

# The limits, in seconds, with `timeout -k 5` (5 s more each to die): 25 + 100 + 90 +
# 90 + 145 = 450, + 5 x 5 = 475 <= 480. tests/test_gpu_check.py adds them up.
stage() {  # stage NAME LIMIT COMMAND...: run under `timeout`, log to $OUT/NAME.log
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  echo "== $name (limit $limit s): $*" | tee -a "$SUMMARY"
  timeout -k 5 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local status=$?
  local verdict=ok
  if [ "$status" -ne 0 ]; then
    verdict=FAILED
    FAILED+=("$name")
    [ "$status" -eq 124 ] || [ "$status" -eq 137 ] && verdict="FAILED (cut at its $limit s limit)"
  fi
  echo "   $verdict: exit $status after $((SECONDS - start)) s" | tee -a "$SUMMARY"
}

{
  echo "gpu_check $([ "$REHEARSE" = 1 ] && echo "REHEARSAL on the CPU" || echo "on the GPU")," \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ), tree $ROOT"
  echo "python: $PY; MNIST: $MNIST ($([ -f "$MNIST" ] && echo present || echo MISSING))"
} | tee -a "$SUMMARY"

environment_stage() {
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  else
    echo "nvidia-smi: not on PATH"
  fi
  "$PY" benchmarks/gpu_environment.py --device "$DEVICE"
}
export -f environment_stage
export PY DEVICE
stage environment 25 bash -c environment_stage
sed 's/^/   | /' "$OUT/environment.log" >> "$SUMMARY"
rm -f "$OUT/environment.log"  # kept in summary.txt: $OUT holds at most 8 files

# -W default: warnings are printed, not errors (pyproject's filterwarnings = error stays
# for CI, on the tested torch); -p no:cacheprovider: the tree may be read-only.
stage cuda_tests 100 "$PY" -m pytest -m cuda -v -rfEs -W default -p no:cacheprovider \
  tests/engine/test_cuda.py

stage check 90 "$PY" -m ablate.cli check --device "$DEVICE" --examples "$EXAMPLES"

DATA=mnist
if [ ! -f "$MNIST" ]; then
  DATA=subset
  echo "   NOTE: MNIST missing ($MNIST): the benchmark tiles the committed subset" \
    | tee -a "$SUMMARY"
fi
stage train_throughput 90 "$PY" benchmarks/train_throughput.py --device "$DEVICE" \
  --data "$DATA" --images "$IMAGES" --rounds "$ROUNDS"

RUNS=$SCRATCH/runs
study_stage() {
  if [ ! -f "$MNIST" ]; then
    echo "MNIST is missing at $MNIST: this machine has no cache and no network. Carry it:" \
      "mkdir -p .data && cp ~/.cache/ablate/mnist.npz .data/, and name .data in carry"
    return 3
  fi
  "$PY" -m ablate.cli study studies/dropout.toml --device "$DEVICE" --out "$RUNS" "$@" \
    || return
  for f in report.md report.json report.html; do
    cp "$RUNS/dropout/$f" "$OUT/$f" || return
  done
}
export -f study_stage
export MNIST RUNS OUT
stage dropout_study 145 bash -c 'study_stage "$@"' bash ${STUDY_ARGS[@]+"${STUDY_ARGS[@]}"}

{
  echo
  echo "== results"
  grep -E "^(FAILED|ERROR)|[0-9]+ (passed|failed|skipped|error)" "$OUT/cuda_tests.log" \
    | tail -n 12
  grep -E "properties hold|matmul precision|FAILED" "$OUT/check.log"
  grep -E "^(data|device|fp32|median|engine FLOP|speedup|captured|packing speedup)" \
    "$OUT/train_throughput.log"
  grep -E "^training|runs in|MNIST is missing" "$OUT/dropout_study.log" | head -n 4
  [ -f "$OUT/report.md" ] && grep -m 1 "^## Verdict" "$OUT/report.md"
  echo
  if [ ${#FAILED[@]} -eq 0 ]; then
    echo "every stage passed in $((SECONDS - START)) s"
  else
    echo "FAILED stages: ${FAILED[*]} ($((SECONDS - START)) s in all)"
  fi
} | tee -a "$SUMMARY"
echo "outputs in $OUT/: $(cd "$OUT" && ls | tr '\n' ' ')"
[ ${#FAILED[@]} -eq 0 ]
