#!/usr/bin/env bash
# Issue 15's CUDA figures in one call on a lent GPU machine (no registry there: nothing is installed
# but what is carried). Run from the repository root:
#
#   bash benchmarks/gpu_run.sh [OUT]      # at most ~10 min (the stages' limits), results under OUT (default /tmp/gpu_out)
#
# It expects, beside the tracked files (see benchmarks/README.md, "On a GPU machine"):
#   .dev/base-<commit>/  a copy of the baseline commit's tree (git archive), for learn_throughput's ratios
#   .whl/                jaxmarl's wheel (SMAX, the simulator's peer), installed with --no-deps
# Each stage has its own time limit, so one that hangs or fails leaves the others' figures.
set -u
OUT=${1:-${OUT:-/tmp/gpu_out}}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false
PY=${PY:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=$PWD:/tmp/site
fi
BASE=$(ls -d .dev/base-* 2>/dev/null | head -1)
{
    date -u; nvidia-smi -L; lscpu | grep -E "Model name|^CPU\(s\)"
    $PY -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(0))'
    $PY -c 'import jax; print("jax", jax.__version__, jax.devices())' 2>&1 | tail -1
} 2>&1 | tee "$OUT/machine.txt"

# 1. correctness first: the same battles as the CPU, every learner training and deploying on CUDA
timeout 150 $PY benchmarks/cuda_check.py --device cuda 2>&1 | tee "$OUT/cuda_check.txt"

# 2. jobs on CUDA, this checkout against the baseline (paper budget: compiled simulator, 32
#    environments, the 5000-episode replay on the GPU as the harness puts it)
if [ -n "$BASE" ]; then against=(--baseline "$BASE"); else against=(--no-baseline); fi
timeout 220 $PY benchmarks/learn_throughput.py --device cuda "${against[@]}" --algos coma,qmix --modes solo \
    --warmup 10000 --window 8000 --windows 3 --out "$OUT/learn_throughput_cuda.json" 2>&1 \
    | tee "$OUT/learn_throughput_cuda.txt"

# 3. the simulator at B = 4096 and 65536 (GPU_SIZES), eager and compiled, against SMAX on jax's GPU
timeout 200 $PY benchmarks/sim_throughput.py --device cuda --seconds 3 --threads 1 \
    --out "$OUT/sim_throughput_cuda.json" 2>&1 | tee "$OUT/sim_throughput_cuda.txt"
date -u | tee -a "$OUT/machine.txt"
