"""Backward FLOPs without autograd equal FlopCounterMode over a real backward pass, per row."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from _random_nets import random_cnn
from archstat.engine.analyze import analyze_rows
from archstat.analyses.backward import backward_flops
from archstat.validation.backward_check import measured_backward
from archstat.models import get_model


def assert_exact(model, shape, batch=2, mode="train"):
    rows = analyze_rows(model, shape, batch=batch, mode=mode)
    df = backward_flops(rows)
    real = measured_backward(rows)
    bad = [(r["name"], r["op"], r["call"], r["bwd_flops_flopcounter"], m)
           for r, m in zip(df.to_dict("records"), real["per_row"]) if r["bwd_flops_flopcounter"] != m]
    assert not bad, bad[:5]
    assert real["total"] == sum(real["per_row"]) == df["bwd_flops_flopcounter"].sum()
    return df


@given(random_cnn(), st.sampled_from(["eval", "train"]))
def test_random_cnn_backward_per_row(case, mode):
    net, shape = case
    assert_exact(net, shape, mode=mode)


def test_first_layer_has_no_grad_input_and_grouped_weight_grads():
    net = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=4), nn.Flatten(),
                        nn.Linear(8 * 4 * 4, 3))
    df = assert_exact(net, (4, 8, 8), batch=1)
    first, second, fc = df[df.op == "Conv2d"].iloc[0], df[df.op == "Conv2d"].iloc[1], df[df.op == "Linear"].iloc[0]
    assert first.grad_input_macs == 0 and first.grad_weight_macs == first.macs
    assert second.grad_input_macs == second.macs == second.grad_weight_macs
    # FlopCounterMode's grad-weight formula uses all input channels: groups x the true work
    assert first.bwd_flops_flopcounter == 2 * first.macs * 2
    assert second.bwd_flops_flopcounter == 2 * second.macs + 2 * second.macs * 4
    assert fc.bwd_macs == 2 * fc.macs and fc.bwd_flops_flopcounter == 4 * fc.macs


def test_frozen_layer_has_no_grad_weight():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
    net[1].weight.requires_grad_(False)
    df = assert_exact(net, (3, 8, 8), batch=1)
    assert list(df.grad_weight_macs) == [df.macs[0], 0] and list(df.grad_input_macs) == [0, df.macs[1]]


@pytest.mark.parametrize("name,shape", [("resnet18", (3, 64, 64)), ("alexnet_2012", (3, 227, 227)),
                                        ("googlenet", (3, 96, 96))])
def test_zoo_backward_exact(name, shape):
    torch.manual_seed(0)
    df = assert_exact(get_model(name, device=None), shape)
    convs = df[df.kind == "conv"]
    assert convs.iloc[0].grad_input_macs == 0 and (convs.iloc[1:].grad_input_macs == convs.iloc[1:].macs).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["inception_v3", "resnet50", "vgg16_bn", "preact_resnet101"])
def test_zoo_backward_exact_slow(name):
    from archstat.models import model_info

    torch.manual_seed(0)
    assert_exact(get_model(name, device=None), model_info(name).default_input, batch=2)  # BN in training needs 2 samples at 1x1


class DetachedConv(nn.Module):
    """A conv whose output reaches the loss only through ``detach`` (or ``detach_``): autograd records
    it (its input is saved) but no gradient ever reaches it, so its backward does no work."""

    def __init__(self, how: str = "detach") -> None:
        super().__init__()
        self.how = how
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.lin = nn.Linear(4 * 5 * 5, 2)

    def forward(self, x):
        y = self.conv(torch.relu(self.stem(x)))
        if self.how == "detach_":  # in place: the name ``y`` is detached for every later reader
            y.detach_()
            return self.lin(y.flatten(1))
        return self.lin(y.detach().flatten(1))


@pytest.mark.parametrize("how", ["detach", "detach_"])
def test_detached_conv_gets_no_backward(how):
    from archstat.validation.validate import validate
    df = assert_exact(DetachedConv(how), (3, 5, 5))
    assert (df[df.op == "Conv2d"].bwd_macs == 0).all()
    assert df[df.op == "Linear"].iloc[0].bwd_macs > 0
    v = validate(DetachedConv(how), (3, 5, 5), batch=2, mode="train")
    assert v.attrs["agree"], v.attrs["mismatches"]
    assert v.attrs["checks"]["saved_ok"]["failed"] == v.attrs["checks"]["bwd_ok"]["failed"] == 0
