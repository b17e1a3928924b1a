"""bench/probe_select.py's own helpers (its runs are benchmarks, not tests): AdaBN, pyramid pooling,
the probe's test-time augmentation and the candidate syntax."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from torch import nn

from archstat.train.probe import fit_probe, stage_features

from _bench import load_bench


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
    for bad in ("2:8:crop=2:blur", "2:0:crop=2", "2:8", "x:8:crop=2", "2:4+:crop=2"):
        with pytest.raises(SystemExit) as e:
            bench.parse_candidate(bad, p)
        assert e.value.code == 2
