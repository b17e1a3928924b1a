"""Transfer learning as the lecture's 2x2 table, measured (no downloads).

Target: digits 5-9.  Rows: *little* target data (``little`` images per class, 5 by default) and
*much* (the whole 5-9 training split, about 108 per class).  Columns: a *similar* source (digits
0-4, :func:`archstat.train.data.digits_splits`) and a *different* one (rotation prediction on
natural-image patches, :mod:`archstat.train.sources`).  In each cell, three methods on the same
target test split (the 5-9 images of the fixed test split):

1. *Linear on frozen features*: a network pre-trained on the source's images as exemplars beside
   their labels (:mod:`archstat.train.exemplar`: every source image a class of its own under random
   deformations, so the features keep what tells images apart, not only the source's classes), in
   eval mode, fed the target images in the source's normalisation, gives the output of its first
   ``PROBE_STAGES`` stages, each average-pooled onto a ``PROBE_GRID x PROBE_GRID`` grid (coarse
   layout kept: digits are spatial), and the classifier's input (:mod:`archstat.train.probe`),
   whitened with the source's within-class covariance (its labelled training images, shrunk by
   Ledoit-Wolf: :mod:`archstat.train.whiten`), so that the source's hundreds of images, not only its
   network, inform the 25-image probe.  The lecture's advice for little data from a different task
   is a linear classifier on *earlier* stages: the last ones have specialised to the source's
   classes.  The labelled images are seen in the views scratch trains with (``--augment``'s shifts,
   :func:`archstat.train.tta.views_from_augment`); an L2-regularised logistic regression on the
   standardised features is the new classifier, its ``C`` chosen by cross-validation on the
   labelled target images alone.  The exemplar source, stages, grid and the whitening were chosen
   on the target's *validation* split (docs/measured.md), never on test.  Beside it: the linear
   probe on the penultimate features of the network trained on the source's labels alone (the
   classic source network), and on the pixels themselves (what frozen features must beat to be
   worth having).
2. *Fine-tuning* of that classic source network: the classifier replaced by its penultimate probe
   (the "linear probe, then fine-tune" order of Kumar et al. 2022), then every weight trained at a
   tenth of the LR, BatchNorm frozen.
3. *From scratch*: the same architecture trained on the target data alone (the baseline).

The lecture's reading: with little data and a similar source, a linear classifier on frozen features
is the thing to do; with much data, fine-tune; with a different source and little data, you are in
trouble.  Each cell says whether transfer beat scratch, in points.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from archstat.errors import ArchstatError
from archstat.train.data import Splits
from archstat.train.exemplar import EXEMPLAR_STEPS, check_steps, exemplar_pretrain
from archstat.train.loop import Run, TrainConfig, train
from archstat.train.probe import classifier_name, fit_probe, linear_probe, pixels
from archstat.train.setup import load_data
from archstat.train.tta import views_from_augment

FINE_TUNE_CLIP = 5.0
METHODS = ("linear_frozen", "linear_penultimate", "linear_pixels", "fine_tune", "scratch")
# (stages read, grid side): each stage map average-pooled onto a grid x grid grid.  Chosen on the target's
# validation split (docs/measured.md): on the exemplar network the stem, layer1 and layer2 of a ResNet pooled
# 4x4; on the classic network (--transfer-exemplar-steps 0, the probe before the exemplars) the stem and
# layer1 pooled 8x8
PROBE_STAGES: int | None = 3
PROBE_GRID = 4
CLASSIC_PROBE_STAGES, CLASSIC_PROBE_GRID = 2, 8


@dataclasses.dataclass
class FrozenSource:
    """What the frozen-feature probe reads: a network, its stages and grid, and how it was trained."""

    model: nn.Module
    stages: int | None
    grid: int
    summary: dict[str, Any]


def replace_head(model: nn.Module, num_classes: int) -> nn.Linear:
    """Swap the main classifier for a fresh one with ``num_classes`` outputs (small init: loss starts at ln C)."""
    parent_name, _, attr = classifier_name(model).rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attr)
    head = nn.Linear(old.in_features, num_classes, bias=old.bias is not None).to(old.weight.device)
    nn.init.normal_(head.weight, 0.0, 0.01)
    if head.bias is not None:
        nn.init.zeros_(head.bias)
    setattr(parent, attr, head)
    return head


def in_source_norm(tgt: Splits, src: Splits) -> Splits:
    """The target splits normalised as the pre-trained network saw its inputs, ``(x s_t + m_t - m_s) / s_s``
    (statistics of 25 target images would shift every activation the frozen layers compute)."""
    view = (1, -1, 1, 1)

    def move(d: TensorDataset) -> TensorDataset:
        x, y = d.tensors
        return TensorDataset((x * tgt.std.view(view) + tgt.mean.view(view) - src.mean.view(view)) / src.std.view(view), y)

    return dataclasses.replace(tgt, train=move(tgt.train), val=move(tgt.val), test=move(tgt.test),
                               mean=src.mean.clone(), std=src.std.clone())


def normalised_views(augment: str, split: Splits) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """The non-identity views of ``augment`` (:func:`archstat.train.tta.views_from_augment`: the shifts
    scratch trains with), as functions on ``split``-normalised images (views act on raw pixels)."""
    m, s = split.mean.view(1, -1, 1, 1), split.std.view(1, -1, 1, 1)
    return [lambda x, v=v: (v(x * s + m) - m) / s for name, v in views_from_augment(augment).items() if name != "identity"]


def probe(pre: nn.Module, tgt: Splits, stages: int | None, seed: int, augment: str = "",
          grid: int = PROBE_GRID, source: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, Any]:
    """:func:`archstat.train.probe.linear_probe` fitted on ``tgt.train`` (plus the views of ``augment``),
    scored on its val and test; ``source`` (images, labels) whitens the features first."""
    return linear_probe(pre, tgt.train.tensors, {"val": tgt.val.tensors, "test": tgt.test.tensors},
                        stages=stages, grid=grid, seed=seed, views=normalised_views(augment, tgt), source=source)


def pretrain(base: TrainConfig, source: str, shape: tuple[int, int, int], out: str | None):
    """Train on the similar (digits 0-4) or different (rotated natural patches) source."""
    if source == "similar":
        return train(dataclasses.replace(base, classes=[0, 1, 2, 3, 4], train_per_class=None, out=out))
    from archstat.train.sources import rotation_splits

    return train(dataclasses.replace(base, train_per_class=None, out=out), splits=rotation_splits(shape, seed=base.seed))


def target_config(base: TrainConfig, tgt: Splits, target_iters: int) -> TrainConfig:
    """Target-phase runs: batch <= 25 and at least ``target_iters`` iterations (small splits need epochs)."""
    batch = min(base.batch, 25)
    per_epoch = max(1, len(tgt.train) // batch)
    return dataclasses.replace(base, batch=batch, epochs=max(base.epochs, -(-target_iters // per_epoch)),
                               ema=None, save="none", out=None)


def fine_tune(pre: nn.Module, tgt: Splits, tcfg: TrainConfig, head_probe: dict[str, Any]) -> float | None:
    """Head from the penultimate linear probe, then everything at lr/10 with BatchNorm frozen and gradients
    clipped at norm ``FINE_TUNE_CLIP``; test accuracy, or None if the loss still diverged."""
    model = copy.deepcopy(pre)
    head = replace_head(model, tgt.num_classes)
    with torch.no_grad():
        head.weight.copy_(head_probe["weight"])
        if head.bias is not None:
            head.bias.copy_(head_probe["bias"])
    try:
        run = train(dataclasses.replace(tcfg, lr=tcfg.lr / 10, freeze_bn=True, clip_grad=tcfg.clip_grad or FINE_TUNE_CLIP),
                    splits=tgt, model=model)
    except ArchstatError:  # "loss became nan": reported as a diverged cell, not a crashed table
        return None
    return run.summary["test_acc"]


def verdict(cell: dict[str, Any]) -> str:
    best = max(("linear_frozen", "fine_tune"), key=lambda k: -1.0 if cell[k] is None else cell[k])
    gain = 100 * (cell[best] - cell["scratch"])
    name = "linear on frozen features" if best == "linear_frozen" else "fine-tuning"
    if gain >= 0.05:
        return f"transfer helps: {name} +{gain:.1f} points over scratch"
    if gain > -0.05:
        return f"transfer does not help here: {name} ties scratch"
    return f"transfer does not help here: scratch is {-gain:.1f} points ahead of {name}"


def probe_layout(exemplar_steps: int) -> tuple[int | None, int]:
    """(stages, grid) the frozen-feature probe reads: the exemplar network's, or with 0 steps the classic one's."""
    return (PROBE_STAGES, PROBE_GRID) if exemplar_steps else (CLASSIC_PROBE_STAGES, CLASSIC_PROBE_GRID)


def frozen_source(base: TrainConfig, pre: Run, steps: int, log: Callable[[str], None]) -> FrozenSource:
    """The network the frozen-feature probe reads: exemplar pre-trained on ``pre``'s source splits for
    ``steps`` batches (:mod:`archstat.train.exemplar`), or with ``steps`` 0 the classic ``pre.model``
    read as the probe read it before the exemplars."""
    if steps == 0:
        return FrozenSource(pre.model, *probe_layout(0), {"network": "classic"})
    run = exemplar_pretrain(base.model, pre.splits, lr=base.lr, batch=base.batch, weight_decay=base.weight_decay,
                            seed=base.seed, steps=steps, model_kw=base.model_kw, quiet=base.quiet,
                            device=next(pre.model.parameters()).device)
    log(f"  exemplar pre-training, {steps} steps over its {run.summary['exemplars']} training images: exemplar "
        f"accuracy {100 * run.summary['exemplar_train_acc']:.2f}% (last quarter), source validation "
        f"{100 * run.summary['source_val_acc']:.2f}%")
    return FrozenSource(run.model, *probe_layout(steps), {"network": "exemplar", **run.summary})


def measure_cell(pre: Run, frozen_net: FrozenSource, tgt: Splits, scratch: float, tcfg: TrainConfig,
                 seed: int) -> dict[str, Any]:
    """One draw of one cell: the stage probe on ``frozen_net``, the penultimate probe and fine-tuning of the
    classic source network ``pre.model``, and scratch's figure."""
    view = in_source_norm(tgt, pre.splits)
    frozen = probe(frozen_net.model, view, frozen_net.stages, seed, tcfg.augment, grid=frozen_net.grid,
                   source=pre.splits.train.tensors)
    head = probe(pre.model, view, 0, seed, tcfg.augment, grid=1)
    pix = fit_probe(pixels, view.train.tensors, {"test": view.test.tensors}, seed, normalised_views(tcfg.augment, view))
    return {"linear_frozen": frozen["test_acc"], "probe_C": frozen["C"], "probe_cv_acc": frozen["cv_acc"],
            "probe_features": frozen["features"], "probe_reads": frozen["reads"], "probe_views": frozen["views"],
            "linear_penultimate": head["test_acc"], "linear_pixels": pix["test_acc"], "scratch": scratch,
            "fine_tune": fine_tune(pre.model, view, tcfg, head), "target_train_images": len(tgt.train)}


def summarise_draws(draws: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of each method over the draws (``None`` if any draw diverged), with the sample std and the draws."""
    cell: dict[str, Any] = {"draws": len(draws), "target_train_images": draws[0]["target_train_images"],
                            "per_draw": draws}
    for k in METHODS:
        vals = [d[k] for d in draws]
        ok = all(v is not None for v in vals)
        cell[k] = float(np.mean(vals)) if ok else None
        cell[f"{k}_std"] = float(np.std(vals, ddof=1)) if ok and len(vals) > 1 else 0.0
    cell["verdict"] = verdict(cell)
    return cell


def transfer_table(base: TrainConfig, little: int = 5, target: Sequence[int] = (5, 6, 7, 8, 9),
                   target_iters: int = 200, draws: int = 1, log: Callable[[str], None] = print,
                   exemplar_steps: int = EXEMPLAR_STEPS) -> dict[str, Any]:
    """The 2x2 table (little/much target data x similar/different source), every cell measured.

    The little-data cells are averaged over ``draws`` random draws of the ``little`` images per class
    (seeds ``base.seed``, ``base.seed + 1``, ...; scratch is retrained on each); the much-data cells use
    the whole training split once.  ``exemplar_steps`` is the frozen-feature probe's exemplar pre-training
    (0: the probe reads the classic source network, as the other methods do).
    """
    if base.data != "digits":
        raise ArchstatError("--transfer uses digits 5-9 as the target; use --data digits")
    if draws < 1:
        raise ArchstatError(f"--transfer-draws must be >= 1, got {draws}")
    check_steps(exemplar_steps, "--transfer-exemplar-steps")
    base = dataclasses.replace(base, resume=False)
    sub = (lambda name: f"{base.out}/{name}") if base.out else (lambda name: None)
    load = lambda seed, per_class: load_data("digits", base.input_shape, base.model, seed, list(target), per_class)  # noqa: E731
    tgts = {"little": [load(base.seed + i, little) for i in range(draws)], "much": [load(base.seed, None)]}
    shape = tgts["much"][0].input_shape
    scratch = {k: [train(dataclasses.replace(target_config(base, t, target_iters), seed=base.seed + i), splits=t)
                   .summary["test_acc"] for i, t in enumerate(ts)] for k, ts in tgts.items()}
    cells: dict[str, dict[str, Any]] = {}
    sources, frozen_nets = {}, {}
    for source in ("similar", "different"):
        pre = pretrain(base, source, shape, sub(f"pretrain_{source}"))
        sources[source] = pre.summary["test_acc"]
        log(f"  pre-trained on the {source} source: test acc {100 * pre.summary['test_acc']:.2f}% on its own task")
        frozen_net = frozen_source(base, pre, exemplar_steps, log)
        frozen_nets[source] = frozen_net.summary
        for size, ts in tgts.items():
            cells[f"{size}/{source}"] = summarise_draws([
                measure_cell(pre, frozen_net, t, scratch[size][i], target_config(base, t, target_iters), base.seed + i)
                for i, t in enumerate(ts)])
    log(format_table(cells, len(tgts["much"][0].test), exemplar_steps))
    return {"target_classes": list(target), "target_test_images": len(tgts["much"][0].test),
            "frozen_probe_exemplar_steps": exemplar_steps, "frozen_probe_network": frozen_nets,
            "sources": {"similar": "digits 0-4", "different": "rotation of natural-image patches (sklearn photos)"},
            "source_test_acc": sources, "little_draws": draws, "cells": cells}


def _pct(v: float | None, sd: float = 0.0) -> str:
    if v is None:
        return "diverged"
    return f"{100 * v:.2f}% ± {100 * sd:.2f}" if sd else f"{100 * v:.2f}%"


def format_table(cells: dict[str, dict[str, Any]], n_test: int, exemplar_steps: int) -> str:
    """Markdown table; a cell over several draws prints mean ± sample std."""
    n_stages, grid = probe_layout(exemplar_steps)
    stages = "all" if n_stages is None else f"the first {n_stages}"
    net = (f"a source network trained {exemplar_steps} steps on the source images as exemplars and their labels"
           if exemplar_steps else "the source network")
    lines = [f"transfer to digits 5-9 (test accuracy on {n_test} images; linear on frozen: {stages} stages of {net}, "
             f"pooled {grid}x{grid}, + penultimate features, whitened with the source's within-class "
             "covariance, the labelled images in their training views, C by cross-validation on them only; the "
             "penultimate-only probe and fine-tuning use the source network trained on its labels alone, and are "
             "not whitened):",
             "| target data | source | draws | linear on frozen | (penultimate only) | (pixels, no network) | fine-tune "
             "| scratch | verdict |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for key, c in cells.items():
        size, source = key.split("/")
        nums = " | ".join(_pct(c[k], c[f"{k}_std"]) for k in METHODS)
        lines.append(f"| {size} ({c['target_train_images']} images) | {source} | {c['draws']} | {nums} | {c['verdict']} |")
    return "\n".join(lines)
