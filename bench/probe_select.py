"""How the transfer probe's stages, grid and training views were chosen: on the target's validation split.

Pre-trains resnet18 on digits 0-4 exactly as ``archstat train ... --transfer`` does (its similar
source), then, for each candidate (stages read, pooling grid, views of the labelled images), fits
the linear probe on 5 labelled images per class of digits 5-9 (``C`` by cross-validation on them)
and scores it on the 180-image *validation* split of digits 5-9, over 3 draws of the 25 images.
The test split is never read.  The pixels themselves are probed the same way as the reference.

    python bench/probe_select.py [--threads 1] [--draws 3] [--first-draw 0] [--exemplar-steps 0]
                                 [--source-epochs 8] [--source-augment crop=2]
                                 [--source-seed 0] [--source-label-smoothing 0] [--only 2:8:crop=2,2:8:shifts=2:pix]
                                 [--only 2:8:crop=2,2:8:crop=2:adabn,2:1+2+4+8:crop=2,2:8:crop=2:tta]
                                 [--only 2:8:crop=2,2:8:crop=2:lda,2:8:crop=2:white,2:8:crop=2:dc]

``--source-*`` vary the source network's recipe (default: the classic one, trained on the source labels
with scratch's recipe); ``--exemplar-steps N`` (0, or at least ``exemplar.MIN_STEPS``) probes instead a
network exemplar pre-trained for ``N`` batches on the same source splits (:mod:`archstat.train.exemplar`,
what ``--transfer``'s frozen-feature probe reads; of the ``--source-*`` options only ``--source-seed``
then reaches the probed network, as its seed); ``--first-draw K`` starts the draws at seed ``K``
(fresh validation draws for a confirmation); ``--only`` probes the listed candidates instead of the
whole list.  A candidate is
``STAGES:GRID:VIEWS[:pix]``: ``STAGES`` a count or ``all``; ``VIEWS`` empty (each labelled image
once), an ``--augment`` spec (its test-time views: ``crop=2`` gives the four 1-pixel shifts) or
``shifts=P`` (every whole-pixel shift within +-P, the 24 that ``crop=2`` draws from at P = 2);
then any of these flags:

* ``pix`` appends the pixels to the network's features;
* ``adabn`` (AdaBN, Li et al. 2016): before the features are read, the source network's BatchNorm
  running statistics are recomputed on the draw's labelled images and their training views (one
  batch, ``momentum=None``); no weight changes, nothing is trained: the features only adapt their
  normalisation to the target;
* ``tta``: the probe's class probabilities averaged over the validation image's training views
  (the probe's ``VIEWS``), instead of read on the image alone;
* at most one classifier that uses the source's labelled training images' second-order statistics
  (``bench/probe_stats.py``, where the math is): ``lda`` (LDA with the source's within-class
  covariance, Ledoit-Wolf shrinkage), ``ldacv`` (the same, shrinkage by cross-validation on the
  labelled images), ``white`` (the features whitened with that covariance, then the probe: what
  ``--transfer``'s probe does since it was chosen here), ``simpleshot``, ``dc`` (distribution
  calibration).  Without one, the probe is the logistic regression on unwhitened features.

``GRID`` may be a spatial pyramid, ``1+2+4+8``: each kept stage pooled onto every listed grid, the
pools concatenated (the penultimate features once).

Prints one row per candidate: mean ± sample std of validation accuracy over the draws.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time

import numpy as np
import torch

from archstat.train.loop import TrainConfig
from archstat.train.data import Splits
from archstat.errors import ArchstatError
from archstat.train.exemplar import check_steps
from archstat.train.probe import fit_probe, pixels, stage_features
from archstat.train.setup import load_data
from archstat.train.transfer import frozen_source, in_source_norm, normalised_views, pretrain
from archstat.train.tta import shift
from torch import nn

import probe_stats

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


def features(model, stages: int | None, grids: tuple[int, ...], with_pixels: bool):
    """What the probe reads: :func:`stage_features` (as ``linear_probe`` calls it; with several grids,
    the stages pooled onto each, the penultimate features once), then the pixels if asked."""
    def feats(xs: torch.Tensor) -> np.ndarray:
        parts = [stage_features(model, xs, stages, g) for g in grids]
        width = stage_features(model, xs[:1], 0).shape[1]  # the penultimate features close every part
        out = np.concatenate([q[:, :-width] for q in parts[:-1]] + [parts[-1]], axis=1)
        return np.concatenate([out, pixels(xs)], axis=1) if with_pixels else out
    return feats


@torch.no_grad()
def adabn(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running mean and variance are those of ``x`` (one batch, the
    cumulative average of ``momentum=None``); weights untouched."""
    m = copy.deepcopy(model)
    for bn in m.modules():
        if isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            bn.reset_running_stats()
            bn.momentum = None
    m.train()
    m(x)
    return m.eval()


def tta_accuracy(fit: dict, feats, vs: list, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of the fitted probe (``fit``'s weight and bias on the raw features) with its softmax
    averaged over ``x`` and its views ``vs``."""
    probs = [torch.softmax(torch.as_tensor(feats(v(x)), dtype=torch.float32) @ fit["weight"].T + fit["bias"], 1)
             for v in [lambda t: t, *vs]]
    return float((torch.stack(probs).mean(0).argmax(1) == y).float().mean())


FLAGS = ("pix", "adabn", "tta", *probe_stats.CLASSIFIERS)


def parse_candidate(text: str, p: argparse.ArgumentParser) -> tuple[int | None, tuple[int, ...], str, frozenset]:
    """``STAGES:GRID[+GRID...]:VIEWS[:FLAG...]`` -> (stages, grids, views, flags); anything else is a usage error."""
    f = text.split(":")
    # the source's statistics are computed once per candidate, on the unadapted network: AdaBN (a copy
    # adapted per draw) cannot go with a classifier that reads them
    classifier = set(f[3:]) & set(probe_stats.CLASSIFIERS)
    if len(f) < 3 or not set(f[3:]) <= set(FLAGS) or len(set(f[3:]) & set(probe_stats.CLASSIFIERS + ("tta",))) > 1 or not all(g.isdigit() and int(g) > 0 for g in f[1].split("+")) or not (
            f[0] == "all" or f[0].isdigit()) or (f[2].startswith("shifts=") and not f[2][7:].isdigit()) or (
            classifier and "adabn" in f[3:]):
        p.error(f"--only takes STAGES:GRID[+GRID...]:VIEWS[:{'|'.join(FLAGS)}...] candidates (at most one of "
                f"{', '.join(probe_stats.CLASSIFIERS + ('tta',))}; adabn with none of "
                f"{', '.join(probe_stats.CLASSIFIERS)}), got {text!r}")
    return None if f[0] == "all" else int(f[0]), tuple(int(g) for g in f[1].split("+")), f[2], frozenset(f[3:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--source-epochs", type=int, default=8)
    p.add_argument("--source-augment", default="crop=2")
    p.add_argument("--source-seed", type=int, default=0)
    p.add_argument("--source-label-smoothing", type=float, default=0.0)
    p.add_argument("--only", default=None, help="comma-separated STAGES:GRID:VIEWS[:FLAG...] candidates")
    p.add_argument("--exemplar-steps", type=int, default=0, help="probe an exemplar pre-trained network (0: the classic one)")
    p.add_argument("--first-draw", type=int, default=0, help="seed of the first draw")
    args = p.parse_args(argv)
    try:
        check_steps(args.exemplar_steps, "--exemplar-steps")
    except ArchstatError as exc:
        p.error(str(exc))
    cands = [(st, (g,), aug, frozenset()) for st, g, aug in CANDIDATES] if not args.only else [
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
    if args.exemplar_steps:  # the network --transfer's frozen-feature probe reads, from the same config
        print("probing an exemplar pre-trained network instead:", flush=True)
        pre = dataclasses.replace(pre, model=frozen_source(base, pre, args.exemplar_steps, print).model)
        print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
    seeds = range(args.first_draw, args.first_draw + args.draws)
    tgts = [in_source_norm(load_data("digits", SHAPE, "resnet18", seed, [5, 6, 7, 8, 9], 5), pre.splits) for seed in seeds]
    print("| stages | grid | probe sees | validation accuracy (mean ± std over draws) | per draw |\n"
          "|---|---:|---|---:|---|", flush=True)
    pix_views = ("", "crop=2") if not args.only else sorted({aug for _, _, aug, _ in cands})
    # (reads, grid, views, flags, draw -> features): AdaBN adapts a copy of the source per draw
    rows = [("pixels", "-", aug, frozenset(), lambda t: pixels) for aug in pix_views]
    for st, grids, aug, flags in cands:
        reads = ("penultimate" if st == 0 else "all" if st is None else f"first {st}") + "".join(
            f" + {f}" for f in ("pix", "adabn") if f in flags)
        model_for = (lambda t, aug=aug: adabn(pre.model, torch.cat([t.train.tensors[0]] + [
            v(t.train.tensors[0]) for v in views(aug, t)]))) if "adabn" in flags else (lambda t: pre.model)
        rows.append((reads, "+".join(map(str, grids)), aug, flags,
                     lambda t, st=st, grids=grids, flags=flags, model_for=model_for:
                     features(model_for(t), st, grids, "pix" in flags)))
    src = pre.splits.train.tensors  # the source's labelled training images, for the second-order statistics
    for reads, grid, aug, flags, make in rows:
        accs, kind, stats = [], next((f for f in flags if f in probe_stats.CLASSIFIERS), None), None
        for i, t in enumerate(tgts):
            feats, vs = make(t), views(aug, t)
            if kind is not None:
                if stats is None:
                    stats = probe_stats.source_stats_for(kind, feats(src[0]), src[1].numpy())
                    print(probe_stats.describe(stats), file=sys.stderr, flush=True)
                accs.append(probe_stats.accuracy(kind, stats, feats, t.train.tensors, t.val.tensors, vs, seeds[i]))
                continue
            fit = fit_probe(feats, t.train.tensors, {"val": t.val.tensors}, seeds[i], vs)
            accs.append(tta_accuracy(fit, feats, vs, *t.val.tensors) if "tta" in flags else fit["val_acc"])
        sees = (f"all {len(views(aug, tgts[0])) + 1} shifts within ±{aug.partition('=')[2]}" if aug.startswith("shifts=")
                else f"its {len(views(aug, tgts[0])) + 1} views ({aug})" if aug else "the image only")
        sees += "; scored with TTA over them" if "tta" in flags else ""
        sees += f"; classifier: {probe_stats.CLASSIFIERS_SAID[kind]}" if kind else ""
        print(f"| {reads} | {grid} | {sees} | {100 * np.mean(accs):.2f}% ± {100 * np.std(accs, ddof=1):.2f} | "
              f"{', '.join(f'{100 * a:.1f}' for a in accs)} |", flush=True)
    print(f"{time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
