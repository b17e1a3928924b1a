#!/usr/bin/env bash
# The GPU run of issue 5, on the lent machine (../shared/device/README.md says how):
#   here, after every code change:   ../shared/device/prepare-wheels.sh
#   device run:  carry [".whl"], command "bash bench/gpu_run.sh", timeout_s 420
# Installs the carried wheels (archstat itself, fvcore and its small deps) into /tmp/site, then runs
# bench/gpu_run.py, which writes results.json, runs.csv, layers.csv, summary.md and log.txt to $OUT.
# Extra arguments go to gpu_run.py (e.g. --budget 150, --models alexnet,resnet50).
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || { echo "wheel install failed"; exit 3; }
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,temperature.gpu --format=csv || true
python3 bench/gpu_run.py --out "${OUT:-gpu_out}" "$@"
