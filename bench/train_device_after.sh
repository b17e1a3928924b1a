#!/bin/bash
# Second measurement pass for issue 7 (GPU + 8 CPU cores, about 6 minutes):
#   CPU, 2 cores each: vgg11 at lr 0.01 / 0.02 and googlenet (no aux heads) at lr 0.01 / 0.02, batch 32;
#   GPU: resnet18's after-training comparisons (ensembles, snapshots, EMA, transfer; TTA with scale
#   augmentation), the lecture's recipe (steps 3-6), and inception_v4's overfit check with more iterations.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/archstat_device}
mkdir -p "$OUT"
[ -e archstat/models ] || ln -s ../models archstat/models
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T="python3 -m archstat train"
c=0
for lr in 0.01 0.02; do
  OMP_NUM_THREADS=2 timeout 390 taskset -c $c,$((c + 1)) $T vgg11 --input 1x32x32 --epochs 8 --batch 32 --lr $lr \
    --device cpu --threads 2 --quiet --out /tmp/cpu_vgg11_$lr > "$OUT/cpu_vgg11_$lr.log" 2>&1 &
  c=$((c + 2))
done
( for lr in 0.01 0.02; do
    OMP_NUM_THREADS=2 timeout 190 taskset -c 4,5 $T googlenet --model-kw aux_logits=False --input 1x32x32 --epochs 10 \
      --batch 32 --lr $lr --device cpu --threads 2 --quiet --out /tmp/cpu_googlenet_$lr
  done > "$OUT/cpu_googlenet.log" 2>&1 ) &
(
  export OMP_NUM_THREADS=4
  R="taskset -c 8-15 timeout"
  $R 150 $T resnet18 --input 1x32x32 --epochs 8 --device cuda --quiet --ema 0.95 --ensemble 3 --snapshots 3 \
    --transfer --out /tmp/after > "$OUT/gpu_after.log" 2>&1
  $R 40 $T resnet18 --input 1x32x32 --epochs 8 --device cuda --quiet --augment scale=1.5 --tta --out /tmp/tta >> "$OUT/gpu_after.log" 2>&1
  $R 120 $T resnet18 --input 1x32x32 --epochs 8 --device cuda --quiet --recipe --out /tmp/recipe > "$OUT/gpu_recipe.log" 2>&1
  $R 60 python3 bench/train_checks.py --device cuda --models inception_v4,vgg11_bn --iters 800 >> "$OUT/gpu_recipe.log" 2>&1
) &
wait
echo done
