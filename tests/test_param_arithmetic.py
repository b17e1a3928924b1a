"""Parameter arithmetic: forwards that compute with parameters before using them (issue 14).

Weight standardisation, scales, a low-rank ``A @ B`` weight and tied weights make subgraphs of
parameters alone.  Each once crashed the training analyses (IndexError in the gradient flow) or
showed its values as if their first dimension were the batch.  Every model here goes through
``table`` (analyze), ``table --training`` (training_memory, backward_flops) and ``validate`` in
eval and train, agreeing with the real run, autograd and both oracles, fully costed.
"""
import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archstat import analyze
from archstat.analyses.backward import backward_flops
from archstat.analyses.memory import training_memory
from archstat.engine.analyze import analyze_rows
from _validated import validated

logging.getLogger("fvcore").setLevel(logging.ERROR)


class ConvTimesProduct(nn.Module):
    """``conv(x) * (a * b)``: an 8x1x1 product of two parameters scales the channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.a, self.b = nn.Parameter(torch.randn(8, 1, 1)), nn.Parameter(torch.randn(8, 1, 1))

    def forward(self, x):
        return self.conv(x) * (self.a * self.b)


class ScaledLinear(nn.Module):
    """``F.linear(x, weight * scale)``: the weight-scaling pattern (a 10x32 computed weight)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight, self.scale = nn.Parameter(torch.randn(10, 32)), nn.Parameter(torch.randn(10, 1))

    def forward(self, x):
        return F.linear(torch.relu(x), self.weight * self.scale)


class WSConv2d(nn.Conv2d):
    """Weight standardisation (Qiao et al. 2019): ``w' = (w - mean(w)) / sqrt(var(w) + eps)`` per
    output channel, then a functional convolution with the computed weight."""

    def forward(self, x):
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        w = (w - mean) / torch.sqrt(((w - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class WSBlock(nn.Module):
    """A weight-standardised residual block (BiT's pattern): WS conv, GroupNorm, ReLU, + shortcut."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = WSConv2d(3, 8, 3, padding=1)
        self.conv = WSConv2d(8, 8, 3, padding=1, bias=False)
        self.norm = nn.GroupNorm(2, 8)

    def forward(self, x):
        x = self.stem(x)
        return x + torch.relu(self.norm(self.conv(x)))


class LowRankLinear(nn.Module):
    """A low-rank weight ``A @ B`` (rank 4) used by a functional linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.A, self.B = nn.Parameter(torch.randn(12, 4)), nn.Parameter(torch.randn(4, 32))
        self.bias = nn.Parameter(torch.zeros(12))

    def forward(self, x):
        return F.linear(x, self.A @ self.B, self.bias)


class TiedAutoencoder(nn.Module):
    """Tied weights: the decoder is the encoder's weight transposed."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(32, 8)

    def forward(self, x):
        return F.linear(torch.relu(self.enc(x)), self.enc.weight.t())


class ComputedBias(nn.Module):
    """A bias the forward computes (Swin V2 zeroes the key part of a cloned qkv bias): backward
    keeps the input, not the bias."""

    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Linear(32, 32)  # so that the input needs a gradient
        self.weight, self.bias = nn.Parameter(torch.randn(12, 32)), nn.Parameter(torch.randn(12))

    def forward(self, x):
        bias = self.bias.clone()
        bias[4:8].zero_()
        return F.linear(torch.relu(self.pre(x)), self.weight, bias)


MODELS = {  # name -> (builder, input per sample)
    "computed_bias": (ComputedBias, (32,)),
    "conv_times_product": (ConvTimesProduct, (3, 8, 8)),
    "scaled_linear": (ScaledLinear, (32,)),
    "weight_standardised_block": (WSBlock, (3, 8, 8)),
    "low_rank": (LowRankLinear, (32,)),
    "tied": (TiedAutoencoder, (32,)),
}


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_parameter_arithmetic_validates(name, mode):
    build, shape = MODELS[name]
    torch.manual_seed(0)
    df = validated(build(), shape, mode)
    if mode == "train":  # the saved-bytes and backward checks ran
        assert "saved_ok" in df and df["saved_ok"].all()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_training_tables_cost_parameter_arithmetic(name):
    build, shape = MODELS[name]
    rows = analyze_rows(build(), shape, batch=2, mode="train")
    mem, bwd = training_memory(rows), backward_flops(rows)
    assert not mem.attrs["memory_partial"] and mem.attrs["total"]["saved"] > 0
    assert bwd.attrs["bwd_total"] > 0


def test_values_of_parameters_alone_are_shown_whole():
    df = analyze(ConvTimesProduct(), (3, 8, 8), batch=2)
    product = df[(df.op == "mul") & (df.call == 0)].iloc[0]
    assert not product.batched and product.out_shape == [8, 1, 1] and product.in_shapes == [[8, 1, 1]] * 2
    scaled = df[(df.op == "mul") & (df.call == 1)].iloc[0]
    assert scaled.batched and scaled.out_shape == [8, 8, 8] and scaled.in_shapes == [[8, 8, 8], [8, 1, 1]]
    weight = analyze(ScaledLinear(), (32,), batch=2).set_index("op").loc["mul"]
    assert not weight.batched and weight.out_shape == [10, 32] and weight.act_bytes == 10 * 32 * 4


def test_a_computed_weight_is_saved_and_differentiated():
    rows = analyze_rows(ScaledLinear(), (32,), batch=2, mode="train")
    linear = training_memory(rows).set_index("op").loc["linear"]
    assert linear.saved == ["input0"] and linear.saved_bytes == 2 * 32 * 4  # relu's output, for d/dW
    assert backward_flops(rows).set_index("op").loc["linear"].grad_weight_macs == 2 * 32 * 10


def test_validate_catches_a_value_shown_as_if_it_carried_the_batch():
    """The old display (8x1x1 shown as 1x1, batched) must fail validate's shape check."""
    from archstat.validation.validate import validate_rows

    rows = analyze_rows(ConvTimesProduct(), (3, 8, 8), batch=2, convention="fvcore")
    assert validate_rows(rows).attrs["agree"]
    product = rows.df.index[(rows.df.op == "mul") & (rows.df.call == 0)][0]
    rows.df.at[product, "batched"] = True
    rows.df.at[product, "out_shape"] = [1, 1]
    df = validate_rows(rows)
    assert not df.loc[product, "shape_ok"] and not df.attrs["agree"]


@pytest.mark.parametrize("argv", [
    ["table", "test_param_arithmetic:ConvTimesProduct", "--input", "3x8x8", "--training"],
    ["table", "test_param_arithmetic:ScaledLinear", "--input", "32", "--training", "--format", "json"],
    ["validate", "test_param_arithmetic:ConvTimesProduct", "--input", "3x8x8", "--mode", "train", "--batch", "2"],
    ["validate", "test_param_arithmetic:WSBlock", "--input", "3x8x8", "--mode", "train", "--batch", "2"],
])
def test_the_commands_of_the_issue_run_and_agree(capsys, argv):
    from archstat.cli import main

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "error" not in out.lower() and ("AGREE" in out if argv[0] == "validate" else out)
