"""The transfer probe's whitening with the source's within-class covariance (archstat/train/whiten.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.covariance import ledoit_wolf_shrinkage as sklearn_lw
from torch import nn

from archstat.train.probe import fit_probe, linear_probe, standardiser, stage_features
from archstat.train.whiten import ledoit_wolf_shrinkage, source_whitener, within_class_centred


def source(n: int = 40, d: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Correlated features of 3 classes whose means differ."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 3.0 * y[:, None], y


@pytest.mark.parametrize("n, d", [(40, 12), (9, 20)])  # full rank, and rank 6 < d as with the real features
def test_within_class_covariance_and_shrinkage_are_numpys_and_sklearns(n: int, d: int):
    f, y = source(n, d)
    w = source_whitener(f, y)
    mean, scale = standardiser(f)
    z = (f - mean) / scale
    xc = np.concatenate([z[y == c] - z[y == c].mean(axis=0) for c in range(3)])
    s = np.cov(xc.T, bias=True)  # numpy's, each row centred on its own class's mean
    np.testing.assert_allclose(w.vecs @ np.diag(w.vals) @ w.vecs.T, s, atol=1e-10)
    assert w.tau == pytest.approx(np.trace(s) / s.shape[0])
    assert w.alpha == pytest.approx(sklearn_lw(xc, assume_centered=True))
    assert ledoit_wolf_shrinkage(xc) == pytest.approx(sklearn_lw(xc, assume_centered=True))
    np.testing.assert_allclose(np.sort(within_class_centred(z, y), axis=0), np.sort(xc, axis=0))
    sigma = (1 - w.alpha) * s + w.alpha * w.tau * np.eye(len(s))
    # Sigma^-1 and Sigma^-1/2 applied without a d x d matrix, against dense linear algebra
    np.testing.assert_allclose(w.power(z[:5], -1.0), np.linalg.solve(sigma, z[:5].T).T, atol=1e-8)
    vals, vecs = np.linalg.eigh(sigma)
    np.testing.assert_allclose(w(f[:5]), z[:5] @ (vecs / np.sqrt(vals)) @ vecs.T, atol=1e-8)


def test_whitened_source_rows_have_identity_within_class_covariance_when_d_is_small():
    f, y = source(n=400, d=6)
    w = source_whitener(f, y)
    w.alpha = 1e-9  # no shrinkage: S itself is full rank here
    u = w(f)
    np.testing.assert_allclose(np.cov(within_class_centred(u, y).T, bias=True), np.eye(6), atol=1e-5)


def test_whitened_probe_is_a_linear_classifier_on_the_raw_features():
    """fit_probe on whitened features, folded back: the raw-feature affine map scores what the probe scored."""
    f, y = source()
    w = source_whitener(f, y)
    rng = np.random.default_rng(1)
    u = rng.normal(size=12)  # the direction the target's classes lie along
    yt, yv = np.arange(30) % 3, np.arange(60) % 3
    ft, fv = rng.normal(size=(30, 12)) + 0.7 * yt[:, None] * u, rng.normal(size=(60, 12)) + 0.7 * yv[:, None] * u
    feats = lambda xs: w(xs.numpy())  # noqa: E731  (the "images" are the features themselves)
    fit = fit_probe(feats, (torch.as_tensor(ft), torch.as_tensor(yt)), {"val": (torch.as_tensor(fv), torch.as_tensor(yv))})
    weight, bias = w.fold(fit["weight"].double().numpy(), fit["bias"].double().numpy())
    assert float(((fv @ weight.T + bias).argmax(1) == yv).mean()) == pytest.approx(fit["val_acc"])
    assert 0.5 < fit["val_acc"] < 1.0  # a real fit with errors, not a trivial case


def test_linear_probe_with_a_source_whitens_and_folds_its_head():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.randn(30, 1, 8, 8), torch.arange(30) % 3
    x[:, 0, :4, :4] += 1.5 * y.view(-1, 1, 1).float()
    xs, ys = torch.randn(40, 1, 8, 8), torch.arange(40) % 2
    plain = linear_probe(m, (x, y), {"val": (x, y)}, stages=0)
    white = linear_probe(m, (x, y), {"val": (x, y)}, stages=0, source=(xs, ys))
    assert white["whitened"] and not plain["whitened"] and "whitened" in white["reads"]
    assert 0 < white["shrinkage"] <= 1
    f = torch.as_tensor(stage_features(m, x, 0))
    pred = (f @ white["weight"].T + white["bias"]).argmax(1)
    assert float((pred == y).float().mean()) == pytest.approx(white["val_acc"])
    assert not torch.allclose(white["weight"], plain["weight"])  # the source changed the classifier


def test_a_source_without_spread_within_its_classes_is_a_one_line_error():
    """One image per class leaves no within-class covariance to whiten by: ArchstatError, not a NaN."""
    from archstat.errors import ArchstatError

    f, y = source(3, 5)  # 3 images, one per class
    with pytest.raises(ArchstatError, match="at least 2 per class"):
        source_whitener(f, y)
    assert ledoit_wolf_shrinkage(np.zeros((4, 3))) == 0.0  # no spread at all: nothing to shrink, no 0/0
