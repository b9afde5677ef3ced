#!/usr/bin/env bash
# GPU readiness in one go, under 8 minutes on one GPU:
#   1. the gpu-marked tests (CUDA inference forms fp32/bf16/fp16, mixed-precision training steps, and
#      a 2-step NCCL DDP run when more than one GPU is visible);
#   2. animate speed of the vox-256 networks at batch 1/8/32 × fp32/bf16/fp16 × eager/torch.compile,
#      one table (benchmarks/gpu_speed.py; rows past its time budget print as skipped).
# Usage: bash benchmarks/gpu_check.sh        (from anywhere; PYTHON=/path/to/python to choose the interpreter)
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${DAGAN_REFERENCE_DIR:-}" ] && [ -d ../shared/reference ]; then
    export DAGAN_REFERENCE_DIR="$PWD/../shared/reference"
fi
start=$(date +%s)

gpus=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')
if [ "$gpus" -lt 1 ]; then
    echo "gpu_check: no CUDA device visible to $PYTHON; nothing to check" >&2
    exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

deselect=()
if [ "$gpus" -lt 2 ]; then
    echo "gpu_check: 1 GPU visible: the NCCL DDP test needs 2 or more and is deselected"
    deselect=(--deselect tests/training/test_gpu_ddp.py::test_nccl_two_steps_on_all_gpus)
fi

echo "== gpu tests =="
tests_rc=0
timeout 200 "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider ${deselect[@]+"${deselect[@]}"} tests || tests_rc=$?

echo "== animate speed (networks only) =="
elapsed=$(( $(date +%s) - start ))
budget=$(( 400 - elapsed ))   # leave room under 8 minutes for the last row started before the budget ends
if [ "$budget" -lt 60 ]; then budget=60; fi
speed_rc=0
timeout $(( budget + 60 )) "$PYTHON" benchmarks/gpu_speed.py --device cuda --batches 1 8 32 \
    --precisions fp32 bf16 fp16 --compile --budget-s "$budget" || speed_rc=$?

echo "gpu_check: tests exit $tests_rc, speed exit $speed_rc, $(( $(date +%s) - start )) s in all"
[ "$tests_rc" -eq 0 ] && [ "$speed_rc" -eq 0 ]
