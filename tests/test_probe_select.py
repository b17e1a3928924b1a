"""bench/probe_select.py's own helpers (its runs are benchmarks, not tests): AdaBN, pyramid pooling,
the probe's test-time augmentation, the candidate syntax, and bench/probe_stats.py's classifiers from
the source's second-order statistics (LDA, SimpleShot, distribution calibration)."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from torch import nn

from archstat.train.probe import fit_probe, stage_features

from _bench import BENCH_DIR, load_bench


@pytest.fixture(autouse=True)
def bench_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH_DIR))  # probe_select imports its sibling probe_stats


def tiny() -> nn.Module:
    """Two stages (8x8 after the ReLU, 1x1 after the pool) and a linear classifier on 4 features."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3))


def test_adabn_sets_running_statistics_to_the_batch_and_leaves_weights_and_source_alone():
    bench, model = load_bench("probe_select"), tiny()
    x = torch.randn(12, 1, 8, 8) * 3 + 1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = bench.adabn(model, x)
    pre_bn = model[0](x)  # what the BatchNorm sees
    bn = adapted[1]
    assert torch.allclose(bn.running_mean, pre_bn.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, pre_bn.var(dim=(0, 2, 3), unbiased=True), atol=1e-4)
    assert not adapted.training
    for k, v in model.state_dict().items():  # the source network is not touched
        assert torch.equal(v, before[k]), k
    assert torch.equal(adapted[0].weight, model[0].weight) and torch.equal(adapted[1].weight, model[1].weight)


def test_pyramid_concatenates_each_grid_and_keeps_the_penultimate_features_once():
    bench, model = load_bench("probe_select"), tiny()
    x = torch.rand(5, 1, 8, 8)
    f = bench.features(model, 1, (1, 2), False)(x)
    g1, g2 = stage_features(model, x, 1, 1), stage_features(model, x, 1, 2)  # 4 + 4 and 16 + 4 columns
    assert f.shape == (5, 4 + 16 + 4)
    np.testing.assert_array_equal(f, np.concatenate([g1[:, :4], g2], axis=1))


def test_tta_over_the_identity_alone_is_the_probes_own_accuracy():
    bench = load_bench("probe_select")
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(30, 1, 4, 4)), dtype=torch.float32)
    y = torch.arange(30) % 3
    x[:, 0, 0, 0] += 2.0 * y  # a learnable signal, with noise
    feats = lambda xs: xs.flatten(1).numpy()  # noqa: E731
    xv, yv = x[:15] + 0.5 * torch.randn(15, 1, 4, 4), y[:15]
    fit = fit_probe(feats, (x, y), {"val": (xv, yv)})
    # the probe's weight and bias on raw features against sklearn's own score
    assert bench.tta_accuracy(fit, feats, [], xv, yv) == pytest.approx(fit["val_acc"])
    assert bench.tta_accuracy(fit, feats, [lambda t: t], xv, yv) == pytest.approx(fit["val_acc"])


def test_candidate_syntax():
    bench = load_bench("probe_select")
    p = argparse.ArgumentParser()
    assert bench.parse_candidate("2:1+2+4+8:crop=2:adabn:tta", p) == (2, (1, 2, 4, 8), "crop=2",
                                                                      frozenset({"adabn", "tta"}))
    assert bench.parse_candidate("all:8:", p) == (None, (8,), "", frozenset())
    assert bench.parse_candidate("2:8:crop=2:white", p)[3] == frozenset({"white"})
    for bad in ("2:8:crop=2:blur", "2:0:crop=2", "2:8", "x:8:crop=2", "2:4+:crop=2", "2:8:crop=2:lda:white",
                "2:8:crop=2:dc:tta", "2:8:crop=2:adabn:white"):  # adabn: per draw; the stats: once
        with pytest.raises(SystemExit) as e:
            bench.parse_candidate(bad, p)
        assert e.value.code == 2


def stats_case():
    """Source features of 3 classes (n = 30, d = 20) and their statistics."""
    stats = load_bench("probe_stats")
    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    f = np.abs(rng.normal(size=(30, 20)) @ rng.normal(size=(20, 20)) + 2.0 * y[:, None])
    return stats, stats.source_stats(f, y), rng


def test_lda_weights_are_the_shrunk_inverse_covariance_times_the_class_means():
    stats, st, rng = stats_case()
    z = rng.normal(size=(12, 20))
    y = np.arange(12) % 4
    s = st.centred.T @ st.centred / len(st.centred)
    a = 0.3
    sigma = (1 - a) * s + a * np.trace(s) / 20 * np.eye(20)
    classes, w, b = stats.lda(st, z, y, a)
    mu = np.stack([z[y == c].mean(axis=0) for c in range(4)])
    np.testing.assert_allclose(w, np.linalg.solve(sigma, mu.T).T, atol=1e-8)
    np.testing.assert_allclose(b, -0.5 * np.einsum("cd,cd->c", mu, np.linalg.solve(sigma, mu.T).T), atol=1e-8)
    assert list(classes) == [0, 1, 2, 3]


def test_simpleshot_is_the_nearest_normalised_centroid():
    stats, st, rng = stats_case()
    f, y = np.abs(rng.normal(size=(15, 20))), np.arange(15) % 3
    g = np.abs(rng.normal(size=(40, 20)))
    unit = lambda h: (h - st.mean) / np.linalg.norm(h - st.mean, axis=1, keepdims=True)  # noqa: E731
    cent = np.stack([unit(f[y == c]).mean(axis=0) for c in range(3)])
    nearest = ((unit(g)[:, None, :] - cent[None]) ** 2).sum(axis=2).argmin(axis=1)
    np.testing.assert_array_equal(stats.simpleshot(st, f, y)(g), nearest)


def test_calibrated_samples_have_the_borrowed_mean_and_covariance():
    stats, st, rng = stats_case()
    x = st.class_means[0] + 0.1  # its two nearest source classes are 0 and 1
    draws = stats.calibrated_samples(st, x[None], rng, per_row=40000, k=2, alpha=0.21)
    near = np.argsort(((st.class_means - x) ** 2).sum(axis=1))[:2]
    mu = (st.class_means[near].sum(axis=0) + x) / 3
    cov = sum(np.cov(st.centred[st.labels == j].T, bias=True) for j in near) / 2 + 0.21 * np.eye(20)
    np.testing.assert_allclose(draws.mean(axis=0), mu, atol=0.05 * np.sqrt(np.diag(cov)).max())
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.05 * np.abs(cov).max())
