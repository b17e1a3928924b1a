"""How the transfer probe's stages, grid and training views were chosen: on the target's validation split.

Pre-trains resnet18 on digits 0-4 exactly as ``archstat train ... --transfer`` does (its similar
source), then, for each candidate (stages read, pooling grid, views of the labelled images), fits
the linear probe on 5 labelled images per class of digits 5-9 (``C`` by cross-validation on them)
and scores it on the 180-image *validation* split of digits 5-9, over 3 draws of the 25 images.
The test split is never read.  The pixels themselves are probed the same way as the reference.

    python bench/probe_select.py [--threads 1] [--source-epochs 8] [--source-augment crop=2] [--only 2:8:crop=2]

``--source-epochs`` / ``--source-augment`` vary the source network's recipe (default: the one
``--transfer`` uses, the same as scratch's); ``--only`` probes the listed candidates
(``STAGES:GRID:AUGMENT``, ``all`` for every stage) instead of the whole list.

Prints one row per candidate: mean ± sample std of validation accuracy over the draws.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from archstat.train.loop import TrainConfig
from archstat.train.probe import fit_probe, linear_probe, pixels
from archstat.train.setup import load_data
from archstat.train.transfer import in_source_norm, normalised_views, pretrain

SHAPE = (1, 32, 32)
# (stages read: None = all, 0 = penultimate only; grid side; --augment whose views the probe sees)
CANDIDATES = [(0, 1, "crop=2"), (None, 1, ""), (None, 1, "crop=2"), (None, 2, "crop=2"), (4, 2, "crop=2"),
              (3, 3, "crop=2"), (3, 4, "crop=2"), (3, 4, ""), (None, 4, "crop=2"), (2, 4, "crop=2"),
              (3, 8, "crop=2"), (2, 8, "crop=2"), (2, 8, ""), (1, 8, "crop=2")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--source-epochs", type=int, default=8)
    p.add_argument("--source-augment", default="crop=2")
    p.add_argument("--only", default=None, help="comma-separated STAGES:GRID:AUGMENT candidates")
    args = p.parse_args(argv)
    cands = CANDIDATES if not args.only else [
        (None if st == "all" else int(st), int(g), aug)
        for st, g, aug in (c.split(":", 2) for c in args.only.split(","))]
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    base = TrainConfig(model="resnet18", input_shape=SHAPE, epochs=args.source_epochs, batch=64, lr=0.05,
                       augment=args.source_augment, save="none", quiet=True, threads=args.threads)
    pre = pretrain(base, "similar", SHAPE, None)
    print(f"source: {args.source_epochs} epochs, --augment {args.source_augment}; digits 0-4 validation "
          f"{100 * pre.summary['final_val_acc']:.2f}%, {time.perf_counter() - t0:.0f} s", flush=True)
    tgts = [in_source_norm(load_data("digits", SHAPE, "resnet18", seed, [5, 6, 7, 8, 9], 5), pre.splits)
            for seed in range(args.draws)]
    print("| stages | grid | probe sees | validation accuracy (mean ± std over draws) |\n|---|---:|---|---:|")
    rows = [("pixels", "-", aug, [fit_probe(pixels, t.train.tensors, {"val": t.val.tensors}, i,
                                            normalised_views(aug, t))["val_acc"] for i, t in enumerate(tgts)])
            for aug in ("", "crop=2")]
    for stages, grid, aug in cands:
        accs = [linear_probe(pre.model, t.train.tensors, {"val": t.val.tensors}, stages=stages, grid=grid, seed=i,
                             views=normalised_views(aug, t))["val_acc"] for i, t in enumerate(tgts)]
        rows.append(("penultimate" if stages == 0 else "all" if stages is None else f"first {stages}", grid, aug, accs))
    for stages, grid, aug, accs in rows:
        sees = "its 5 shifted views (crop=2)" if aug else "the image only"
        print(f"| {stages} | {grid} | {sees} | {100 * np.mean(accs):.2f}% ± {100 * np.std(accs, ddof=1):.2f} |", flush=True)
    print(f"{time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
