"""Inception families: GoogLeNet (paper Table 1 and torchvision's BN variant), Inception v3, v4.

Oracles: the GoogLeNet paper's Table 1 (printed cells, in ``_googlenet_table1``, cross-checked
against ../shared/published), torchvision's num_params/_ops, the timm card for Inception-v4, and
torchvision's state_dict layout transcribed from its source (tests/torchvision_layout_inception.py).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.fx
from torch import nn

from _zoo_utils import count_macs, fails_at, layout, n_params
from torchvision_layout import read_layout
from torchvision_layout_inception import googlenet_layout, inception_v3_layout

from archstat.models import get_model, model_info
from archstat.models._googlenet_table1 import (
    INCEPTION_CFGS, RECOMPUTED_OPS_M, RECOMPUTED_PARAMS_K, TABLE1, TABLE1_OPS_SUM_M,
    TABLE1_PARAMS_SUM_K,
)
from archstat.models.googlenet import GoogLeNetOutputs
from archstat.models.inception import InceptionOutputs

NAMES = ["googlenet", "googlenet_bn", "inception_v3", "inception_v4"]


AUX = {"googlenet", "googlenet_bn", "inception_v3"}


def _per_module_counts(model: nn.Module, shape: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    """(weights without bias, MACs) of every conv/linear at ``shape``, keyed by module name."""
    out: dict[str, tuple[int, int]] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            def hook(mod, inp, o, name=name):
                per_out = mod.weight[0].numel()  # (C_in/groups)*kh*kw or in_features
                out[name] = (mod.weight.numel(), o[0].numel() * per_out)
            handles.append(m.register_forward_hook(hook))
    model.eval()
    with torch.no_grad():
        model(torch.empty(1, *shape, device=next(model.parameters()).device))
    for h in handles:
        h.remove()
    return out


def test_googlenet_reproduces_table1_rows() -> None:
    """Every Table 1 row agrees with the model within the table's rounding, except the rows
    the docstring lists, which instead equal the recomputation from the channel counts."""
    counts = _per_module_counts(get_model("googlenet", device="meta"), (3, 224, 224))
    assert sum(r.params_k for r in TABLE1) == pytest.approx(TABLE1_PARAMS_SUM_K)
    assert sum(r.ops_m for r in TABLE1) == TABLE1_OPS_SUM_M
    covered = set()
    for row in TABLE1:
        mods = [k for k in counts if any(k == m or k.startswith(m + ".") for m in row.modules)]
        covered.update(mods)
        params_k = sum(counts[k][0] for k in mods) / 1024
        ops_m = sum(counts[k][1] for k in mods) / 1e6
        if row.row in RECOMPUTED_PARAMS_K:
            assert params_k == pytest.approx(RECOMPUTED_PARAMS_K[row.row], abs=0.01), row.row
            assert abs(params_k - row.params_k) > 1, f"{row.row} is listed as a typo but agrees"
        else:
            assert abs(params_k - row.params_k) <= 1.0, row.row
        if row.row in RECOMPUTED_OPS_M:
            assert ops_m == pytest.approx(RECOMPUTED_OPS_M[row.row], abs=0.05), row.row
            assert abs(ops_m - row.ops_m) > 1, row.row
        else:
            assert abs(ops_m - row.ops_m) < 1.0, row.row
    assert covered == set(counts)  # the table rows cover every weighted layer of the eval graph
    assert sum(w for w, _ in counts.values()) == 6_990_272
    assert sum(m for _, m in counts.values()) == 1_582_671_872


def test_googlenet_paper_layout() -> None:
    m = get_model("googlenet", device="meta")
    # true 5x5 convolutions in branch 3; torchvision's variant has 3x3 there
    assert all(getattr(m, n).branch3[1].conv.kernel_size == (5, 5) for n in INCEPTION_CFGS)
    bn = get_model("googlenet_bn", device="meta")
    assert all(getattr(bn, n).branch3[1].conv.kernel_size == (3, 3) for n in INCEPTION_CFGS)
    assert not any(isinstance(x, nn.BatchNorm2d) for x in m.modules())
    assert isinstance(m.lrn1, nn.LocalResponseNorm) and isinstance(m.lrn2, nn.LocalResponseNorm)
    assert m.dropout.p == 0.4 and bn.dropout.p == 0.2
    aux = m.aux1
    assert (aux.avgpool.kernel_size, aux.avgpool.stride) == (5, 3)
    assert aux.conv.out_channels == 128 and aux.fc1.in_features == 2048
    assert aux.fc1.out_features == 1024 and aux.dropout.p == 0.7
    # Table 1 "output size" column at 224x224
    shapes: dict[str, tuple[int, ...]] = {}
    for name in ["conv1", "maxpool1", "conv3", "maxpool2", *INCEPTION_CFGS, "maxpool3", "maxpool4"]:
        getattr(m, name).register_forward_hook(
            lambda mod, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
    m.eval()(torch.empty(1, 3, 224, 224, device="meta"))
    assert shapes["conv1"] == (64, 112, 112) and shapes["maxpool1"] == (64, 56, 56)
    assert shapes["conv3"] == (192, 56, 56) and shapes["maxpool2"] == (192, 28, 28)
    assert shapes["inception3b"] == (480, 28, 28) and shapes["maxpool3"] == (480, 14, 14)
    assert shapes["inception4e"] == (832, 14, 14) and shapes["maxpool4"] == (832, 7, 7)
    assert shapes["inception5b"] == (1024, 7, 7)
    assert [shapes[n][0] for n in INCEPTION_CFGS] == [256, 480, 512, 512, 512, 528, 832, 832, 1024]


@pytest.mark.parametrize("name, params, params_no_aux", [
    ("googlenet", 13_378_280, 6_998_552),
    ("googlenet_bn", 13_004_888, 6_624_904),
    ("inception_v3", 27_161_264, 23_834_568),
])
def test_params_with_and_without_aux(name: str, params: int, params_no_aux: int) -> None:
    assert n_params(get_model(name, device="meta")) == params
    assert n_params(get_model(name, device="meta", aux_logits=False)) == params_no_aux


def test_params_against_published() -> None:
    pub = {n: model_info(n).published["params"].value for n in NAMES}
    assert pub["googlenet_bn"] == n_params(get_model("googlenet_bn", device="meta", aux_logits=False))
    assert pub["inception_v3"] == n_params(get_model("inception_v3", device="meta"))
    v4 = n_params(get_model("inception_v4", device="meta"))
    assert v4 == 42_679_816 and round(v4 / 1e6, 1) == pub["inception_v4"] / 1e6
    # Table 1's column (6,797.7K, "6.8M") undercounts by the documented rows; within 3.5%
    g = n_params(get_model("googlenet", device="meta", aux_logits=False))
    assert 0 < (g - pub["googlenet"]) / pub["googlenet"] < 0.035


@pytest.mark.parametrize("name, digits", [("googlenet_bn", 3), ("inception_v3", 3),
                                           ("inception_v4", 1), ("googlenet", 1)])
def test_macs_against_published(name: str, digits: int) -> None:
    info = model_info(name)
    macs = count_macs(get_model(name, device="meta"), info.default_input)
    if name == "googlenet":  # 1.58 G: Table 1 prints conv1 as 34M instead of 118M
        assert round(macs / 1e9, digits) == 1.6 and info.published["macs"].value == 1.5e9
    else:
        assert round(macs / 1e9, digits) == info.published["macs"].value / 1e9


@pytest.mark.parametrize("name, derive", [("googlenet_bn", googlenet_layout),
                                          ("inception_v3", inception_v3_layout)])
def test_torchvision_state_dict_layout(name: str, derive) -> None:
    """Keys and shapes, in order, equal torchvision's (from its source), with and without aux."""
    assert read_layout(name) == derive()
    assert layout(get_model(name, device="meta")) == derive()
    assert layout(get_model(name, device="meta", aux_logits=False)) == derive(aux_logits=False)
    assert layout(get_model(name, device="meta", num_classes=10)) == derive(num_classes=10)
    assert model_info(name).torchvision_name == {"googlenet_bn": "googlenet"}.get(name, name)


def _loss(out) -> torch.Tensor:
    target = torch.zeros(2, dtype=torch.long)
    if isinstance(out, tuple):  # logits + aux logits, the paper's 0.3 weight on the aux losses
        main, *aux = out
        return nn.functional.cross_entropy(main, target) + 0.3 * sum(
            nn.functional.cross_entropy(a, target) for a in aux)
    return nn.functional.cross_entropy(out, target)


def _train_step(model: nn.Module, hw: int, aux_expected: bool) -> None:
    torch.manual_seed(0)
    model.train()
    out = model(torch.randn(2, 3, hw, hw))
    assert isinstance(out, tuple) == aux_expected
    loss = _loss(out)
    assert math.isfinite(loss.item())
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad.sum()) for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, hw, hw)).shape == (2, 10)


@pytest.mark.parametrize("name", ["googlenet", "googlenet_bn", "inception_v4"])
def test_trains_at_min_input_and_fails_below(name: str) -> None:
    """min_input is the true minimum for eval AND train mode (aux heads active), batch 2."""
    c, h, w = model_info(name).min_input
    _train_step(get_model(name, num_classes=10), h, aux_expected=name in AUX)
    assert fails_at(get_model(name, device="meta"), (c, h - 1, w - 1))


def test_inception_v3_min_inputs() -> None:
    """299 with the aux head in training mode (the head's 5x5 conv needs a 17x17 Mixed_6e map);
    75 in eval mode or without the head.  Checked on the meta device (shapes only)."""
    assert model_info("inception_v3").min_input == (3, 299, 299)
    m = get_model("inception_v3", device="meta")
    assert fails_at(m, (3, 298, 298)) and not fails_at(m, (3, 299, 299))
    m.eval()
    m(torch.empty(2, 3, 75, 75, device="meta"))
    with pytest.raises(RuntimeError):
        m(torch.empty(2, 3, 74, 74, device="meta"))
    no_aux = get_model("inception_v3", device="meta", aux_logits=False)
    assert not fails_at(no_aux, (3, 75, 75)) and fails_at(no_aux, (3, 74, 74))


def test_small_inputs_without_aux_heads() -> None:
    _train_step(get_model("googlenet", num_classes=10, aux_logits=False), 32, aux_expected=False)
    _train_step(get_model("inception_v3", num_classes=10, aux_logits=False), 75, aux_expected=False)
    m = get_model("googlenet", num_classes=10).eval()  # eval never runs the aux heads
    assert m(torch.randn(2, 3, 8, 8)).shape == (2, 10)


@pytest.mark.slow
def test_inception_v3_trains_at_299_with_aux() -> None:
    _train_step(get_model("inception_v3", num_classes=10), 299, aux_expected=True)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("training", [False, True])
def test_fx_traceable_both_modes(name: str, training: bool) -> None:
    """symbolic_trace works in both modes and the traced graph returns the same structure; the
    two GoogLeNets also give the same numbers (same dropout seed), at small inputs."""
    real = name in ("googlenet", "googlenet_bn")
    kw = {} if real else {"device": "meta"}
    m = get_model(name, num_classes=10, **kw).train(training)
    gm = torch.fx.symbolic_trace(m)
    assert not any("jit" in str(n.target) for n in gm.graph.nodes)
    hw = model_info(name).min_input[1] if training else 32 if real else 75
    x = torch.randn(2, 3, hw, hw, device="cpu" if real else "meta")
    torch.manual_seed(1)
    ref = m(x)
    torch.manual_seed(1)
    got = gm(x)
    assert type(got) is type(ref)
    assert isinstance(got, tuple) == (training and name in AUX)
    for a, b in zip(ref if isinstance(ref, tuple) else [ref], got if isinstance(got, tuple) else [got]):
        assert a.shape == b.shape == (2, 10)
        if real:
            torch.testing.assert_close(a, b)


def test_output_types_and_aux_order() -> None:
    m = get_model("googlenet_bn", num_classes=5, dropout_aux=0.0).train()
    seen = {}
    m.aux1.register_forward_hook(lambda mod, i, o: seen.__setitem__("aux1", o))
    m.aux2.register_forward_hook(lambda mod, i, o: seen.__setitem__("aux2", o))
    out = m(torch.randn(2, 3, 32, 32))
    assert isinstance(out, GoogLeNetOutputs)
    assert out.aux_logits1 is seen["aux1"] and out.aux_logits2 is seen["aux2"]
    m.eval()
    assert isinstance(m(torch.randn(2, 3, 32, 32)), torch.Tensor)
    v3 = get_model("inception_v3", device="meta").train()
    assert isinstance(v3(torch.empty(2, 3, 299, 299, device="meta")), InceptionOutputs)


@pytest.mark.parametrize("name", NAMES)
def test_common_options(name: str) -> None:
    m = get_model(name, device="meta", num_classes=7, in_channels=1, dropout=0.3, act_layer=nn.SiLU)
    first = next(x for x in m.modules() if isinstance(x, nn.Conv2d))
    assert first.in_channels == 1 and m.fc.out_features == 7 and m.dropout.p == 0.3
    assert not any(isinstance(x, nn.ReLU) for x in m.modules())
    assert any(isinstance(x, nn.SiLU) for x in m.modules())
    if name in AUX:
        assert n_params(get_model(name, device="meta", aux_logits=False)) < n_params(m)


@pytest.mark.parametrize("name", ["googlenet", "googlenet_bn", "inception_v3"])
@pytest.mark.parametrize("scheme", ["kaiming", "xavier"])
def test_main_classifier_gets_small_init(name: str, scheme: str) -> None:
    """Every classifier (main fc first) gets N(0, 0.01), whatever Linear comes last in
    ``modules()``; convs get Kaiming: fan_in for the BN-free paper GoogLeNet, fan_out otherwise."""
    torch.manual_seed(0)
    m = get_model(name, init=scheme)
    heads = [m.fc] + ([m.AuxLogits.fc] if name == "inception_v3" else [m.aux1.fc2, m.aux2.fc2])
    for fc in heads:
        assert fc.weight.std().item() == pytest.approx(0.01, rel=0.1) and not fc.bias.any()
    if scheme == "xavier":  # the aux hidden fc1 is not a classifier: Glorot, not 0.01
        if name != "inception_v3":
            assert m.aux1.fc1.weight.std().item() > 0.02
        return
    conv = [x for x in m.modules() if isinstance(x, nn.Conv2d)][5]
    k = conv.kernel_size[0] * conv.kernel_size[1]
    fan = conv.in_channels * k if name == "googlenet" else conv.out_channels * k
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan), rel=0.15)


@pytest.mark.parametrize("name", NAMES)
def test_initial_loss_near_log_classes(name: str) -> None:
    """The lecture's sanity check, on a training-mode batch (BN uses batch statistics): the
    untrained loss is ~ln(10) for 10 classes."""
    torch.manual_seed(0)
    kw = {} if name == "inception_v4" else {"aux_logits": False}
    m = get_model(name, num_classes=10, dropout=0.0, **kw).train()
    hw = 32 if name.startswith("googlenet") else 75
    with torch.no_grad():
        loss = nn.functional.cross_entropy(m(torch.randn(8, 3, hw, hw)), torch.arange(8))
    assert abs(loss.item() - math.log(10)) < 0.25


def test_transform_input_matches_torchvision_formula() -> None:
    torch.manual_seed(0)
    a = get_model("googlenet_bn", num_classes=3, aux_logits=False, transform_input=True).eval()
    b = get_model("googlenet_bn", num_classes=3, aux_logits=False).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x_tf = x * (std / 0.5).view(1, 3, 1, 1) + ((mean - 0.5) / 0.5).view(1, 3, 1, 1)
    torch.testing.assert_close(a(x), b(x_tf))
    with pytest.raises(ValueError):
        get_model("inception_v3", device="meta", transform_input=True, in_channels=1)


def test_inception_v4_stages() -> None:
    m = get_model("inception_v4", device="meta")
    assert (len(m.inception_a), len(m.inception_b), len(m.inception_c)) == (4, 7, 3)
    ra = m.reduction_a  # k, l, m, n = 192, 224, 256, 384
    assert [c.conv.out_channels for c in ra.branch3x3dbl] == [192, 224, 256]
    assert ra.branch3x3[0].conv.out_channels == 384
    assert m.dropout.p == 0.2  # keep probability 0.8
    shapes = {}
    for name in ("stem", "inception_a", "reduction_a", "inception_b", "reduction_b", "inception_c"):
        getattr(m, name).register_forward_hook(
            lambda mod, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
    m.eval()(torch.empty(1, 3, 299, 299, device="meta"))
    assert shapes == {"stem": (384, 35, 35), "inception_a": (384, 35, 35),
                      "reduction_a": (1024, 17, 17), "inception_b": (1024, 17, 17),
                      "reduction_b": (1536, 8, 8), "inception_c": (1536, 8, 8)}
