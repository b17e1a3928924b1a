"""Linear probes on frozen features: what a pre-trained network's activations know about a new task.

Features.  A network trained on a few classes compresses its *penultimate* features onto those
classes (the last layers specialise), so a new task is read better from earlier stages too.
:func:`stage_features` hooks the model's top-level children, keeps the last 4-D output of each
spatial size (a "stage": ResNet's layer1..layer4, a VGG block) and the classifier's input, and
global-average-pools each map: ``f_s(x) = mean_{h,w} a_s(x)[:, h, w]``.  The probe reads the
concatenation ``[f_1, ..., f_S, f_penult]``.

Classifier.  Features are standardised with the labelled images' mean and scale (scales floored,
see :func:`standardiser`); an L2-regularised multinomial logistic regression,
``min_W  sum_i -log softmax(W z_i)_{y_i} + ||W||^2 / (2C)``, is fitted for each ``C`` in
``PROBE_CS``, and ``C`` is chosen by stratified k-fold cross-validation on the labelled training
images alone (k = min(5, smallest class count): leave-one-per-class-out at 5 per class), so a
few-shot probe never sees a label beyond its few images.  Ties go to the smaller ``C`` (the
stronger regulariser).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from archstat.errors import ArchstatError
from archstat.train.engine import model_device

PROBE_CS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
MAX_FOLDS = 5


def classifier_name(model: nn.Module) -> str:
    """The main classifier: the last ``nn.Linear`` outside auxiliary heads."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and "aux" not in n]
    if not names:
        raise ArchstatError("transfer learning needs a model whose classifier is an nn.Linear")
    return names[-1]


@torch.no_grad()
def stage_features(model: nn.Module, x: torch.Tensor, stages: bool = True, batch: int = 256) -> np.ndarray:
    """Eval-mode features of all of ``x``: the classifier's input, preceded (``stages=True``) by the
    global-average-pooled output of each stage (the last top-level child of each spatial size)."""
    head = model.get_submodule(classifier_name(model))
    # pooled in the hook: a later in-place op (ResNet's ReLU) must not change a map already seen
    maps: dict[int, tuple[tuple[int, ...], torch.Tensor]] = {}
    penult: list[torch.Tensor] = []
    hooks = [head.register_forward_hook(lambda m, inp, out: penult.append(inp[0].flatten(1).float().cpu()))]
    if stages:
        for k, child in enumerate(model.children()):
            hooks.append(child.register_forward_hook(
                lambda m, inp, out, k=k: maps.__setitem__(k, (tuple(out.shape[2:]), out.float().mean(dim=(2, 3)).cpu()))
                if isinstance(out, torch.Tensor) and out.dim() == 4 else None))
    was, dev = model.training, model_device(model)
    model.eval()
    rows: list[torch.Tensor] = []
    try:
        for i in range(0, len(x), batch):
            maps.clear()
            penult.clear()
            model(x[i:i + batch].to(dev))
            pooled: list[torch.Tensor] = []
            last_hw = None
            for k in sorted(maps):  # one entry per spatial size: a later child of the same size replaces it
                hw, f = maps[k]
                if pooled and hw == last_hw:
                    pooled[-1] = f
                else:
                    pooled.append(f)
                last_hw = hw
            rows.append(torch.cat([*pooled, penult[-1]], dim=1))
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return torch.cat(rows).numpy()


def standardiser(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of training features; scales floored at 1% of the median so that near-constant
    features (dead units) are not blown up into huge probe weights."""
    mean, sd = f.mean(axis=0), f.std(axis=0)
    floor = 0.01 * float(np.median(sd[sd > 0])) if (sd > 0).any() else 1.0
    return mean, np.maximum(sd, floor)


def choose_c(z: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """``C`` with the best stratified-CV accuracy on ``(z, y)`` (ties: the smaller C); (C, CV accuracy)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = min(MAX_FOLDS, int(np.bincount(y).min()))
    if folds < 2:
        raise ArchstatError("a linear probe needs at least 2 labelled images per class to choose its regularisation")
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = [cross_val_score(LogisticRegression(C=c, max_iter=3000), z, y, cv=cv).mean() for c in PROBE_CS]
    k = int(np.argmax(scores))  # argmax keeps the first, i.e. the smallest C, on ties
    return PROBE_CS[k], float(scores[k])


def linear_probe(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
                 evals: dict[str, tuple[torch.Tensor, torch.Tensor]], stages: bool = True,
                 seed: int = 0) -> dict[str, Any]:
    """Logistic regression on frozen, standardised features, ``C`` by CV on ``train`` only.

    ``evals`` maps split names to ``(x, y)``; each gets an ``{name}_acc``.  With ``stages=False``
    the probe reads the classifier's input alone and is returned folded into one linear layer on
    those raw features (``weight``, ``bias``: ``W' = W / s``, ``b' = b - W' m``), ready to become the
    network's new head.
    """
    from sklearn.linear_model import LogisticRegression

    x, y = train
    raw = stage_features(model, x, stages)
    mean, scale = standardiser(raw)
    ytr = y.numpy()
    c, cv_acc = choose_c((raw - mean) / scale, ytr, seed)
    clf = LogisticRegression(C=c, max_iter=3000).fit((raw - mean) / scale, ytr)
    out: dict[str, Any] = {"C": c, "cv_acc": cv_acc, "features": int(raw.shape[1]),
                           "reads": "pooled stages + penultimate" if stages else "penultimate"}
    for name, (xe, ye) in evals.items():
        out[f"{name}_acc"] = float(clf.score((stage_features(model, xe, stages) - mean) / scale, ye.numpy()))
    if not stages:
        w = clf.coef_ / scale
        out["weight"] = torch.as_tensor(w, dtype=torch.float32)
        out["bias"] = torch.as_tensor(clf.intercept_ - w @ mean, dtype=torch.float32)
    return out
