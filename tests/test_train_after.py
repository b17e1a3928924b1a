"""After training: ensembles (independent, snapshots), EMA, transfer learning, test-time augmentation."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from archstat.train.ensemble import ensemble_probs, independent_ensemble, snapshot_ensemble
from archstat.train.loop import TrainConfig, train
from archstat.train.setup import load_data
from archstat.train.ema import EMA, warmed_decay
from archstat.errors import ArchstatError
from archstat.train.probe import PROBE_CS, choose_c, linear_probe, span_basis, stage_features
from archstat.train.transfer import in_source_norm, replace_head, transfer_table
from archstat.train.tta import shift, ten_crops, tta_line, tta_report, views_from_augment

TINY = "archstat.train.tiny:tiny_cnn"


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


def test_ema_update_is_the_warmed_up_average():
    assert warmed_decay(0.995, 0) == 0.1 and warmed_decay(0.995, 10**6) == 0.995
    assert all(warmed_decay(0.995, t) <= warmed_decay(0.995, t + 1) for t in range(3000))
    model = nn.Linear(2, 1)
    ema = EMA(model, 0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # d_0 = 0.1: mostly the new weights
    assert torch.allclose(ema.module.weight, 0.1 * start + 0.9 * model.weight)
    fixed = EMA(model, 0.9, warmup=False)
    fixed.update(nn.Linear(2, 1))
    assert fixed.updates == 1 and fixed.current_decay() == 0.9


def test_ema_warmup_is_what_makes_a_short_run_work(splits):
    """0.995 over ~30 steps: without warm-up the average is mostly the random init (issue 16's 9.72%)."""
    warm = train(cfg(epochs=1, ema=0.995), splits=splits).summary
    cold = train(cfg(epochs=1, ema=0.995, ema_warmup=False), splits=splits).summary
    assert warm["test_acc_ema"] >= warm["test_acc"] - 0.05
    assert cold["test_acc_ema"] < warm["test_acc_ema"] - 0.1  # 0.995 ** 33 = 85% of the mass on the init


def test_ema_recomputes_batchnorm_statistics():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    ema = EMA(model, 0.99)
    x = torch.randn(64, 1, 3, 3) * 3 + 5
    ema.recompute_batchnorm(x, batch=16)
    with torch.no_grad():
        pre = ema.module[0](x)
    assert torch.allclose(ema.module[1].running_mean, pre.mean(dim=(0, 2, 3)), atol=1e-4)
    assert ema.module[1].momentum == model[1].momentum and not ema.module.training


def test_replace_head_and_linear_probe(splits):
    m = train(cfg(epochs=1, classes=[0, 1, 2, 3, 4], max_steps=3), splits=None).model
    old = copy.deepcopy(m[0].weight)
    head = replace_head(m, 3)
    assert m[-1] is head and head.out_features == 3 and torch.equal(m[0].weight, old)
    pre = train(cfg(epochs=2, classes=[0, 1, 2, 3, 4]), splits=None).model
    tgt = load_data("digits", (1, 12, 12), TINY, 0, [5, 6, 7, 8, 9], 10)
    probe = linear_probe(pre, tgt.train.tensors, {"test": tgt.test.tensors}, stages=0)
    assert probe["weight"].shape == (5, pre[-1].in_features) and 0.5 < probe["test_acc"] <= 1
    # the probe folded into one linear layer scores what the probe scored
    model = copy.deepcopy(pre)
    head = replace_head(model, 5)
    with torch.no_grad():
        head.weight.copy_(probe["weight"]), head.bias.copy_(probe["bias"])
    x, y = tgt.test.tensors
    model.eval()
    acc = float((model(x).argmax(1) == y).float().mean())
    assert abs(acc - probe["test_acc"]) < 0.01


def test_stage_features_pool_each_spatial_size_then_the_penultimate():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 1),
                      nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    x = torch.randn(5, 1, 8, 8)
    f = stage_features(m, x)
    with torch.no_grad():
        a1 = m[1](m[0](x))  # the ReLU's output replaces the conv's (same 8x8 size)
        a2 = m[3](m[2](a1))
    want = torch.cat([a1.mean((2, 3)), a2.mean((2, 3)), a2.flatten(1)], 1)
    assert f.shape == (5, 3 + 4 + 64) and torch.allclose(torch.as_tensor(f), want, atol=1e-6)
    assert stage_features(m, x, stages=0).shape == (5, 64)
    # a 2x2 grid: four cell means per channel (8x8 -> 4x4 cells, 4x4 -> 2x2 cells), the first stage alone
    g = stage_features(m, x, stages=1, grid=2)
    cells = a1.unfold(2, 4, 4).unfold(3, 4, 4).mean((-1, -2)).flatten(1)
    assert g.shape == (5, 3 * 4 + 64) and torch.allclose(torch.as_tensor(g), torch.cat([cells, a2.flatten(1)], 1), atol=1e-6)
    # a grid finer than a map keeps the map whole (no upsampling)
    assert stage_features(m, x, grid=16).shape == (5, 3 * 64 + 4 * 16 + 64)


def test_probe_regularisation_is_chosen_by_cross_validation_on_the_labelled_images():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 5)
    informative = rng.normal(size=(15, 2)) + 3 * np.eye(3)[y][:, :2]
    z = np.concatenate([informative, rng.normal(size=(15, 200))], 1)  # 200 noise features: C must be small
    c, acc = choose_c(z, y)
    assert c <= 0.1 and acc > 0.6
    with pytest.raises(ArchstatError, match="at least 2 labelled images per class"):
        choose_c(z[:4], np.array([0, 1, 2, 2]))


def test_probe_folds_split_images_not_their_views():
    """Noise features, each image with an exact copy as its 'view': if a copy could sit in the training
    folds while its image is held out, CV would read ~100%; split by image it stays near chance."""
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 6)
    z = rng.normal(size=(18, 50))
    zz, yy, groups = np.concatenate([z, z]), np.concatenate([y, y]), np.tile(np.arange(18), 2)
    _, leaky = choose_c(zz, yy, groups=np.arange(36))
    _, honest = choose_c(zz, yy, groups=groups)
    assert leaky > 0.9 and honest < 0.6


def test_probe_fitted_in_the_span_of_its_rows_is_the_full_classifier():
    """L2 logistic regression on n rows in d >> n dimensions: fitting on the coordinates in the rows'
    span gives the same decision function as fitting on all d features."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 5)
    z = rng.normal(size=(15, 300)) + np.eye(3)[y] @ rng.normal(size=(3, 300))
    z -= z.mean(0)
    test = rng.normal(size=(40, 300))
    basis = span_basis(z)
    assert basis.shape == (300, 14)  # centred rows span n - 1 dimensions
    full = LogisticRegression(C=0.1, max_iter=5000, tol=1e-10).fit(z, y)
    small = LogisticRegression(C=0.1, max_iter=5000, tol=1e-10).fit(z @ basis, y)
    assert np.allclose(full.decision_function(test), small.decision_function(test @ basis), atol=1e-4)
    assert np.allclose(full.coef_, small.coef_ @ basis.T, atol=1e-4)


def test_in_source_norm_feeds_target_pixels_in_the_source_normalisation():
    src = load_data("digits", (1, 12, 12), TINY, 0, [0, 1, 2, 3, 4], None)
    tgt = load_data("digits", (1, 12, 12), TINY, 0, [5, 6, 7, 8, 9], 5)
    view = in_source_norm(tgt, src)
    assert torch.allclose(src.denormalise(view.test.tensors[0]), tgt.denormalise(tgt.test.tensors[0]), atol=1e-5)
    assert not torch.allclose(view.train.tensors[0], tgt.train.tensors[0])
    assert torch.equal(view.train.tensors[1], tgt.train.tensors[1]) and len(view.val) == len(tgt.val)


def test_transfer_table_has_four_measured_cells(tmp_path, monkeypatch):
    # The table's assembly is checked here; how C is chosen over the whole PROBE_CS grid is checked by
    # test_probe_regularisation_is_chosen_by_cross_validation_on_the_labelled_images.  Two of the grid's
    # values keep the cross-validated choice in play at a quarter of the fits (12 probes x C x 5 folds).
    grid = (PROBE_CS[2], PROBE_CS[6])
    monkeypatch.setattr("archstat.train.probe.PROBE_CS", grid)
    lines = []
    r = transfer_table(cfg(epochs=2, out=str(tmp_path)), little=5, target_iters=60, draws=2, log=lines.append,
                       exemplar_steps=20)
    assert r["frozen_probe_exemplar_steps"] == 20 and sum("exemplar pre-training, 20 steps" in s for s in lines) == 2
    assert set(r["cells"]) == {"little/similar", "much/similar", "little/different", "much/different"}
    little = r["cells"]["little/similar"]
    assert r["target_test_images"] == 180 and little["target_train_images"] == 25
    assert little["draws"] == 2 and r["cells"]["much/similar"]["draws"] == 1
    per = [d["linear_frozen"] for d in little["per_draw"]]
    assert little["linear_frozen"] == pytest.approx(np.mean(per)) and little["linear_frozen_std"] == pytest.approx(np.std(per, ddof=1))
    assert [d["target_train_images"] for d in little["per_draw"]] == [25, 25]
    for c in r["cells"].values():
        assert 0.2 <= c["scratch"] <= 1 and 0 <= c["linear_frozen"] <= 1 and 0 <= c["fine_tune"] <= 1
        assert 0 <= c["linear_penultimate"] <= 1 and 0 <= c["linear_pixels"] <= 1 and c["per_draw"][0]["probe_C"] in grid
        helps = max(c["linear_frozen"], c["fine_tune"]) >= c["scratch"] + 0.0005
        assert ("transfer helps" in c["verdict"]) == helps and ("does not help" in c["verdict"]) == (not helps)
    assert "trained 20 steps on the source images as exemplars" in lines[-1]
    assert "| target data | source |" in lines[-1] and lines[-1].count("\n| ") == 5 and "(pixels, no network)" in lines[-1]


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


def test_tta_views_follow_the_training_transforms():
    assert list(views_from_augment("")) == ["identity"]
    assert list(views_from_augment("jitter=0.4,mixup")) == ["identity"]  # colour and mixing give no view
    assert len(views_from_augment("flip")) == 2 and len(views_from_augment("crop=2")) == 5
    assert len(views_from_augment("crop=2,flip")) == 10 and any("zoom" in k for k in views_from_augment("rrc"))
    x = torch.arange(16.0).view(1, 1, 4, 4) + 1
    right = shift(x, 1, 0)
    assert torch.allclose(right[..., 1:], x[..., :-1]) and float(right[..., 0].abs().max()) == 0.0
    down = shift(x, 0, 1)
    assert torch.allclose(down[..., 1:, :], x[..., :-1, :])


def test_tta_report(splits):
    run = train(cfg(epochs=1), splits=splits)
    x, y = splits.test.tensors
    plain = tta_report(run.model, x, y, "", splits.mean, splits.std)
    assert plain["tta_views"] == ["identity"] and abs(plain["tta_acc"] - plain["single_crop_acc"]) < 1e-9
    assert "no extra views" in tta_line(plain)
    r = tta_report(run.model, x, y, "crop=2,flip", splits.mean, splits.std)
    assert len(r["tta_views"]) == 10 and 0 < r["tta_acc"] <= 1 and 0 < r["resize_center_crop_acc"] <= 1
