#!/usr/bin/env bash
# The device command: install the carried wheels, make the repository importable, run the check.
#   device run, carry [.whl, .gpudata]:  bash benchmarks/gpu_check.sh [--budget 420] [--only tests,...]
# Writes $OUT/gpu_check.json and $OUT/gpu_check.log (see benchmarks/gpu_check.py).
set -u
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} || { echo "gpu_check: wheel install failed"; exit 1; }
fi
# snntrain.configs is the top-level configs/ folder (pyproject's package-dir); without an install, link it
[ -e snntrain/configs ] || ln -s ../configs snntrain/configs
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.sm --format=csv,noheader || true
exec python3 benchmarks/gpu_check.py --out "${OUT:-benchmarks/results/gpu_check}" "$@"
