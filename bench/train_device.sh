#!/bin/bash
# Issue 7's measurements on a machine with a GPU and >= 16 cores, in one go (about 7 minutes):
#   * the accuracy bars on 2 CPU cores each (taskset), resnet18 / vgg11 / googlenet in parallel;
#   * the same bars on the GPU, then bench/train_checks.py over every zoo model on the GPU;
#   * `archstat train` under torchrun with NCCL (one GPU, one rank).
# Logs go to $OUT (default /tmp/archstat_device).  Usage: bash bench/train_device.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/archstat_device}
mkdir -p "$OUT"
# run from the source tree without installing: archstat.models lives in models/
[ -e archstat/models ] || ln -s ../models archstat/models
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
{ nvidia-smi -L; nproc; python3 -c "import torch, sklearn; print('torch', torch.__version__, 'sklearn', sklearn.__version__)"; } > "$OUT/gpu_bars.log" 2>&1
cpu=0
for m in resnet18 vgg11 googlenet; do
  OMP_NUM_THREADS=2 timeout 430 taskset -c $cpu,$((cpu + 1)) python3 bench/train_bars.py --models $m --device cpu \
    --threads 2 --out /tmp/bars_cpu > "$OUT/cpu_$m.log" 2>&1 &
  cpu=$((cpu + 2))
done
(
  export OMP_NUM_THREADS=4
  taskset -c 8-15 timeout 120 python3 bench/train_bars.py --device cuda --quiet --out /tmp/bars_gpu >> "$OUT/gpu_bars.log" 2>&1
  taskset -c 8-15 timeout 240 python3 bench/train_checks.py --device cuda --iters 200 --csv "$OUT/checks_gpu.csv" > "$OUT/gpu_checks.log" 2>&1
  taskset -c 8-15 timeout 60 python3 -m torch.distributed.run --standalone --nproc_per_node 1 -m archstat train resnet18 \
    --input 1x32x32 --epochs 1 --max-steps 10 --device cuda --quiet --out /tmp/ddp > "$OUT/gpu_ddp.log" 2>&1
  cat /tmp/ddp/summary.json >> "$OUT/gpu_ddp.log" 2>&1
) &
wait
echo done
