"""Few-shot probes that transfer the source's second-order statistics, not only its network.

``bench/probe_select.py``'s flags ``lda``, ``white``, ``simpleshot`` and ``dc``.  The 5-shot probe
fits thousands of weights on 25 images; the source task has hundreds of labelled images of digits
0-4 whose features say how the features vary *within* a class.  Every variant below is still a
linear classifier on the frozen features (of a fixed, data-independent normalisation of them).

All statistics live in the source-standardised space ``z = (f - m_s) / s_s`` (``m_s``, ``s_s``: mean
and floored scale of the source training features, :func:`archstat.train.probe.standardiser`), so
that a shrinkage towards a multiple of the identity treats every stage's dimensions alike.

* Within-class covariance of the source: ``S = (1/n) sum_i (z_i - mu_{y_i})(z_i - mu_{y_i})^T`` over
  the ``n`` source training images, each centred on its own class mean.  It has rank ``r <= n - K``
  against ``d`` ~ 8.7K dimensions, so it is kept as its eigenpairs ``S = V diag(l) V^T`` (from the SVD
  of the centred rows) and shrunk towards ``tau I``, ``tau = tr(S) / d``:
  ``Sigma_a = (1 - a) S + a tau I``.  Its powers never form a ``d x d`` matrix:
  ``Sigma_a^p z = V diag(((1 - a) l + a tau)^p) V^T z + (a tau)^p (z - V V^T z)``.
  ``a`` is Ledoit and Wolf's (2004) estimate (:func:`archstat.train.whiten.ledoit_wolf_shrinkage`) or
  chosen by cross-validation on the labelled target images.
* ``lda``: class means ``mu_c`` from the target's labelled images (and their training views),
  ``w_c = Sigma_a^-1 mu_c``, ``b_c = -mu_c^T Sigma_a^-1 mu_c / 2`` (equal priors); predict
  ``argmax_c w_c^T z + b_c``.
* ``white``: ``z -> Sigma_a^(-1/2) z`` (ZCA whitening with the source's within-class covariance),
  then the kept logistic-regression probe on the whitened features.
* ``simpleshot`` (Wang et al. 2019, CL2N): ``u = (f - m_s) / ||f - m_s||`` on the raw features, class
  centroids of the labelled ``u``, nearest centroid: ``argmax_c u^T c_c - ||c_c||^2 / 2``.
* ``dc`` (distribution calibration, Yang, Liu and Xu, ICLR 2021): on Tukey-transformed features
  (``f^0.5``, the features are post-ReLU), each labelled feature ``x`` borrows the statistics of its
  ``k = 2`` nearest source classes (by distance to their means): ``mu' = (mu_1 + mu_2 + x) / 3``,
  ``Sigma' = (S_1 + S_2) / 2 + alpha I``; ``DC_SAMPLES`` features are drawn from ``N(mu', Sigma')``
  per labelled row and the logistic regression is fitted on the real and sampled rows (``C`` by the
  kept cross-validation, a sampled row grouped with the image it came from).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from archstat.train.probe import RowFit, image_folds
from archstat.train.whiten import Whitener, source_whitener, within_class_centred

ALPHAS = (0.99, 0.9, 0.7, 0.5, 0.3, 0.1, 0.03, 0.01)  # strongest shrinkage first: CV ties keep it
DC_K = 2
DC_ALPHA = 0.21  # the paper's miniImageNet value, here on source-standardised features (unit variance)
DC_SAMPLES = 4  # per labelled row (125 rows: 500 samples, as many as the real rows' span allows cheaply)
CLASSIFIERS = ("lda", "ldacv", "white", "simpleshot", "dc")
CLASSIFIERS_SAID = {
    "lda": "LDA, covariance from the source (Ledoit-Wolf)", "ldacv": "LDA, covariance from the source (shrinkage by CV)",
    "white": "logistic regression on features whitened with the source covariance (Ledoit-Wolf)",
    "simpleshot": "SimpleShot (centred on the source mean, L2-normalised, nearest centroid)",
    "dc": f"distribution calibration (k={DC_K}, alpha={DC_ALPHA}, {DC_SAMPLES} samples per row)"}


@dataclasses.dataclass
class SourceStats:
    """What the source's labelled training features give: the whitener (standardiser and shrunk
    within-class covariance, :mod:`archstat.train.whiten`), the class means and the centred rows."""

    white: Whitener  # m_s, s_s and Sigma's eigenpairs, tau and the Ledoit-Wolf shrinkage
    classes: np.ndarray  # K source labels
    class_means: np.ndarray  # K x d, standardised
    centred: np.ndarray  # n x d: each standardised row minus its class mean
    labels: np.ndarray  # n

    @property
    def mean(self) -> np.ndarray:
        return self.white.mean

    @property
    def lw(self) -> float:
        return self.white.alpha

    def z(self, f: np.ndarray) -> np.ndarray:
        return (f - self.white.mean) / self.white.scale


def source_stats(f: np.ndarray, y: np.ndarray) -> SourceStats:
    """:class:`SourceStats` of source features ``f`` (n x d) with labels ``y``."""
    white = source_whitener(f, y)
    z = (f - white.mean) / white.scale
    classes = np.unique(y)
    return SourceStats(white, classes, np.stack([z[y == c].mean(axis=0) for c in classes]),
                       within_class_centred(z, y), np.asarray(y))


def describe(st: SourceStats) -> str:
    """One line: the source covariance's size, rank, eigenvalue range and shrinkage."""
    w = st.white
    return (f"source within-class covariance: {len(st.labels)} images, d = {len(w.mean)}, rank {len(w.vals)}, "
            f"eigenvalues {w.vals.min():.3g} to {w.vals.max():.4g}, tau = tr(S)/d = {w.tau:.3g}, "
            f"Ledoit-Wolf shrinkage {w.alpha:.3f}")


def shrunk_power(st: SourceStats, alpha: float, z: np.ndarray, power: float) -> np.ndarray:
    """Rows of ``z`` times ``Sigma_a^power``, ``Sigma_a = (1 - a) S + a tau I``, ``0 < a <= 1``."""
    return dataclasses.replace(st.white, alpha=alpha).power(z, power)


def lda(st: SourceStats, z: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(classes, W, b): ``w_c = Sigma_a^-1 mu_c``, ``b_c = -mu_c^T Sigma_a^-1 mu_c / 2``, means over ``z``'s rows."""
    classes = np.unique(y)
    mu = np.stack([z[y == c].mean(axis=0) for c in classes])
    w = shrunk_power(st, alpha, mu, -1.0)
    return classes, w, -0.5 * (w * mu).sum(axis=1)


def choose_alpha(st: SourceStats, z: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int) -> float:
    """The shrinkage in ``ALPHAS`` with the best cross-validated LDA accuracy on the labelled rows."""
    scores = []
    for a in ALPHAS:
        accs = []
        for tr, te in image_folds(y, groups, seed):
            classes, w, b = lda(st, z[tr], y[tr], a)
            accs.append(float((classes[(z[te] @ w.T + b).argmax(1)] == y[te]).mean()))
        scores.append(np.mean(accs))
    return ALPHAS[int(np.argmax(scores))]


def simpleshot(st: SourceStats, f: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Nearest centroid on ``(f - m_s) / ||f - m_s||``: a predictor of labels from raw features."""
    unit = lambda g: (g - st.mean) / np.linalg.norm(g - st.mean, axis=1, keepdims=True)  # noqa: E731
    classes = np.unique(y)
    cent = np.stack([unit(f[y == c]).mean(axis=0) for c in classes])
    return lambda g: classes[(unit(g) @ cent.T - 0.5 * (cent ** 2).sum(axis=1)).argmax(1)]


def calibrated_samples(st: SourceStats, z: np.ndarray, rng: np.random.Generator, per_row: int = DC_SAMPLES,
                       k: int = DC_K, alpha: float = DC_ALPHA) -> np.ndarray:
    """``per_row`` draws from each row's calibrated Gaussian (rows of the result: row 0's draws first).

    A draw is ``mu' + sum_j Xc_j^T g_j / sqrt(k n_j) + sqrt(alpha) e`` with ``g_j``, ``e`` standard normal
    and ``Xc_j`` class ``j``'s centred rows: its covariance is ``sum_j S_j / k + alpha I``."""
    out = []
    for x in z:
        near = np.argsort(((st.class_means - x) ** 2).sum(axis=1))[:k]
        mu = (st.class_means[near].sum(axis=0) + x) / (k + 1)
        draw = mu + np.sqrt(alpha) * rng.standard_normal((per_row, z.shape[1]))
        for j in near:
            xc = st.centred[st.labels == st.classes[j]]
            draw += rng.standard_normal((per_row, len(xc))) @ xc / np.sqrt(k * len(xc))
        out.append(draw)
    return np.concatenate(out)


def tukey(f: np.ndarray) -> np.ndarray:
    """Tukey's ladder at 0.5, the paper's transform of post-ReLU features before calibration."""
    return np.sqrt(np.maximum(f, 0.0))


def source_stats_for(kind: str, f: np.ndarray, y: np.ndarray) -> SourceStats:
    """The source statistics a classifier ``kind`` uses (``dc``: of the Tukey-transformed features)."""
    return source_stats(tukey(f) if kind == "dc" else f, y)


def accuracy(kind: str, st: SourceStats, feats: Callable, train: tuple, val: tuple, vs: list, seed: int) -> float:
    """Validation accuracy of classifier ``kind`` fitted on ``train``'s images and their views ``vs``."""
    from archstat.train.probe import fit_probe

    if kind == "white":  # the kept probe on whitened features: fit_probe extracts them itself
        return fit_probe(lambda xs: st.white(feats(xs)), train, {"val": val}, seed, vs)["val_acc"]
    x, y = train
    f = np.concatenate([feats(x)] + [feats(v(x)) for v in vs])
    ytr = np.tile(y.numpy(), 1 + len(vs))
    groups = np.tile(np.arange(len(x)), 1 + len(vs))
    fv, yv = feats(val[0]), val[1].numpy()
    if kind in ("lda", "ldacv"):
        z = st.z(f)
        a = st.lw if kind == "lda" else choose_alpha(st, z, ytr, groups, seed)
        classes, w, b = lda(st, z, ytr, a)
        pred = classes[(st.z(fv) @ w.T + b).argmax(1)]
    elif kind == "simpleshot":
        pred = simpleshot(st, f, ytr)(fv)
    else:  # dc
        z = st.z(tukey(f))
        extra = calibrated_samples(st, z, np.random.default_rng(seed))
        rows = np.concatenate([z, extra])
        pred = RowFit(rows, np.concatenate([ytr, np.repeat(ytr, DC_SAMPLES)]),  # the kept probe's classifier
                      np.concatenate([groups, np.repeat(groups, DC_SAMPLES)]), seed).predict(st.z(tukey(fv)))
    return float((pred == yv).mean())
