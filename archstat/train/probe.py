"""Linear probes on frozen features: what a pre-trained network's activations know about a new task.

Features.  A network trained on a few classes compresses its *penultimate* features onto those
classes (the last layers specialise), so a new task is read better from earlier stages (the
lecture: a very different task with little data -> a linear classifier on features from earlier
stages).  :func:`stage_features` hooks the model's top-level children and keeps the last 4-D
output of each spatial size (a "stage": ResNet's stem, layer1..layer4, a VGG block).  Each map is
average-pooled onto a ``g x g`` grid (``g = min(grid, H)``; ``grid=1`` is global pooling):
``f_s(x)[c, i, j] = mean_{(h, w) in cell (i, j)} a_s(x)[c, h, w]``.  A grid keeps the coarse layout
that global pooling throws away, and digits are spatial (a 6 and a 9 share their strokes).
The probe reads ``[f_1, ..., f_S]`` of the first ``stages`` stages, then the classifier's input.

Classifier.  Features are (optionally first whitened with a source task's within-class covariance,
:mod:`archstat.train.whiten`, then) standardised with the labelled images' mean and scale (scales
floored, see :func:`standardiser`); an L2-regularised multinomial logistic regression,
``min_W  sum_i -log softmax(W z_i + b)_{y_i} + ||W||^2 / (2C)``, is fitted for each ``C`` in
``PROBE_CS``, and ``C`` is chosen by stratified k-fold cross-validation on the labelled training
images alone (k = min(5, smallest class count): leave-one-per-class-out at 5 per class), so a
few-shot probe never sees a label beyond its few images.  Ties go to the smaller ``C`` (the
stronger regulariser).  Optional ``views`` (the shifts the network trained with) add transformed
copies of each labelled image to the probe's training set; the folds split images, never views,
and a held-out image is scored on its unchanged view only.

Speed.  The minimiser ``W`` lies in the span of the (standardised, hence centred) training rows:
the penalty's gradient ``W / C`` must cancel the loss's, a combination of the ``z_i``.  So the
regression is fitted on the rows' coordinates in an orthonormal basis ``V`` of that span
(``z -> V^T z``, at most ``n`` numbers instead of thousands of features) and gives the same
classifier, ``W = W_V V^T``: exact, and far cheaper.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from archstat.errors import ArchstatError
from archstat.train.engine import model_device

PROBE_CS = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
MAX_FOLDS = 5
MAX_ITER = 3000
View = Callable[[torch.Tensor], torch.Tensor]


def classifier_name(model: nn.Module) -> str:
    """The main classifier: the last ``nn.Linear`` outside auxiliary heads."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and "aux" not in n]
    if not names:
        raise ArchstatError("transfer learning needs a model whose classifier is an nn.Linear")
    return names[-1]


def grid_pool(a: torch.Tensor, grid: int) -> torch.Tensor:
    """``N x C x H x W`` -> ``N x (C g_h g_w)``: the mean over each cell of a ``g x g`` grid, ``g <= H, W``."""
    return F.adaptive_avg_pool2d(a.float(), (min(grid, a.shape[2]), min(grid, a.shape[3]))).flatten(1)


def _stages_in_order(maps: dict[int, tuple[tuple[int, ...], torch.Tensor]]) -> list[torch.Tensor]:
    """One entry per spatial size, in execution order: a later child of the same size replaces it."""
    pooled: list[torch.Tensor] = []
    last_hw = None
    for k in sorted(maps):
        hw, f = maps[k]
        if pooled and hw == last_hw:
            pooled[-1] = f
        else:
            pooled.append(f)
        last_hw = hw
    return pooled


@torch.no_grad()
def stage_features(model: nn.Module, x: torch.Tensor, stages: int | None = None, grid: int = 1,
                   batch: int = 256) -> np.ndarray:
    """Eval-mode features of all of ``x``: the first ``stages`` stages (``None``: all; 0: none), each
    pooled onto a ``grid x grid`` grid, followed by the classifier's input."""
    head = model.get_submodule(classifier_name(model))
    # pooled in the hook: a later in-place op (ResNet's ReLU) must not change a map already seen
    maps: dict[int, tuple[tuple[int, ...], torch.Tensor]] = {}
    penult: list[torch.Tensor] = []
    hooks = [head.register_forward_hook(lambda m, inp, out: penult.append(inp[0].flatten(1).float().cpu()))]
    if stages != 0:
        for k, child in enumerate(model.children()):
            hooks.append(child.register_forward_hook(
                lambda m, inp, out, k=k: maps.__setitem__(k, (tuple(out.shape[2:]), grid_pool(out, grid).cpu()))
                if isinstance(out, torch.Tensor) and out.dim() == 4 else None))
    was, dev = model.training, model_device(model)
    model.eval()
    rows: list[torch.Tensor] = []
    try:
        for i in range(0, len(x), batch):
            maps.clear()
            penult.clear()
            model(x[i:i + batch].to(dev))
            rows.append(torch.cat([*_stages_in_order(maps)[:stages], penult[-1]], dim=1))
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


def span_basis(z: np.ndarray) -> np.ndarray:
    """``d x r`` orthonormal basis of the row space of ``z`` (singular values above 1e-6 of the largest)."""
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    return vt[s > 1e-6 * s[0]].T if s.size and s[0] > 0 else np.zeros((z.shape[1], 1))


def _logreg(c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=MAX_ITER)


def image_folds(y: np.ndarray, groups: np.ndarray, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, held-out rows) per fold: stratified folds of *images* (``groups[i]`` names the
    image row ``i`` is a view of; the first row of each group is the unchanged view), k = min(5,
    smallest class); a held-out image is scored once, on its first row, and none of its views trains."""
    from sklearn.model_selection import StratifiedKFold

    images, first = np.unique(groups, return_index=True)
    k = min(MAX_FOLDS, int(np.bincount(y[first]).min()))
    if k < 2:
        raise ArchstatError("a linear probe needs at least 2 labelled images per class to choose its regularisation")
    return [(np.flatnonzero(np.isin(groups, images[tr])), first[te])
            for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(images, y[first])]


def choose_c(z: np.ndarray, y: np.ndarray, seed: int = 0, groups: np.ndarray | None = None) -> tuple[float, float]:
    """``C`` with the best stratified-CV accuracy on ``(z, y)`` (ties: the smaller C); (C, CV accuracy).

    ``groups[i]`` names the image row ``i`` is a view of (default: each row its own image); the folds
    are :func:`image_folds`."""
    splits = image_folds(y, np.arange(len(y)) if groups is None else np.asarray(groups), seed)
    scores = []
    for c in PROBE_CS:
        accs = [_logreg(c).fit(z[tr], y[tr]).score(z[te], y[te]) for tr, te in splits]
        scores.append(float(np.mean(accs)))
    k = int(np.argmax(scores))  # argmax keeps the first, i.e. the smallest C, on ties
    return PROBE_CS[k], scores[k]


class RowFit:
    """The probe's classifier fitted on feature rows ``raw``: standardised on them (:func:`standardiser`),
    fitted in their span (:func:`span_basis`), ``C`` by :func:`choose_c` over ``groups``."""

    def __init__(self, raw: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int = 0) -> None:
        self.mean, self.scale = standardiser(raw)
        self.basis = span_basis((raw - self.mean) / self.scale)
        z = self.project(raw)
        self.C, self.cv_acc = choose_c(z, y, seed, groups)
        self.clf = _logreg(self.C).fit(z, y)

    def project(self, f: np.ndarray) -> np.ndarray:
        """Raw feature rows -> standardised coordinates in the span of the training rows."""
        return ((f - self.mean) / self.scale) @ self.basis

    def predict(self, f: np.ndarray) -> np.ndarray:
        return self.clf.predict(self.project(f))


def linear_probe(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
                 evals: dict[str, tuple[torch.Tensor, torch.Tensor]], stages: int | None = None,
                 grid: int = 1, seed: int = 0, views: Sequence[View] = (),
                 source: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, Any]:
    """Logistic regression on frozen, standardised features of ``model`` (:func:`stage_features`).

    With ``source`` (the source task's labelled images and labels) the features are first whitened
    with the source's within-class covariance (:mod:`archstat.train.whiten`): still a linear
    classifier on the frozen features, whose noise directions the source's images have named.
    With ``stages=0`` the probe reads the classifier's input alone and is returned folded into one
    linear layer on those raw features (``weight``, ``bias``: ``W' = W V^T / s``, ``b' = b - W' m``,
    then :meth:`~archstat.train.whiten.Whitener.fold`), ready to become the network's new head.
    The rest is :func:`fit_probe`'s.
    """
    from archstat.train.whiten import source_whitener  # here: whiten imports this module's standardiser

    feats = lambda xs: stage_features(model, xs, stages, grid)  # noqa: E731
    white = None if source is None else source_whitener(feats(source[0]), source[1].numpy())
    out = fit_probe(feats if white is None else lambda xs: white(feats(xs)), train, evals, seed, views)
    if white is not None:
        out["shrinkage"] = white.alpha
        if stages == 0:  # the head is returned: fold the whitening into it (other stages return no weights)
            w, b = white.fold(out["weight"].double().numpy(), out["bias"].double().numpy())
            out.update(weight=torch.as_tensor(w, dtype=torch.float32), bias=torch.as_tensor(b, dtype=torch.float32))
    out.update(grid=grid, whitened=white is not None, reads=("penultimate" if stages == 0 else
               f"{'all' if stages is None else stages} stages pooled {grid}x{grid} + penultimate")
               + (", whitened with the source's within-class covariance" if white is not None else ""))
    if stages != 0:
        del out["weight"], out["bias"]
    return out


def pixels(x: torch.Tensor) -> np.ndarray:
    """The images themselves as features (the reference a frozen network's features must beat)."""
    return x.flatten(1).float().numpy()


def fit_probe(feats: Callable[[torch.Tensor], np.ndarray], train: tuple[torch.Tensor, torch.Tensor],
              evals: dict[str, tuple[torch.Tensor, torch.Tensor]], seed: int = 0,
              views: Sequence[View] = ()) -> dict[str, Any]:
    """Logistic regression on standardised ``feats(x)``, ``C`` by CV on ``train`` only.

    ``evals`` maps split names to ``(x, y)``; each gets an ``{name}_acc``.  ``views`` (functions on
    the images) add that many transformed copies of every training image, grouped with it in the
    folds.  Also returns ``weight`` and ``bias`` of the classifier on the raw features.
    """
    from threadpoolctl import threadpool_limits

    # 25-125 rows: BLAS threads only contend (choose_c 10x slower with them on a busy 2-core CPU)
    with threadpool_limits(1):
        x, y = train
        raw = np.concatenate([feats(x)] + [feats(v(x)) for v in views])
        groups = np.tile(np.arange(len(x)), 1 + len(views))
        ytr = np.tile(y.numpy(), 1 + len(views))
        fit = RowFit(raw, ytr, groups, seed)
        out: dict[str, Any] = {"C": fit.C, "cv_acc": fit.cv_acc, "features": int(raw.shape[1]), "views": 1 + len(views)}
        for name, (xe, ye) in evals.items():
            out[f"{name}_acc"] = float(fit.clf.score(fit.project(feats(xe)), ye.numpy()))
    w = (fit.clf.coef_ @ fit.basis.T) / fit.scale
    out["weight"] = torch.as_tensor(w, dtype=torch.float32)
    out["bias"] = torch.as_tensor(fit.clf.intercept_ - w @ fit.mean, dtype=torch.float32)
    return out
