"""Weights-only parameter counts (``reporting.pubcheck.weights_only``: the published tables that leave
biases out) for module and functional convs and linears, with and without a bias.

The oracle is PyTorch's own parameter list: every parameter not named ``bias``.  For a functional
call the count depends on the formula's ``hparams["bias"]`` (whether the call got a bias tensor),
which nothing else reads.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archstat.engine.analyze import analyze
from archstat.reporting.pubcheck import weights_only


class Functional(nn.Module):
    """``F.conv{1,2}d`` / ``F.linear`` with its own ``weight`` and optional ``bias`` parameters."""

    def __init__(self, op: str, bias: bool) -> None:
        super().__init__()
        shape = {"conv1d": (6, 4, 3), "conv2d": (6, 2, 3, 3), "linear": (6, 5)}[op]  # conv2d: groups=2
        self.op = op
        self.weight = nn.Parameter(torch.randn(shape))
        self.bias = nn.Parameter(torch.randn(6)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op == "linear":
            return F.linear(x, self.weight, self.bias)
        if self.op == "conv2d":
            return F.conv2d(x, self.weight, self.bias, 1, 1, 1, 2)
        return F.conv1d(x, self.weight, bias=self.bias, padding=1)


CASES = {"conv1d": (4, 9), "conv2d": (4, 7, 7), "linear": (3, 5)}  # per-sample input shapes


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("op", sorted(CASES))
def test_functional_weights_only_leaves_out_the_bias(op: str, bias: bool):
    model = Functional(op, bias)
    expected = sum(p.numel() for n, p in model.named_parameters() if n.split(".")[-1] != "bias")
    df = analyze(model, CASES[op])
    assert df["params"].sum() == sum(p.numel() for p in model.parameters())
    assert weights_only(df) == expected


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("make,shape", [(lambda b: nn.Conv2d(3, 8, 3, bias=b), (3, 9, 9)),
                                        (lambda b: nn.Linear(7, 5, bias=b), (7,)),
                                        (lambda b: nn.ConvTranspose2d(4, 6, 3, groups=2, bias=b), (4, 5, 5))])
def test_module_weights_only_leaves_out_the_bias(make, shape: tuple, bias: bool):
    model = nn.Sequential(make(bias))  # a bare root module is traced as its functional call
    expected = sum(p.numel() for n, p in model.named_parameters() if n.split(".")[-1] != "bias")
    df = analyze(model, shape)
    assert weights_only(df) == expected
