"""The lecture's sanity checks, the LR range test, the recipe's step 3 and the curve diagnosis."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from archstat.models import list_models
from archstat.train.checks import check_init_loss, lr_range_test, overfit_small
from archstat.train.diagnose import diagnose
from archstat.train.metrics import FIELDS, moving_average
from archstat.train.optim import cycle_ends, lr_factor
from archstat.train.search import random_configs
from archstat.train.setup import build_model, check_input_fits, load_data

TINY = "archstat.train.tiny:tiny_cnn"


@pytest.fixture(scope="module")
def digits16():
    return load_data("digits", (1, 16, 16), TINY)


# A default-run subset of the zoo at small inputs; bench/train_checks.py covers every model.
ZOO_SUBSET = [("alexnet", (1, 63, 63)), ("resnet18", (1, 16, 16)), ("vgg11_bn", (1, 32, 32))]


@pytest.mark.parametrize("name, shape", [(n, s) for n, s in ZOO_SUBSET if n in list_models()] + [(TINY, (1, 16, 16))])
def test_init_loss_is_ln_c(name, shape):
    splits = load_data("digits", shape, name)
    model = build_model(name, 10, 1)
    check_input_fits(model, shape, name)
    r = check_init_loss(model, splits, batch=64)
    assert r.ok, r.detail
    assert abs(r.values["expected"] - math.log(10)) < 1e-12


def test_init_loss_check_fails_for_a_large_last_layer(digits16):
    model = build_model(TINY, 10, 1)
    torch.nn.init.normal_(model[-1].weight, 0, 1.0)  # big logits: loss far above ln 10
    r = check_init_loss(model, digits16)
    assert not r.ok and "likely causes: logits too large" in r.detail


def test_overfit_small_tiny(digits16):
    r = overfit_small(build_model(TINY, 10, 1), digits16, batches=5, batch=32, max_iters=400)
    assert r.ok and r.values["acc"] == 1.0, r.detail


@pytest.mark.slow
def test_overfit_small_resnet18():
    splits = load_data("digits", (1, 16, 16), "resnet18")
    r = overfit_small(build_model("resnet18", 10, 1), splits, batches=5, batch=16, max_iters=200)
    assert r.ok, r.detail


def test_overfit_small_reports_a_diverging_lr(digits16):
    r = overfit_small(build_model(TINY, 10, 1), digits16, optimizer="sgd", lr=1e6, max_iters=20)
    assert not r.ok


def test_lr_range_test(digits16):
    r = lr_range_test(build_model(TINY, 10, 1), digits16, iters=40, batch=32)
    lrs = np.array(r["lr"])
    assert math.isclose(lrs[0], 1e-5) and np.all(np.diff(np.log(lrs)) > 0)
    assert 1e-5 <= r["suggested_lr"] <= 1e-1
    assert r["smooth"][-1] < r["smooth"][0]  # the sweep reaches LRs that learn


def test_schedules():
    T = 100
    cos = lr_factor("cosine", T)
    assert cos(0) == 1.0 and abs(cos(50) - 0.5) < 1e-12 and cos(100) < 1e-12
    step = lr_factor("step", T)
    assert step(49) == 1.0 and math.isclose(step(50), 0.1) and math.isclose(step(80), 0.01)
    cyc = lr_factor("cyclic", T, cycles=4)
    assert cyc(0) == 1.0 and cyc(25) == 1.0 and cyc(24) < 0.01
    assert cycle_ends(T, 4) == [25, 50, 75, 100]
    warm = lr_factor("constant", T, warmup=10)
    assert math.isclose(warm(0), 0.1) and warm(9) == 1.0
    lin = lr_factor("linear", T, warmup=10)
    assert math.isclose(lin(0), 0.1) and math.isclose(lin(50), 0.5) and lin(100) == 0.0
    inv = lr_factor("inverse-sqrt", T, warmup=16)
    assert math.isclose(inv(15), 1.0) and math.isclose(inv(63), 0.5) and math.isclose(inv(0), 1 / 16)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_optimizers_skip_weight_decay_on_norm_and_bias(name):
    from torch import nn

    from archstat.train.optim import build_optimizer, param_groups

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(3))
    model(torch.zeros(2, 1, 5, 5))
    opt = build_optimizer(param_groups(model, 1e-3), name, 0.01, 1e-3)
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decay == {id(model[0].weight), id(model[3].weight)}
    opt_all = build_optimizer(param_groups(model, 1e-3, decay_norm_and_bias=True), name, 0.01, 1e-3)
    assert all(g["weight_decay"] == 1e-3 for g in opt_all.param_groups)


def test_random_search_is_log_uniform():
    cfgs = random_configs(4000, (1e-4, 1e-1), (1e-5, 1e-1), seed=0)
    logs = np.log10([c["lr"] for c in cfgs])
    assert logs.min() >= -4 and logs.max() <= -1
    counts = np.histogram(logs, bins=3, range=(-4, -1))[0]  # one bin per decade: equal shares
    assert counts.min() > 0.9 * counts.max()


# ---- curve diagnosis on synthetic metrics CSVs with known shapes ----

def _write(path, loss, lr, train_acc=None, val_acc=None, per_epoch=20):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for t, (l, r) in enumerate(zip(loss, lr)):
            row = {"step": t + 1, "epoch": t // per_epoch + 1, "lr": r, "loss": l, "acc": ""}
            if train_acc is not None and (t + 1) % per_epoch == 0:
                e = (t + 1) // per_epoch - 1
                row.update(train_acc=train_acc[e], val_acc=val_acc[e], train_loss=l, val_loss=l)
            w.writerow(row)
    return path


def _codes(path):
    return {f.code for f in diagnose(path)}


def test_diagnose_patterns(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(400)
    noise = lambda: rng.normal(0, 0.02, len(t))  # noqa: E731
    const = np.full(len(t), 0.1)
    plateau = np.where(t < 150, 2.3, 2.3 * np.exp(-(t - 150) / 60)) + noise()
    assert "bad-init" in _codes(_write(tmp_path / "a.csv", plateau, const))
    flat = 2.3 + noise()
    assert "not-learning" in _codes(_write(tmp_path / "b.csv", flat, const))
    early_lr = np.where(t < 100, 0.1, 0.01)
    falling = 2.3 * np.exp(-t / 300) + noise()
    assert "decayed-too-early" in _codes(_write(tmp_path / "c.csv", falling, early_lr))
    # a cosine's last iterations halve the LR from one to the next: the end of a decay, not a step
    cosine = 0.1 * (1 + np.cos(np.pi * (t + 1) / 400)) / 2
    assert (cosine[1:] < cosine[:-1] / 2).any()
    assert "decayed-too-early" not in _codes(_write(tmp_path / "c2.csv", falling, cosine))
    stalls = 0.3 + 2.0 * np.exp(-t / 30) + noise() / 10
    assert "plateau" in _codes(_write(tmp_path / "d.csv", stalls, const))
    down = 2.3 * np.exp(-t / 80) + 0.05
    over = _write(tmp_path / "e.csv", down, 0.1 * (1 + np.cos(np.pi * t / 400)) / 2,
                  train_acc=np.linspace(0.8, 1.0, 20), val_acc=np.linspace(0.75, 0.85, 20))
    assert {"overfitting", "still-improving"} <= _codes(over)
    under = _write(tmp_path / "f.csv", down, 0.1 * (1 + np.cos(np.pi * t / 400)) / 2,
                   train_acc=np.full(20, 0.7), val_acc=np.full(20, 0.7))
    assert "underfitting" in _codes(under) and "overfitting" not in _codes(under)


def test_moving_average():
    assert np.allclose(moving_average([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
