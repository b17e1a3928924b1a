"""How the transfer probe's stages, grid and training views were chosen: on the target's validation split.

Pre-trains resnet18 on digits 0-4 exactly as ``archstat train ... --transfer`` does (its similar
source), then, for each candidate (stages read, pooling grid, views of the labelled images), fits
the linear probe on 5 labelled images per class of digits 5-9 (``C`` by cross-validation on them)
and scores it on the 180-image *validation* split of digits 5-9, over 3 draws of the 25 images.
The test split is never read.  The pixels themselves are probed the same way as the reference.

    python bench/probe_select.py [--threads 1] [--draws 3] [--source-epochs 8] [--source-augment crop=2]
                                 [--source-seed 0] [--source-label-smoothing 0] [--only 2:8:crop=2,2:8:shifts=2:pix]

``--source-*`` vary the source network's recipe (default: the one ``--transfer`` uses, the same as
scratch's); ``--only`` probes the listed candidates instead of the whole list.  A candidate is
``STAGES:GRID:VIEWS[:pix]``: ``STAGES`` a count or ``all``; ``VIEWS`` empty (each labelled image
once), an ``--augment`` spec (its test-time views: ``crop=2`` gives the four 1-pixel shifts) or
``shifts=P`` (every whole-pixel shift within +-P, the 24 that ``crop=2`` draws from at P = 2);
``pix`` appends the pixels to the network's features.

Prints one row per candidate: mean ± sample std of validation accuracy over the draws.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from archstat.train.loop import TrainConfig
from archstat.train.data import Splits
from archstat.train.probe import fit_probe, pixels, stage_features
from archstat.train.setup import load_data
from archstat.train.transfer import in_source_norm, normalised_views, pretrain
from archstat.train.tta import shift

SHAPE = (1, 32, 32)
# (stages read: None = all, 0 = penultimate only; grid side; --augment whose views the probe sees)
CANDIDATES = [(0, 1, "crop=2"), (None, 1, ""), (None, 1, "crop=2"), (None, 2, "crop=2"), (4, 2, "crop=2"),
              (3, 3, "crop=2"), (3, 4, "crop=2"), (3, 4, ""), (None, 4, "crop=2"), (2, 4, "crop=2"),
              (3, 8, "crop=2"), (2, 8, "crop=2"), (2, 8, ""), (1, 8, "crop=2")]


def views(spec: str, split: Splits) -> list:
    """The probe's extra training views: ``shifts=P`` (all whole-pixel shifts within +-P, the set that
    ``--augment crop=P`` samples from) or an ``--augment`` spec's test-time views, on normalised images."""
    if not spec.startswith("shifts="):
        return normalised_views(spec, split)
    pad = int(spec.partition("=")[2])
    m, s = split.mean.view(1, -1, 1, 1), split.std.view(1, -1, 1, 1)
    return [lambda x, dx=dx, dy=dy: (shift(x * s + m, dx, dy) - m) / s
            for dx in range(-pad, pad + 1) for dy in range(-pad, pad + 1) if (dx, dy) != (0, 0)]


def features(model, stages: int | None, grid: int, with_pixels: bool):
    """What the probe reads: :func:`stage_features` (as ``linear_probe`` calls it), then the pixels if asked."""
    if not with_pixels:
        return lambda xs: stage_features(model, xs, stages, grid)
    return lambda xs: np.concatenate([stage_features(model, xs, stages, grid), pixels(xs)], axis=1)


def parse_candidate(text: str, p: argparse.ArgumentParser) -> tuple[int | None, int, str, bool]:
    """``STAGES:GRID:VIEWS[:pix]`` -> (stages, grid, views, with pixels); anything else is a usage error."""
    f = text.split(":")
    if len(f) not in (3, 4) or (len(f) == 4 and f[3] != "pix") or not f[1].isdigit() or not (
            f[0] == "all" or f[0].isdigit()) or (f[2].startswith("shifts=") and not f[2][7:].isdigit()):
        p.error(f"--only takes STAGES:GRID:VIEWS[:pix] candidates, got {text!r}")
    return None if f[0] == "all" else int(f[0]), int(f[1]), f[2], len(f) == 4


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--source-epochs", type=int, default=8)
    p.add_argument("--source-augment", default="crop=2")
    p.add_argument("--source-seed", type=int, default=0)
    p.add_argument("--source-label-smoothing", type=float, default=0.0)
    p.add_argument("--only", default=None, help="comma-separated STAGES:GRID:VIEWS[:pix] candidates")
    args = p.parse_args(argv)
    cands = [(st, g, aug, False) for st, g, aug in CANDIDATES] if not args.only else [
        parse_candidate(c, p) for c in args.only.split(",")]
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    base = TrainConfig(model="resnet18", input_shape=SHAPE, epochs=args.source_epochs, batch=64, lr=0.05,
                       augment=args.source_augment, save="none", quiet=True, threads=args.threads,
                       seed=args.source_seed, label_smoothing=args.source_label_smoothing)
    pre = pretrain(base, "similar", SHAPE, None)
    print(f"source: {args.source_epochs} epochs, --augment {args.source_augment}, seed {args.source_seed}, label "
          f"smoothing {args.source_label_smoothing:g}; digits 0-4 validation "
          f"{100 * pre.summary['final_val_acc']:.2f}%, {time.perf_counter() - t0:.0f} s", flush=True)
    tgts = [in_source_norm(load_data("digits", SHAPE, "resnet18", seed, [5, 6, 7, 8, 9], 5), pre.splits)
            for seed in range(args.draws)]
    print("| stages | grid | probe sees | validation accuracy (mean ± std over draws) | per draw |\n"
          "|---|---:|---|---:|---|", flush=True)
    pix_views = ("", "crop=2") if not args.only else sorted({aug for _, _, aug, _ in cands})
    rows = [("pixels", "-", aug, pixels) for aug in pix_views]
    rows += [(("penultimate" if st == 0 else "all" if st is None else f"first {st}") + (" + pixels" if pix else ""),
              grid, aug, features(pre.model, st, grid, pix)) for st, grid, aug, pix in cands]
    for reads, grid, aug, feats in rows:
        accs = [fit_probe(feats, t.train.tensors, {"val": t.val.tensors}, i, views(aug, t))["val_acc"]
                for i, t in enumerate(tgts)]
        sees = (f"all {len(views(aug, tgts[0])) + 1} shifts within ±{aug.partition('=')[2]}" if aug.startswith("shifts=")
                else f"its {len(views(aug, tgts[0])) + 1} views ({aug})" if aug else "the image only")
        print(f"| {reads} | {grid} | {sees} | {100 * np.mean(accs):.2f}% ± {100 * np.std(accs, ddof=1):.2f} | "
              f"{', '.join(f'{100 * a:.1f}' for a in accs)} |", flush=True)
    print(f"{time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
