"""Issue 7's accuracy bars: resnet18, vgg11 and googlenet trained on digits at small inputs.

Each run is ``archstat train`` with the settings below; the script prints test accuracy, time per
step and wall time, and exits 1 if resnet18 is under 95% test accuracy.

    python bench/train_bars.py [--models resnet18,vgg11,googlenet] [--device cpu] [--threads 2] [--out runs/bars]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# model -> archstat train arguments (input, schedule, LR ... chosen with the lecture's steps 3-5)
RUNS: dict[str, list[str]] = {
    "resnet18": ["--input", "1x32x32", "--epochs", "8", "--batch", "64", "--lr", "0.05", "--weight-decay", "5e-4"],
    # no BatchNorm: a smaller LR and more iterations (batch 32); lr 0.02 gave 94.4%, 0.01 94.7%
    "vgg11": ["--input", "1x32x32", "--epochs", "8", "--batch", "32", "--lr", "0.01", "--weight-decay", "5e-4"],
    # Table-1 GoogLeNet (LRN, no BN); aux heads need >= 65x65, so they are off at 32x32.
    # lr 0.05 / batch 64 / 8 epochs gave 67%, lr 0.02 / batch 32 / 10 epochs 89%, lr 0.01 96.7%
    "googlenet": ["--input", "1x32x32", "--epochs", "10", "--batch", "32", "--lr", "0.01", "--weight-decay", "5e-4",
                  "--model-kw", "aux_logits=False"],
}


def main(argv: list[str] | None = None) -> int:
    from archstat.cli import main as cli

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(RUNS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", default=None)
    p.add_argument("--out", default="runs/bars")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    results = {}
    for name in args.models.split(","):
        out = Path(args.out) / name
        extra = ["--threads", args.threads] if args.threads else []
        rc = cli(["train", name, *RUNS[name], "--device", args.device, "--out", str(out), *extra] + (["--quiet"] if args.quiet else []))
        if rc != 0:
            return rc
        s = json.loads((out / "summary.json").read_text())
        results[name] = s
        print(f"BAR {name} {'x'.join(map(str, s['input']))}: test acc {100 * s['test_acc']:.2f}%, "
              f"{1000 * s['time_per_step_s']:.1f} ms/step, {s['steps']} steps, {s['wall_s']:.0f} s on {s['device']}",
              flush=True)
    ok = "resnet18" not in results or results["resnet18"]["test_acc"] >= 0.95
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
