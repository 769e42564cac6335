#!/usr/bin/env bash
# One session on a lent GPU (an H200 with 16 cores, torch with CUDA, pytest/hypothesis/mpmath, no
# network), within about 6 minutes: builds the extension with its CUDA kernels (sm_90 only), smoke
# tests every op once, runs the copula test files (one pytest per file, each under its own
# timeout, JUnit XML), the copula benchmark, a short per-head training benchmark, the training-step
# benchmark (pipelines, bf16, compile: bench_train.py), a 1-process NCCL torchrun training run
# (ccnn train, data-parallel code path), and, with the time left,
# compute-sanitizer memcheck / racecheck on the smoke test. Every step is reported and the
# session carries on after a failure (no `set -e`): the CUDA code is expected to have bugs on
# first contact, and one session must say as much as possible about all of them.
#
#   OUT=/path/to/dir bash benchmarks/gpu_session.sh    # OUT defaults to benchmarks/results/gpu_session
#
# Writes at most 9 files into $OUT: session.log (everything, including nvidia-smi, versions and the
# ptxas register report), summary.md (one line per step), junit.xml (all pytest runs merged),
# copula_cuda.{json,md} (bench_copula.py), heads_cuda.{json,md} (bench_heads.py) and
# train_cuda.{json,md} (bench_train.py).
# Environment: PYTHON (default python3), CCNN_GPU_BUDGET_S (default 480: total seconds for all
# steps; a step only starts with >= 15 s left and its timeout is cut to what is left).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
OUT=${OUT:-$ROOT/benchmarks/results/gpu_session}
BUDGET=${CCNN_GPU_BUDGET_S:-480}
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ccnn_gpu.XXXXXX")
LOG=$OUT/session.log
STEPS_FILE=$WORK/steps.tsv
: >"$STEPS_FILE"
export PYTHONPATH="$ROOT:$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
START=$SECONDS

# step NAME CAP_SECONDS COMMAND...: runs COMMAND under `timeout` (CAP, cut to the time left),
# records status, exit code and seconds. Returns the command's exit code (99: skipped).
step() {
  local name=$1 cap=$2
  shift 2
  local left=$((BUDGET - (SECONDS - START)))
  if ((left < 15)); then
    printf '%s\t%s\t%s\t%s\n' "$name" "skipped (out of time)" "-" 0 >>"$STEPS_FILE"
    echo "=== $name: skipped, ${left}s of the budget left"
    return 99
  fi
  local limit=$((cap < left ? cap : left))
  echo
  echo "=== [$(date +%T), t=$((SECONDS - START))s] $name (timeout ${limit}s): $*"
  local t0=$SECONDS
  timeout -k 5 "$limit" "$@"
  local rc=$?
  local dt=$((SECONDS - t0)) status=ok
  if ((rc == 124 || rc == 137)); then
    status=TIMEOUT
  elif ((rc != 0)); then
    status=FAILED
  fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$dt" >>"$STEPS_FILE"
  echo "=== $name: $status (rc $rc, ${dt}s)"
  return $rc
}

skip() {  # skip NAME REASON
  printf '%s\t%s\t%s\t%s\n' "$1" "skipped ($2)" "-" 0 >>"$STEPS_FILE"
  echo "=== $1: skipped ($2)"
}

# copy_results SRC_DIR STEM [any]: the newest STEM*.json and STEM*.md of SRC_DIR (with `any`, for
# a private directory: else its newest *.json / *.md) into $OUT as STEM.json / STEM.md.
copy_results() {
  local src=$1 stem=$2 any=${3:-} ext f
  for ext in json md; do
    f=$(ls -t "$src"/"$stem"*."$ext" 2>/dev/null | head -n 1)
    if [ -z "$f" ] && [ -n "$any" ]; then f=$(ls -t "$src"/*."$ext" 2>/dev/null | head -n 1); fi
    if [ -n "$f" ]; then cp "$f" "$OUT/$stem.$ext" && echo "copied $f -> $OUT/$stem.$ext"; fi
  done
}

session() {
  echo "ccnn GPU session, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
    "$(git status --porcelain 2>/dev/null | grep -q . && echo '(dirty tree)')"
  echo "budget ${BUDGET}s, work dir $WORK"

  step "environment" 60 bash -c "
    nvidia-smi || true
    nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv || true
    $PYTHON -c 'import torch; print(torch.__version__, torch.version.cuda)'
    $PYTHON -c 'import torch, sys; print(\"python\", sys.version.split()[0]); print(\"cuda available:\", torch.cuda.is_available()); print(\"device:\", torch.cuda.get_device_name() if torch.cuda.is_available() else None, torch.cuda.get_device_capability() if torch.cuda.is_available() else None)'
    $PYTHON -c 'import pytest, hypothesis, mpmath; print(\"pytest\", pytest.__version__, \"hypothesis\", hypothesis.__version__, \"mpmath\", mpmath.__version__)' || true
    echo \"nvcc: \$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || echo 'not found')\"; (nvcc --version || /usr/local/cuda/bin/nvcc --version) 2>/dev/null | tail -n 2
    echo \"compute-sanitizer: \$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || echo 'not found')\"
    nproc; free -g | head -n 2"

  # sm_90 only (H100/H200), all cores; ptxas reports registers / spills of every kernel into the log
  local built=0
  if step "build (sm_90)" 220 env TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 CCNN_FORCE_CUDA=1 \
      NVCC_APPEND_FLAGS="-Xptxas -v" "$PYTHON" setup.py build_ext --inplace; then
    if step "import: built_with_cuda and a device" 60 "$PYTHON" -c "
import torch, ccnn_ext
print('built_with_cuda:', ccnn_ext.built_with_cuda(), '| cuda available:', torch.cuda.is_available())
assert ccnn_ext.built_with_cuda(), 'the CUDA kernels were not built'
assert torch.cuda.is_available(), 'no CUDA device visible to torch'"; then
      built=1
    fi
  fi
  if ((built == 0)); then
    echo "no CUDA build: the GPU steps below are skipped"
  fi

  if ((built)); then
    step "smoke (every op once, synchronised)" 60 "$PYTHON" benchmarks/gpu_smoke.py
  else
    skip "smoke (every op once, synchronised)" "no CUDA build"
  fi

  # one pytest per file, so that a hang or a crash (illegal address) costs one file only
  local f cap
  for f in test_copula_cuda test_pairwise_loglik test_pairwise_logtable test_ordinal_logprob \
    test_frank_copula test_package test_decode; do
    case $f in
      test_copula_cuda) cap=100 ;;
      test_decode) cap=45 ;;
      *) cap=45 ;;
    esac
    if ((built)); then
      step "pytest $f" "$cap" "$PYTHON" -m pytest -q -rs -p no:cacheprovider "tests/$f.py" \
        --junitxml="$WORK/junit_$f.xml" -o junit_suite_name="$f"
    else
      skip "pytest $f" "no CUDA build"
    fi
  done

  if ((built)); then
    mkdir -p "$WORK/bench_copula"
    step "bench_copula --device cuda" 120 "$PYTHON" benchmarks/bench_copula.py --device cuda --out "$WORK/bench_copula"
    local rc=$?
    if ((rc == 2)) && ! ls "$WORK/bench_copula"/*.json >/dev/null 2>&1; then
      # an older bench_copula.py without --out (argparse exit 2): results go to benchmarks/results
      local before
      before=$(date +%s)
      step "bench_copula --device cuda (without --out)" 120 "$PYTHON" benchmarks/bench_copula.py --device cuda
      if [ -n "$(find "$ROOT/benchmarks/results" -name 'copula_cuda*' -newermt "@$before" 2>/dev/null)" ]; then
        copy_results "$ROOT/benchmarks/results" copula_cuda
      fi
    else
      copy_results "$WORK/bench_copula" copula_cuda any
    fi
    mkdir -p "$WORK/bench_heads" "$WORK/bench_train"
    step "bench_heads --devices cuda (48 px, same padding)" 60 "$PYTHON" benchmarks/bench_heads.py \
      --devices cuda --sizes 48 --padding same --warmup 1 --repeats 3 --out-dir "$WORK/bench_heads"
    copy_results "$WORK/bench_heads" heads_cuda any
    # 96 px, batch 128: loader, device-resident pipeline, bf16, compile (a failure is reported, the session goes on)
    step "bench_train --devices cuda (96 px, batch 128)" 180 "$PYTHON" benchmarks/bench_train.py \
      --devices cuda --steps 20 --repeats 5 --faces 4096 --out "$WORK/bench_train"
    copy_results "$WORK/bench_train" train_cuda any
  else
    skip "bench_copula --device cuda" "no CUDA build"
    skip "bench_heads --devices cuda" "no CUDA build"
    skip "bench_train --devices cuda" "no CUDA build"
  fi

  # data-parallel training through torchrun on one process over NCCL: a tiny synthetic set, IBB, 2 epochs
  if ((built)); then
    step "torchrun smoke (1 process, nccl)" 120 bash -c "
      set -o pipefail
      '$PYTHON' -m ccnn.cli synth --out '$WORK/ddp_data' --subjects 6 --frames 10 --size 48 --workers 8 &&
      '$PYTHON' -m torch.distributed.run --standalone --nproc-per-node 1 -m ccnn.cli train \\
        --data '$WORK/ddp_data' --image-size 32 --epochs 2 --batch-size 16 --samples-per-epoch 64 --mode ibb \\
        --device cuda --no-progress --dist-timeout 60 --out '$WORK/ddp_run' 2>&1 | tee '$WORK/ddp.log' &&
      grep -q 'data parallel: 1 process (nccl)' '$WORK/ddp.log' &&
      grep -q '\"world_size\": 1' '$WORK/ddp_run/results.json'"
  else
    skip "torchrun smoke (1 process, nccl)" "no CUDA build"
  fi

  # with the time left: out-of-bounds accesses, uninitialised reads and shared-memory races
  local sanitizer
  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
  if ((built)) && [ -n "$sanitizer" ]; then
    step "compute-sanitizer memcheck (smoke --small)" 90 "$sanitizer" --tool memcheck --error-exitcode 3 \
      --print-limit 20 "$PYTHON" benchmarks/gpu_smoke.py --small
    step "compute-sanitizer racecheck (smoke --small)" 60 "$sanitizer" --tool racecheck --error-exitcode 3 \
      --print-limit 20 "$PYTHON" benchmarks/gpu_smoke.py --small
  else
    skip "compute-sanitizer" "${sanitizer:+no CUDA build}${sanitizer:-not installed}"
  fi

  # junit: all files merged into one
  "$PYTHON" - "$WORK" "$OUT/junit.xml" <<'EOF' || echo "junit merge failed"
import glob, sys
import xml.etree.ElementTree as ET
work, dest = sys.argv[1], sys.argv[2]
root = ET.Element("testsuites")
for path in sorted(glob.glob(f"{work}/junit_*.xml")):
    try:
        tree = ET.parse(path).getroot()
    except ET.ParseError as err:  # a run killed mid-write
        print(f"{path}: unreadable ({err})")
        continue
    for suite in ([tree] if tree.tag == "testsuite" else list(tree)):
        root.append(suite)
ET.ElementTree(root).write(dest, encoding="utf-8", xml_declaration=True)
print(f"merged {len(root)} test suites into {dest}")
EOF

  # summary
  "$PYTHON" - "$STEPS_FILE" "$OUT/junit.xml" "$OUT/summary.md" "$((SECONDS - START))" <<'EOF' || echo "summary failed"
import os, platform, sys
import xml.etree.ElementTree as ET
steps_file, junit, dest, total = sys.argv[1:5]
lines = ["# ccnn GPU session", ""]
try:
    import torch
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    lines.append(f"device: {dev}; torch {torch.__version__} (CUDA {torch.version.cuda}); "
                 f"python {platform.python_version()}; total {total} s")
except Exception as err:  # noqa: BLE001
    lines.append(f"torch not importable: {err}")
lines += ["", "| step | status | exit code | seconds |", "|---|---|--:|--:|"]
with open(steps_file) as f:
    for row in f:
        name, status, rc, dt = row.rstrip("\n").split("\t")
        lines.append(f"| {name} | {status} | {rc} | {dt} |")
if os.path.exists(junit):
    lines += ["", "| test suite | tests | failures | errors | skipped |", "|---|--:|--:|--:|--:|"]
    failed = []
    for suite in ET.parse(junit).getroot():
        a = suite.attrib
        lines.append(f"| {a.get('name')} | {a.get('tests')} | {a.get('failures')} | {a.get('errors')} | {a.get('skipped')} |")
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(f"{case.attrib.get('classname')}::{case.attrib.get('name')}")
    if failed:
        lines += ["", "failed tests:"] + [f"- {t}" for t in failed]
text = "\n".join(lines) + "\n"
open(dest, "w").write(text)
print(text)
EOF
  echo "files in $OUT:"
  ls -la "$OUT"
}

session 2>&1 | tee "$LOG"
rm -rf "$WORK"
exit 0
