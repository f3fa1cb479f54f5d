#!/usr/bin/env bash
# The GPU proof in one go (about 8 minutes on one GPU): the cuda-marked tests, `ablate check`
# on the GPU, the training benchmark on the GPU (a 10-seed cohort against the plain and
# the careful per-run loops; the captured step; packing) and, with MNIST cached, the
# dropout study. Run from anywhere:
#
#     bash benchmarks/gpu_check.sh            # writes to $OUT, else ./gpu-check-<time>/
#
# Uses .venv/bin/python when present (make install), else python3; the GPU build of torch
# must be installed there (the CPU pin in constraints.txt is not a GPU build). MNIST comes
# from the cache (ABLATE_DATA_DIR, else ~/.cache/ablate; `ablate data fetch` fills it);
# without it the benchmark tiles the committed 2,000-image subset (throughput does not
# depend on the images). Every stage has a time limit and the script goes on after a
# failure; summary.txt lists each stage's exit status and the benchmark's key lines.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
OUT=${OUT:-gpu-check-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

stage() {  # stage NAME LIMIT_SECONDS COMMAND...: run, log to $OUT/NAME.txt, record status
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  echo "== $name: $*" | tee -a "$SUMMARY"
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local status=$?
  echo "   exit $status after $((SECONDS - start)) s (limit $limit s; log $OUT/$name.txt)" \
    | tee -a "$SUMMARY"
  return 0
}

stage environment 60 bash -c "nvidia-smi; $PY -c 'import torch; print(torch.__version__, \
torch.version.cuda, torch.cuda.is_available(), torch.cuda.device_count(), \
torch.cuda.get_device_name() if torch.cuda.is_available() else None)'"

# The cuda-marked tests (skipped with their reason where no GPU is visible: then they
# report "skipped", which summary.txt shows).
stage cuda_tests 240 "$PY" -m pytest -m cuda -v -p no:cacheprovider tests

# The layer-math properties on the GPU, float32 matmuls pinned to full float32.
stage check 180 "$PY" -m ablate.cli check --device cuda --examples 25

DATA=subset
if "$PY" -c "import sys; from ablate.data._mnist import cache_file; sys.exit(not cache_file(None).exists())" \
    2> /dev/null; then
  DATA=mnist
fi
stage train_throughput 300 "$PY" benchmarks/train_throughput.py --device cuda --data "$DATA" \
  --images 12800 --rounds 3

# The main job on the GPU: the dropout study (one packed 20-replica cohort); its verdict
# and seconds go in the README beside the CPU's.
if [ "$DATA" = mnist ]; then
  stage dropout_study 300 "$PY" -m ablate.cli study studies/dropout.toml --device cuda \
    --out "$OUT/runs"
fi

{
  echo
  echo "== results"
  grep -E "passed|failed|skipped|error" "$OUT/cuda_tests.txt" | tail -n 3
  grep -E "properties hold|matmul precision" "$OUT/check.txt"
  grep -E "^(data|device|fp32|median|engine FLOP|speedup|captured|packing speedup)" \
    "$OUT/train_throughput.txt"
  [ -f "$OUT/dropout_study.txt" ] && grep -E "runs in|Verdict|better|worse|equivalent" \
    "$OUT/dropout_study.txt" | head -n 5
} | tee -a "$SUMMARY"
echo "outputs in $OUT/"
