"""`archstat train` under `torchrun --standalone --nproc_per_node 2` (gloo on CPU): ranks stay identical."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def test_torchrun_two_cpu_ranks_end_with_identical_parameters(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "archstat", "train", "archstat.train.tiny:tiny_cnn", "--input", "1x8x8", "--batch", "32",
           "--epochs", "1", "--max-steps", "3", "--device", "cpu", "--augment", "flip", "--save", "none", "--quiet",
           "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["world_size"] == 2 and s["steps"] == 3
    # each rank saw different images (DistributedSampler) and different augmentations, yet
    # DDP's gradient all-reduce kept the weights equal everywhere
    assert s["rank_param_max_diff"] == 0.0
    assert proc.stdout.count("test acc") == 1  # only rank 0 reports
