"""Transfer learning as the lecture's 2x2 table, measured (no downloads).

Target: digits 5-9.  Rows: *little* target data (``little`` images per class, 5 by default) and
*much* (the whole 5-9 training split, about 108 per class).  Columns: a *similar* source (digits
0-4, :func:`archstat.train.data.digits_splits`) and a *different* one (rotation prediction on
natural-image patches, :mod:`archstat.train.sources`).  In each cell, three methods on the same
target test split (the 5-9 images of the fixed test split):

1. *Linear on frozen features*: the pre-trained network up to its classifier, in eval mode, gives a
   feature vector per image; an L2-regularised logistic regression on the standardised features is
   the new classifier, its ``C`` chosen on the target validation split.
2. *Fine-tuning*: the classifier replaced by (1)'s (the "linear probe, then fine-tune" order of
   Kumar et al. 2022), then every weight trained at a tenth of the LR, BatchNorm frozen.
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

from archstat.errors import ArchstatError
from archstat.train.data import Splits
from archstat.train.engine import model_device
from archstat.train.loop import TrainConfig, train
from archstat.train.setup import load_data

PROBE_CS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
FINE_TUNE_CLIP = 5.0


def classifier_name(model: nn.Module) -> str:
    """The main classifier: the last ``nn.Linear`` outside auxiliary heads."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and "aux" not in n]
    if not names:
        raise ArchstatError("transfer learning needs a model whose classifier is an nn.Linear")
    return names[-1]


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


@torch.no_grad()
def features(model: nn.Module, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Eval-mode inputs of the classifier (the penultimate features) for all of ``x``."""
    head = model.get_submodule(classifier_name(model))
    grabbed: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda m, inp, out: grabbed.append(inp[0].flatten(1).float().cpu()))
    was, dev = model.training, model_device(model)
    model.eval()
    try:
        for i in range(0, len(x), batch):
            model(x[i:i + batch].to(dev))
    finally:
        hook.remove()
        model.train(was)
    return torch.cat(grabbed).numpy()


def standardiser(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of training features; scales floored at 1% of the median so that near-constant
    features (dead units) are not blown up into huge probe weights."""
    mean, sd = f.mean(axis=0), f.std(axis=0)
    floor = 0.01 * float(np.median(sd[sd > 0])) if (sd > 0).any() else 1.0
    return mean, np.maximum(sd, floor)


def linear_probe(model: nn.Module, tgt: Splits) -> dict[str, Any]:
    """Logistic regression on frozen, standardised features; ``C`` by validation accuracy."""
    from sklearn.linear_model import LogisticRegression

    (xtr, ytr), (xva, yva), (xte, yte) = (s.tensors for s in (tgt.train, tgt.val, tgt.test))
    raw = features(model, xtr)
    mean, scale = standardiser(raw)
    ftr, fva, fte = ((f - mean) / scale for f in (raw, features(model, xva), features(model, xte)))
    fits = [LogisticRegression(C=c, max_iter=3000).fit(ftr, ytr.numpy()) for c in PROBE_CS]
    val = [clf.score(fva, yva.numpy()) for clf in fits]
    k = int(np.argmax(val))
    clf = fits[k]
    w = clf.coef_ / scale  # the probe as one linear layer on raw features
    b = clf.intercept_ - w @ mean
    return {"C": PROBE_CS[k], "val_acc": val[k], "test_acc": float(clf.score(fte, yte.numpy())),
            "weight": torch.as_tensor(w, dtype=torch.float32), "bias": torch.as_tensor(b, dtype=torch.float32)}


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


def fine_tune(pre: nn.Module, tgt: Splits, tcfg: TrainConfig, probe: dict[str, Any]) -> float | None:
    """Head from the linear probe, then everything at lr/10 with BatchNorm frozen and gradients clipped
    at norm ``FINE_TUNE_CLIP``; test accuracy, or None if the loss still diverged."""
    model = copy.deepcopy(pre)
    head = replace_head(model, tgt.num_classes)
    with torch.no_grad():
        head.weight.copy_(probe["weight"])
        if head.bias is not None:
            head.bias.copy_(probe["bias"])
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


def transfer_table(base: TrainConfig, little: int = 5, target: Sequence[int] = (5, 6, 7, 8, 9),
                   target_iters: int = 200, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The 2x2 table (little/much target data x similar/different source), every cell measured."""
    if base.data != "digits":
        raise ArchstatError("--transfer uses digits 5-9 as the target; use --data digits")
    base = dataclasses.replace(base, resume=False)
    sub = (lambda name: f"{base.out}/{name}") if base.out else (lambda name: None)
    tgts = {"little": load_data("digits", base.input_shape, base.model, base.seed, list(target), little),
            "much": load_data("digits", base.input_shape, base.model, base.seed, list(target), None)}
    shape = tgts["much"].input_shape
    scratch = {k: train(target_config(base, t, target_iters), splits=t).summary["test_acc"] for k, t in tgts.items()}
    cells: dict[str, dict[str, Any]] = {}
    sources = {}
    for source in ("similar", "different"):
        pre = pretrain(base, source, shape, sub(f"pretrain_{source}"))
        sources[source] = pre.summary["test_acc"]
        log(f"  pre-trained on the {source} source: test acc {100 * pre.summary['test_acc']:.2f}% on its own task")
        for size, tgt in tgts.items():
            probe = linear_probe(pre.model, tgt)
            cell = {"linear_frozen": probe["test_acc"], "probe_C": probe["C"], "scratch": scratch[size],
                    "fine_tune": fine_tune(pre.model, tgt, target_config(base, tgt, target_iters), probe),
                    "target_train_images": len(tgt.train)}
            cell["verdict"] = verdict(cell)
            cells[f"{size}/{source}"] = cell
    log(format_table(cells, len(tgts["much"].test)))
    return {"target_classes": list(target), "target_test_images": len(tgts["much"].test),
            "sources": {"similar": "digits 0-4", "different": "rotation of natural-image patches (sklearn photos)"},
            "source_test_acc": sources, "cells": cells}


def _pct(v: float | None) -> str:
    return "diverged" if v is None else f"{100 * v:.2f}%"


def format_table(cells: dict[str, dict[str, Any]], n_test: int) -> str:
    lines = [f"transfer to digits 5-9 (test accuracy on {n_test} images; probe C chosen on validation):",
             "| target data | source | linear on frozen | fine-tune | scratch | verdict |",
             "|---|---|---:|---:|---:|---|"]
    for key, c in cells.items():
        size, source = key.split("/")
        lines.append(f"| {size} ({c['target_train_images']} images) | {source} | {_pct(c['linear_frozen'])} | "
                     f"{_pct(c['fine_tune'])} | {_pct(c['scratch'])} | {c['verdict']} |")
    return "\n".join(lines)
