"""After training: ensembles (independent, snapshots), EMA, transfer learning, test-time augmentation."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from archstat.train.ensemble import ensemble_probs, independent_ensemble, snapshot_ensemble
from archstat.train.loop import TrainConfig, train
from archstat.train.setup import load_data
from archstat.train.transfer import replace_head, transfer
from archstat.train.tta import RESNET_SCALES, tta_probs, tta_report, ten_crops

TINY = "archstat.train.tiny:tiny_cnn"


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def splits():
    return load_data("digits", (1, 12, 12), TINY)


def cfg(**kw):
    base = dict(model=TINY, input_shape=(1, 12, 12), epochs=2, batch=32, lr=0.05, quiet=True)
    base.update(kw)
    return TrainConfig(**base)


def test_ensemble_probs_average():
    a, b = nn.Linear(3, 4), nn.Linear(3, 4)
    x = torch.randn(5, 3)
    p = ensemble_probs([a, b], x)
    assert torch.allclose(p, (a(x).softmax(1) + b(x).softmax(1)) / 2, atol=1e-6)
    assert torch.allclose(p.sum(1), torch.ones(5))


def test_independent_and_snapshot_ensembles(splits):
    r = independent_ensemble(cfg(epochs=1), splits, 2, log=lambda *_: None)
    assert len(r["member_test_accs"]) == 2 and r["member_test_accs"][0] != r["member_test_accs"][1]
    assert r["single_test_acc"] == r["member_test_accs"][0] and 0.5 < r["ensemble_test_acc"] <= 1
    s = snapshot_ensemble(cfg(epochs=2), splits, 2, log=lambda *_: None)
    assert s["members"] == 2 and len(s["snapshot_test_accs"]) == 2
    assert s["ensemble_test_acc"] > 0.5 and s["single_test_acc"] > 0.5


def test_snapshots_are_taken_at_cycle_ends(splits):
    run = train(cfg(epochs=2, schedule="cyclic", cycles=3, max_steps=30), splits=splits)
    assert len(run.snapshots) == 3
    last = run.model.state_dict()
    assert all(torch.equal(run.snapshots[-1][k], last[k]) for k in last)  # the final weights are the last snapshot


def test_ema_weights_are_an_average(splits):
    run = train(cfg(epochs=1, ema=0.9), splits=splits)
    assert run.ema_model is not None and "test_acc_ema" in run.summary
    w, w_ema = run.model[-1].weight, run.ema_model[-1].weight
    assert not torch.equal(w, w_ema) and w.shape == w_ema.shape


def test_replace_head_and_transfer(splits):
    m = train(cfg(epochs=1, classes=[0, 1, 2, 3, 4], max_steps=3), splits=None).model
    old = copy.deepcopy(m[0].weight)
    head = replace_head(m, 3)
    assert m[-1] is head and head.out_features == 3 and torch.equal(m[0].weight, old)
    r = transfer(cfg(epochs=2), train_per_class=10, log=lambda *_: None)
    assert r["target_train_images"] == 50 and r["target_test_images"] == 180
    for k in ("scratch_test_acc", "feature_extraction_test_acc", "fine_tune_test_acc", "pretrain_test_acc"):
        assert 0.5 < r[k] <= 1, k  # all far above chance (0.2): a frozen 0-4 backbone's features carry over


def test_feature_extraction_freezes_backbone_and_batchnorm(splits):
    pre = train(cfg(epochs=1, max_steps=5), splits=splits).model
    model = copy.deepcopy(pre)
    replace_head(model, 10)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model[-1].parameters():
        p.requires_grad_(True)
    before = copy.deepcopy(model.state_dict())
    train(cfg(epochs=1, max_steps=5, freeze_bn=True), splits=splits, model=model)
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert changed == {"9.weight", "9.bias"}  # BN running stats untouched too


def test_ten_crops_geometry():
    x = torch.arange(36.0).view(1, 1, 6, 6)
    crops = ten_crops(x, (4, 4))
    assert len(crops) == 10 and all(c.shape == (1, 1, 4, 4) for c in crops)
    assert crops[0][0, 0, 0, 0] == 0 and crops[3][0, 0, -1, -1] == 35 and crops[4][0, 0, 0, 0] == 7
    assert torch.equal(crops[5], crops[0].flip(-1))


def test_tta_report(splits):
    run = train(cfg(epochs=1), splits=splits)
    x, y = splits.test.tensors
    r = tta_report(run.model, x, y)
    assert set(r) == {"single_crop_test_acc", "ten_crop_test_acc", "flip_test_acc", "multiscale_ten_crop_test_acc"}
    p = tta_probs(run.model, x[:7], RESNET_SCALES)
    assert p.shape == (7, 10) and torch.allclose(p.sum(1), torch.ones(7), atol=1e-5)
