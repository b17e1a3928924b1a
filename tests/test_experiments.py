"""The lecture's experiments: each claim, checked on the numbers the experiment returns.

Default runs use ``quick=True`` (reduced sizes, no figures); the full-size runs that produce
``reports/experiments/`` are ``@pytest.mark.slow``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from archstat.experiments import EXPERIMENTS, run_experiment

REPORTS = Path(__file__).resolve().parents[1] / "reports" / "experiments"
# reduced sizes in the default run; the full sizes (what reports/experiments holds) under -m slow
SIZES = [pytest.param("quick", id="quick"), pytest.param("full", id="full", marks=pytest.mark.slow)]
_FULL: dict[str, object] = {}


def _result(name: str, size: str, tmp_path_factory):
    """Quick runs write nothing; a full run writes its files once, for the freshness test too."""
    if size == "quick":
        return run_experiment(name, None, quick=True)
    if name not in _FULL:
        _FULL[name] = run_experiment(name, tmp_path_factory.mktemp(f"full_{name}"))
    return _FULL[name]


# ---------------------------------------------------------------- init

@pytest.fixture(scope="module", params=SIZES)
def init_result(request, tmp_path_factory):
    return _result("init", request.param, tmp_path_factory)


def test_init_relu_small_weights_collapse(init_result):
    # lecture: 0.01 * randn -> activations tend to zero with depth
    assert init_result.summary["relu_0.01_std_ratio_l6_over_l1"] < 0.1


def test_init_relu_large_weights_blow_up(init_result):
    assert init_result.summary["relu_0.05_std_ratio_l6_over_l1"] > 10


def test_init_relu_kaiming_keeps_scale(init_result):
    assert 1 / 1.5 < init_result.summary["relu_kaiming_std_ratio_l6_over_l1"] < 1.5


def test_init_per_layer_factor_matches_theory(init_result):
    # each ReLU layer multiplies E[a^2] by Din * s^2 / 2, so the std by sqrt(Din/2) * s
    df = init_result.tables["mlp"]
    for scale in ("0.01", "0.05"):
        std = df[(df.activation == "relu") & (df.init == scale)]["std"].to_numpy()
        per_layer = (std[-1] / std[0]) ** (1 / 5)
        assert per_layer == pytest.approx(math.sqrt(4096 / 2) * float(scale), rel=0.05)


def test_init_tanh_saturates_with_large_weights(init_result):
    assert init_result.summary["tanh_0.05_share_saturated_l6"] > 0.2
    assert init_result.summary["tanh_0.01_std_ratio_l6_over_l1"] < 0.2


def test_init_xavier_tanh_decays_and_the_tanh_gain_holds(init_result):
    # Xavier's 1/Din keeps Var(z) = E[a^2], but tanh contracts, so the std still falls layer after layer;
    # PyTorch's gain 5/3 settles it at a fixed point
    df = init_result.tables["mlp"]
    tanh = df[df.activation == "tanh"]
    xavier = tanh[tanh.init == "xavier"]["std"].to_numpy()
    gained = tanh[tanh.init == "xavier_tanh_gain"]["std"].to_numpy()
    assert (xavier[1:] < xavier[:-1]).all() and xavier[-1] / xavier[2] < 0.8
    assert 0.95 < gained[-1] / gained[2] < 1.05 and gained[-1] > 1.5 * xavier[-1]
    assert init_result.summary["tanh_xavier_std_ratio_l6_over_l1"] < 0.6
    assert any("still decays" in n for n in init_result.notes)


def test_init_residual_variance(init_result):
    s = init_result.summary
    assert s["residual_kaiming_both_var_growth_per_block"] > 1.5  # grows at every block
    assert s["residual_kaiming_both_var_final_over_input"] > 100
    res = init_result.tables["residual"]
    zero = res[res.init == "zero_init_conv2"]
    assert (zero.var_F == 0).all()  # F(x) = 0 at init, so Var(F(x) + x) = Var(x) exactly
    assert (zero.var_out == zero.var_in).all()


# ---------------------------------------------------------------- dropout

@pytest.fixture(scope="module")
def dropout_quick_files(tmp_path_factory):
    """The quick dropout run, with its files: the claims below read its numbers, and the CLI test
    compares its own run's files with these byte for byte (one quick run fewer than two of its own)."""
    return run_experiment("dropout", tmp_path_factory.mktemp("quick_dropout"), quick=True)


@pytest.fixture(scope="module", params=SIZES)
def dropout_result(request, tmp_path_factory):
    if request.param == "quick":
        return request.getfixturevalue("dropout_quick_files")
    return _result("dropout", request.param, tmp_path_factory)


def test_dropout_test_output_is_expected_train_output(dropout_result):
    df = dropout_result.tables["convergence"]
    for case in ("inverted, 1 mask (before last layer)", "vanilla, 1 mask (same masks: on the inverted curve)"):
        d = df[df.case == case].set_index("masks").rel_error
        m = d.index.max()
        assert d[m] < 3 * d[1] / math.sqrt(m)  # the Monte Carlo error falls like 1/sqrt(M)
        assert d[m] < 0.15


def test_dropout_unscaled_vanilla_is_wrong(dropout_result):
    s = dropout_result.summary
    assert s["rel_error[vanilla, 2 masks, test NOT scaled]"] > 0.5
    assert s["rel_error[inverted, 2 masks (lecture's net)]"] < s["rel_error[vanilla, 2 masks, test NOT scaled]"]


def test_dropout_torch_is_inverted(dropout_result):
    s = dropout_result.summary
    assert s["pytorch_dropout_p"] == 1 - s["keep_probability_lecture_p"]
    assert s["torch_kept_value"] == pytest.approx(1 / (1 - s["pytorch_dropout_p"]))
    assert s["torch_mean_output"] == pytest.approx(1.0, abs=0.01)
    assert round(s["log10_masks_4096_units"]) == 1233


def test_dropout_regularises_noisy_labels(dropout_result):
    # without dropout the net memorises the noisy training labels; with it, validation accuracy is higher
    s, key = dropout_result.summary, "30% noisy training labels"
    assert s[f"val_accuracy[{key}|dropout keep 0.5]"] > s[f"val_accuracy[{key}|no dropout]"] + 0.03
    assert s[f"train_accuracy[{key}|no dropout]"] > s[f"train_accuracy[{key}|dropout keep 0.5]"] + 0.05
    gap = dropout_result.tables["regularisation"]
    assert set(gap.variant) == {"no dropout", "dropout keep 0.5"} and set(gap.setting) == {"clean labels", key}
    assert (gap.groupby(["setting", "variant"]).epoch.max() == s["regularisation_epochs"]).all()


def test_dropout_ensemble_approaches_scaled_net(dropout_result):
    ens = dropout_result.tables["ensemble"]
    assert ens.logit_rel_error.iloc[-1] < ens.logit_rel_error.iloc[0] / 3
    assert ens.agreement_with_scaled.iloc[-1] >= 0.97
    assert dropout_result.summary["digits_scaled_net_test_accuracy"] > 0.85


# ---------------------------------------------------------------- augment gallery

@pytest.fixture(scope="module", params=SIZES)
def augment_result(request, tmp_path_factory):
    return _result("augment", request.param, tmp_path_factory)


def _rows(result, prefix):
    df = result.tables["gallery"]
    return df[df.augmentation.str.startswith(prefix)]


def test_augment_every_transform_changes_pixels_except_original(augment_result):
    df = augment_result.tables["gallery"]
    assert (df[df.augmentation == "original"].mean_abs_change == 0).all()
    changed = df[df.augmentation != "original"].groupby("augmentation").mean_abs_change.mean()
    assert len(changed) == 10 and (changed > 0).all()


def test_augment_cutout_and_cutmix_areas(augment_result):
    # Cutout zeroes at most a 32x32 square of the 96x96 image
    assert (_rows(augment_result, "Cutout").share_pixels_changed <= (32 / 96) ** 2 + 1e-9).all()
    # CutMix: the label weight of the image's own class is exactly the share of pixels it keeps
    cm = _rows(augment_result, "CutMix")
    assert (cm.share_pixels_changed <= 1 - cm.label_weight_own + 1e-6).all()
    photos = cm[cm.image.str.endswith(".jpg")]  # photos differ everywhere from what is pasted
    assert photos.share_pixels_changed.to_numpy() == pytest.approx(1 - photos.label_weight_own.to_numpy(), abs=1e-6)


def test_augment_labels_stay_distributions(augment_result):
    df = augment_result.tables["gallery"]
    assert df.label_weight_sum.to_numpy() == pytest.approx(1.0)
    mix = _rows(augment_result, "Mixup")
    assert ((mix.label_weight_own > 0) & (mix.label_weight_own < 1)).all()
    others = df[~df.augmentation.str.startswith(("Mixup", "CutMix"))]
    assert (others.label_weight_own == 1).all()


# ---------------------------------------------------------------- degradation

@pytest.fixture(scope="module", params=SIZES)
def degradation_result(request, tmp_path_factory):
    return _result("degradation", request.param, tmp_path_factory)


def test_degradation_deeper_plain_net_underfits(degradation_result):
    s = degradation_result.summary
    shallow, deep = s["final_train_loss[plain shallow]"], s["final_train_loss[plain deep]"]
    assert s["depth[plain deep]"] > 3 * s["depth[plain shallow]"]
    # higher TRAINING loss: underfitting, not overfitting
    assert deep > 5 * shallow and deep - shallow > 0.5


def test_degradation_residual_deep_net_does_not(degradation_result):
    s = degradation_result.summary
    for kind in ("residual", "preact"):
        loss = s[f"final_train_loss[{kind} deep]"]
        assert loss < s["final_train_loss[plain deep]"] / 3
        assert loss - s["final_train_loss[plain shallow]"] < 0.3


def test_degradation_shallow_residual_beside_the_deep_one(degradation_result):
    # He et al.'s Figure 4 (right): with shortcuts the deeper net is no worse than the shallower one
    s = degradation_result.summary
    assert s["depth[residual shallow]"] == s["depth[plain shallow]"] < s["depth[residual deep]"]
    assert s["final_train_loss[residual deep]"] < s["final_train_loss[residual shallow]"] + 0.3
    assert s["deep_residual_minus_shallow_residual"] == pytest.approx(
        s["final_train_loss[residual deep]"] - s["final_train_loss[residual shallow]"])


def test_degradation_bias_pair_trains(degradation_result):
    df = degradation_result.tables["final"]
    pair = df[df.variant.str.contains("bias")]
    assert pair.variant.nunique() == 2 and (pair.final_train_loss < 2.0).all()  # both learn (ln 10 = 2.30)


def test_dead_relu_share_measures_dead_units():
    from archstat.experiments.degradation import DepthNet, dead_relu_share

    x = torch.randn(16, 1, 8, 8)
    for bias, dead in ((-1.0, 1.0), (1.0, 0.0)):  # zero weights: every pre-activation is the bias
        net = DepthNet("plain", 1, 4, norm=False, bias_init=bias)
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.zeros_(m.weight)
        assert dead_relu_share(net, x) == dead
    half = DepthNet("plain", 1, 4, norm=False)
    assert 0.0 <= dead_relu_share(half, x) < 0.5


# ---------------------------------------------------------------- preprocess

@pytest.fixture(scope="module", params=SIZES)
def preprocess_result(request, tmp_path_factory):
    return _result("preprocess", request.param, tmp_path_factory)


def test_preprocess_pca_decorrelates_and_whitens(preprocess_result):
    s = preprocess_result.summary
    assert s["pixel_pair_corr_original"] > 0.3
    assert abs(s["pixel_pair_corr_decorrelated"]) < 1e-9
    assert s["whitened_cov_max_offdiag"] < 1e-6
    pair = preprocess_result.tables["pair_stats"].set_index("view")
    assert pair.loc["whitened data", ["var_0", "var_1"]].to_numpy() == pytest.approx([1.0, 1.0])
    assert pair.loc["normalised data (channel mean, std)", ["var_0", "var_1"]].to_numpy() == pytest.approx(
        [1.0, 1.0], abs=0.15)  # one channel std for all pixels: near, not exactly, 1 for a given pixel


def test_preprocess_raw_loss_is_sensitive_to_weights(preprocess_result):
    # the lecture: before normalisation the loss is very sensitive to small changes in the weights
    s = preprocess_result.summary
    raw = s["loss_change_under_weight_noise[raw (0..16)]"]
    assert raw > 10 * s["loss_change_under_weight_noise[normalised (per channel)]"]
    assert raw > 10 * s["loss_change_under_weight_noise[PCA-whitened]"]


def test_preprocess_normalised_trains_where_raw_does_not(preprocess_result):
    # same linear model, same lr 0.1, same batches: raw inputs overshoot, normalised ones learn
    s = preprocess_result.summary
    raw = s["first_epoch_loss[linear|raw (0..16)|lr=0.1]"]
    norm = s["first_epoch_loss[linear|normalised (per channel)|lr=0.1]"]
    assert norm < math.log(10) < raw


# ---------------------------------------------------------------- activations

@pytest.fixture(scope="module", params=SIZES)
def activations_result(request, tmp_path_factory):
    return _result("activations", request.param, tmp_path_factory)


def test_activation_gradients_match_closed_forms(activations_result):
    df = activations_result.tables["curves"]
    x = torch.tensor(df[df.activation == "ReLU"].x.to_numpy())
    mask = x.abs() > 1e-6  # the kink itself has a convention-dependent derivative

    def grad(name):
        return torch.tensor(df[df.activation == name].df.to_numpy())[mask]

    s, t = torch.sigmoid(x), torch.tanh(x)
    phi = torch.exp(-x ** 2 / 2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    alpha, lam = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    expected = {
        "Sigmoid": s * (1 - s), "Tanh": 1 - t ** 2, "ReLU": (x > 0).double(),
        "LeakyReLU(0.01)": torch.where(x > 0, 1.0, 0.01), "PReLU(0.25)": torch.where(x > 0, 1.0, 0.25),
        "ELU": torch.where(x > 0, 1.0, torch.exp(x)), "SELU": lam * torch.where(x > 0, 1.0, alpha * torch.exp(x)),
        "GELU": cdf + x * phi,
    }
    for name, want in expected.items():
        assert grad(name).numpy() == pytest.approx(want[mask].numpy(), abs=1e-5), name


def test_activation_relu_zeroes_half_the_gradients(activations_result):
    mlp = activations_result.tables["mlp_zero_grad"]
    relu = mlp[(mlp.init == "kaiming") & (mlp.activation == "ReLU")]
    assert relu.zero_grad_share.to_numpy() == pytest.approx(0.5, abs=0.03)
    leaky = mlp[mlp.activation == "LeakyReLU(0.01)"]
    assert (leaky.zero_grad_share == 0).all()  # Leaky ReLU never "dies"
    s = activations_result.summary
    assert 0.2 < s["cnn_zero_grad_share[ReLU]"] < 0.7
    assert s["cnn_zero_grad_share[LeakyReLU(0.01)]"] == 0


def test_activation_saturation_and_vanishing_gradient(activations_result):
    s = activations_result.summary
    assert s["mlp_zero_grad_share[0.05|Tanh]"] > 0.15  # large weights saturate tanh
    assert s["mlp_zero_grad_share[kaiming|Tanh]"] < 0.01
    # sigmoid: f' <= 1/4, so the gradient reaching layer 1 is tiny; ReLU with Kaiming keeps it
    assert s["mlp_grad_norm_layer1_over_layer6[kaiming|Sigmoid]"] < 0.1
    assert 0.5 < s["mlp_grad_norm_layer1_over_layer6[kaiming|ReLU]"] < 2


def test_activation_dead_relus_are_provoked(activations_result):
    s = activations_result.summary
    healthy, large, negative = (s[f"dead_channel_share[ReLU|{c}]"] for c in
                                ("lr 0.05, bias 0 (healthy)", "lr 0.3 (large)", "lr 0.05, bias -0.5 at init"))
    assert large > healthy and large > 0.02  # a large learning rate kills channels
    assert negative >= 0  # some revive as the layers below learn: only "at init" is claimed
    dead = activations_result.tables["dead_relu"]
    relu = dead[dead.activation == "ReLU"].set_index("case")
    assert relu.dead_channel_share_init["lr 0.05, bias -0.5 at init"] > 0.05  # a negative bias: dead from the start
    assert relu.dead_channel_share_init["lr 0.3 (large)"] == 0  # the large-lr ones died while training
    assert (dead[dead.activation == "LeakyReLU(0.01)"].dead_channel_share == 0).all()  # never zero gradient
    layers = activations_result.tables["dead_relu_layers"]
    assert len(layers) == len(dead) * 4 and layers.dead_channel_share.max() > 0.1


def test_activation_training_table(activations_result):
    s = activations_result.summary
    assert s["model"] == "resnet18"
    assert s["test_accuracy[ReLU]"] > 0.5 and s["test_accuracy[LeakyReLU(0.01)]"] > 0.5
    assert s["test_accuracy[Sigmoid]"] < s["test_accuracy[ReLU]"]  # the lecture: do not use sigmoid


# ---------------------------------------------------------------- CLI and files

def _parser() -> argparse.ArgumentParser:
    from archstat.commands import experiment

    parser = argparse.ArgumentParser()
    experiment.register(parser.add_subparsers(dest="command"))
    return parser


def test_cli_names_match_registry():
    from archstat.commands.experiment import NAMES

    assert set(NAMES) == set(EXPERIMENTS)


def test_cli_writes_reproducible_figures_and_numbers(tmp_path, capsys, dropout_quick_files):
    a = tmp_path / "a"
    args = _parser().parse_args(["experiment", "dropout", "--out", str(a), "--quick"])
    assert args.func(args) == 0
    assert "torch_kept_value" in capsys.readouterr().out
    payload = json.loads((a / "dropout.json").read_text())
    assert payload["summary"]["pytorch_dropout_p"] == 0.5
    assert (a / "dropout_convergence.csv").read_text().startswith("case,masks,rel_error")
    assert (a / "dropout_convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second run, through the API (the module's quick run), gives byte-identical files
    # (seeded; PNG without Software tag)
    rb = dropout_quick_files
    b = rb.files[0].parent
    names = sorted(p.name for p in rb.files)
    assert sorted(p.name for p in a.iterdir()) == names
    assert any(n.endswith(".png") for n in names) and any(n.endswith(".csv") for n in names)
    for name in names:
        assert hashlib.sha256((a / name).read_bytes()).digest() == hashlib.sha256((b / name).read_bytes()).digest()


def test_experiment_progress_bar_on_stderr(capsys, monkeypatch):
    from archstat import progress as P
    from archstat.experiments._common import progress_steps

    monkeypatch.setattr(P, "enabled", lambda disable=False: not disable)  # as on a terminal
    with progress_steps("demo", 3) as step:
        for what in ("first", "second", "third"):
            step(what)
    captured = capsys.readouterr()
    assert "experiment demo" in captured.err and "third" in captured.err  # the current step is shown
    assert captured.out == ""  # progress never mixes with the numbers on stdout


def test_an_experiment_steps_its_bar(monkeypatch):
    """augment (the cheap one) opens its bar and steps it; the bar itself is tested above."""
    from contextlib import contextmanager

    import archstat.experiments.augment_gallery as module

    steps: list[str] = []

    @contextmanager
    def record(name, total):
        yield steps.append
        assert name == "augment" and 1 <= len(steps) <= total

    monkeypatch.setattr(module, "progress_steps", record)
    run_experiment("augment", None, quick=True)
    assert steps


def test_cli_rejects_unknown_name(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["experiment", "nope"])


# ---------------------------------------------------------------- full size (reports/experiments)

@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_committed_reports_are_fresh(name, tmp_path_factory):
    """Rerunning an experiment at full size rewrites reports/experiments byte for byte (CSV/JSON)."""
    result = _result(name, "full", tmp_path_factory)
    assert any(p.suffix == ".png" for p in result.files)
    for path in result.files:
        committed = REPORTS / path.name
        assert committed.exists(), f"{committed} missing: run `archstat experiment {name}`"
        if path.suffix in (".csv", ".json"):
            assert path.read_bytes() == committed.read_bytes(), f"{committed} is stale"
