#!/usr/bin/env bash
# For a machine with an NVIDIA GPU and a CUDA build of torch (e.g. the project's lent H100):
# builds the extension with its CUDA kernels, runs the CUDA parity tests, then the GPU benchmarks.
# Results land in benchmarks/results/ (and in $OUT when that is set).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD:$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
export CCNN_FORCE_CUDA=1 MAX_JOBS=${MAX_JOBS:-8} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
$PYTHON setup.py -q build_ext --inplace
$PYTHON -c "import ccnn_ext; assert ccnn_ext.built_with_cuda(), 'CUDA kernels were not built'"
$PYTHON -m pytest -q -rs tests/test_frank_copula.py tests/test_ordinal_logprob.py \
    tests/test_pairwise_loglik.py tests/test_pairwise_logtable.py
$PYTHON benchmarks/bench_copula.py --device cuda
$PYTHON benchmarks/bench_train.py --devices cuda
if [ -n "${OUT:-}" ]; then cp benchmarks/results/*cuda* "$OUT"/ 2>/dev/null || true; fi
