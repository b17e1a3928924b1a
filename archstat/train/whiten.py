"""Whitening frozen features with the source task's within-class covariance (the transfer probe's input).

A 5-shot probe fits thousands of weights on 25 images; the source task has hundreds of labelled
images whose features say how the features vary *within* a class, i.e. which directions are noise.
That second-order statistic transfers: the features are whitened with it before the probe.

In the source-standardised space ``z = (f - m_s) / s_s`` (``m_s``, ``s_s``: mean and floored scale of
the source training features, :func:`archstat.train.probe.standardiser`), the within-class covariance
over the ``n`` source images is ``S = (1/n) sum_i (z_i - mu_{y_i})(z_i - mu_{y_i})^T``, each image
centred on its own class mean.  Its rank is at most ``n - K`` against ``d`` (thousands of)
dimensions, so it is kept as its eigenpairs ``S = V diag(l) V^T`` (the SVD of the centred rows) and
shrunk towards ``tau I``, ``tau = tr(S) / d``, with Ledoit and Wolf's (2004) shrinkage ``a``:
``Sigma = (1 - a) S + a tau I``.  Its powers never form a ``d x d`` matrix:
``Sigma^p z = V diag(((1 - a) l + a tau)^p) V^T z + (a tau)^p (z - V V^T z)``.

The whitened features are ``Sigma^(-1/2) z`` (ZCA: an affine map of ``f``), so a linear classifier
``W u + b`` on them is the linear classifier ``(W Sigma^(-1/2) / s_s) f + b - (W Sigma^(-1/2) / s_s) m_s``
on the raw features (:meth:`Whitener.fold`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from archstat.errors import ArchstatError
from archstat.train.probe import standardiser


def within_class_centred(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row of ``z`` minus the mean of its class's rows."""
    classes, idx = np.unique(y, return_inverse=True)
    means = np.stack([z[idx == k].mean(axis=0) for k in range(len(classes))])
    return z - means[idx]


def ledoit_wolf_shrinkage(x: np.ndarray) -> float:
    """Ledoit-Wolf shrinkage of ``S = x^T x / n`` towards ``tr(S)/d I`` (rows of ``x`` already centred), as
    ``sklearn.covariance.ledoit_wolf_shrinkage(x, assume_centered=True)`` computes it, but from the
    ``n x n`` Gram matrix (``||x^T x||_F = ||x x^T||_F``, ``sum_jk sum_i x_ij^2 x_ik^2 = sum_i ||x_i||^4``)
    instead of ``d x d`` blocks: ``a = min(beta, delta) / delta`` with ``delta = ||S - mu I||_F^2 / d``,
    ``beta = (sum_i ||x_i||^4 / n - ||S||_F^2) / (d n)``, ``mu = tr(S) / d``."""
    n, d = x.shape
    gram = x @ x.T
    sq = np.diag(gram)
    mu = sq.sum() / (n * d)
    s_frob2 = float((gram ** 2).sum()) / n ** 2
    beta = (float((sq ** 2).sum()) / n - s_frob2) / (d * n)
    delta = (s_frob2 - 2.0 * mu * sq.sum() / n + d * mu ** 2) / d
    beta = min(beta, delta)
    return 0.0 if beta <= 0 or delta <= 0 else float(beta / delta)  # delta 0: S is already tau I


@dataclasses.dataclass
class Whitener:
    """``f -> Sigma^(-1/2) (f - m_s) / s_s`` with ``Sigma`` the shrunk within-class covariance of the source."""

    mean: np.ndarray  # d: m_s
    scale: np.ndarray  # d: s_s
    vecs: np.ndarray  # d x r: eigenvectors of S with non-zero eigenvalue
    vals: np.ndarray  # r: their eigenvalues
    tau: float  # tr(S) / d
    alpha: float  # shrinkage, 0 < alpha <= 1

    def power(self, z: np.ndarray, p: float) -> np.ndarray:
        """Rows of ``z`` times ``Sigma^p`` (``Sigma`` is symmetric)."""
        proj = z @ self.vecs
        inside = (proj * ((1 - self.alpha) * self.vals + self.alpha * self.tau) ** p) @ self.vecs.T
        return inside + (z - proj @ self.vecs.T) * (self.alpha * self.tau) ** p

    def __call__(self, f: np.ndarray) -> np.ndarray:
        return self.power((f - self.mean) / self.scale, -0.5)

    def fold(self, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(W, b)`` of a classifier on whitened features -> the same classifier on raw features."""
        w = self.power(weight, -0.5) / self.scale
        return w, bias - w @ self.mean


def source_whitener(f: np.ndarray, y: np.ndarray) -> Whitener:
    """:class:`Whitener` of source features ``f`` (``n x d``) with class labels ``y``."""
    mean, scale = standardiser(f)
    xc = within_class_centred((f - mean) / scale, np.asarray(y))
    if not np.any(xc):  # one image per class (or identical ones): no within-class spread to whiten by
        raise ArchstatError("whitening needs source images that vary within their class (at least 2 per class)")
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    keep = s > 1e-6 * s[0]
    n, d = xc.shape
    tau = float((xc ** 2).sum() / (n * d))
    # the floor keeps Sigma invertible off S's span should the data give no shrinkage at all
    return Whitener(mean, scale, vt[keep].T, s[keep] ** 2 / n, tau, max(ledoit_wolf_shrinkage(xc), 1e-6))
