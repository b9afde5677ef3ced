#!/usr/bin/env bash
# GPU readiness in one go, under 8 minutes on one GPU:
#   1. the gpu-marked tests (CUDA inference forms fp32/bf16/fp16, mixed-precision training steps, and
#      a 2-step NCCL DDP run when more than one GPU is visible);
#   2. animate speed of the vox-256 networks at batch 1/8/32 × fp32/bf16/fp16 × eager / CUDA graphs /
#      torch.compile / both, one table (benchmarks/gpu_speed.py; compiled rows past the time budget
#      print as skipped);
#   3. `dagan animate --profile` on the GPU, end to end on the bundled sample (already a face crop,
#      so no dlib is needed): the demo model in fp32, and the vox-256 architecture in bf16 at batch 32.
# Usage: bash benchmarks/gpu_check.sh        (from anywhere; PYTHON=/path/to/python to choose the interpreter;
#        GPU_CHECK_BUDGET_S=400, the seconds after which no compiled row starts, counted from the start)
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
budget=$(( ${GPU_CHECK_BUDGET_S:-400} - elapsed ))   # leave room under 8 minutes for the last row started before the budget ends
if [ "$budget" -lt 60 ]; then budget=60; fi
speed_rc=0
timeout $(( budget + 60 )) "$PYTHON" benchmarks/gpu_speed.py --device cuda --batches 1 8 32 \
    --precisions fp32 bf16 fp16 --compile --budget-s "$budget" || speed_rc=$?

echo "== dagan animate --profile on the GPU (bundled sample, --no-crop) =="
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
animate_rc=0
for run in "fp32 8 bundled" "bf16 32 preset:vox-256"; do
    set -- $run
    model=(); [ "$3" = bundled ] || model=(--model "$3")
    echo "-- ${3} model, --precision $1 --batch-size $2"
    timeout 120 "$PYTHON" -m dagan animate --no-crop --device cuda --precision "$1" --batch-size "$2" \
        ${model[@]+"${model[@]}"} --profile --no-audio -o "$out/$1_$2.mp4" 2>&1 | grep -v "animating:" \
        || animate_rc=$?
done

echo "gpu_check: tests exit $tests_rc, speed exit $speed_rc, animate exit $animate_rc, $(( $(date +%s) - start )) s in all"
[ "$tests_rc" -eq 0 ] && [ "$speed_rc" -eq 0 ] && [ "$animate_rc" -eq 0 ]
