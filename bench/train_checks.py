"""The lecture's first two sanity checks for every zoo model at a small input (issue 7's bar).

For each registered model, at its smallest training input (at least 32x32, one channel, digits):

* initial loss within 10% of ln 10 (weight decay and dropout off, train mode, 64 training images;
  the loss with dropout on is listed too);
* overfit 5 minibatches of 16 images to 100% training accuracy, regularisation off
  (AdamW, LR tried in order 1e-3, 3e-4, 1e-4 until one passes; at most ``--iters`` iterations).

    python bench/train_checks.py [--models a,b] [--device cuda] [--iters 300] [--csv out.csv]

Prints one row per model and exits 1 if any check fails.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time

import torch

from archstat.models import list_models, model_info
from archstat.train.checks import check_init_loss, overfit_small
from archstat.train.setup import build_model, check_input_fits, load_data

LRS = (1e-3, 3e-4, 1e-4)


def small_input(name: str) -> tuple[int, int, int]:
    h, w = model_info(name).min_input[-2:]
    return (1, max(h, 32), max(w, 32))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None, help="comma-separated subset (default: every zoo model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--csv", default=None)
    args = p.parse_args(argv)
    names = args.models.split(",") if args.models else list_models()
    rows, failed = [], 0
    sink = open(args.csv, "w", newline="") if args.csv else None  # written row by row: a cut-off run keeps its rows
    writer = None
    print(f"{'model':<18} {'input':<10} {'init loss':>9} {'ok':>3} {'overfit':>8} {'iters':>5} {'lr':>7} {'s':>7}")
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    for name in names:
        t0 = time.perf_counter()
        shape = small_input(name)
        splits = load_data("digits", shape, name)
        model = build_model(name, 10, 1)
        check_input_fits(model, shape, name)
        init = check_init_loss(model, splits, batch=64, device=args.device)
        over = None
        for lr in LRS:
            over = overfit_small(model, splits, batches=5, batch=16, max_iters=args.iters, lr=lr, device=args.device)
            if over.ok:
                break
        row = {"model": name, "input": "x".join(map(str, shape)), "init_loss": round(init.values["loss"], 4),
               "init_ok": init.ok, "init_loss_dropout": init.values["loss_with_dropout"], "overfit_acc": over.values["acc"], "overfit_ok": over.ok,
               "iters": over.values["iters"], "lr": lr, "seconds": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        if sink:
            writer = writer or csv.DictWriter(sink, fieldnames=list(row))
            if len(rows) == 1:
                writer.writeheader()
            writer.writerow(row)
            sink.flush()
        failed += (not init.ok) + (not over.ok)
        print(f"{name:<18} {row['input']:<10} {row['init_loss']:>9.4f} {'yes' if init.ok else 'NO':>3} "
              f"{100 * row['overfit_acc']:>7.1f}% {row['iters']:>5} {lr:>7.0e} {row['seconds']:>7.1f}", flush=True)
        del model
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    if sink:
        sink.close()
    print(f"{len(names)} models, {failed} failed checks")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
