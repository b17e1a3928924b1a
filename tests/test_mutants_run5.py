"""Run 5's surviving mutants (``reports/mutation/SURVIVORS.md``, section "Run 5"), each killed against an
oracle that shares no code with archstat: PyTorch's own adaptive-pool bins (the indices of
``adaptive_max_pool1d``), fvcore's ``FlopCountAnalysis``, ``FlopCounterMode`` and the input gradient.
Line numbers are those of run 5 (``mutants.csv``)."""
from __future__ import annotations

import logging

import pytest
import sympy
import torch
import torch.nn.functional as F
from fvcore.nn import FlopCountAnalysis
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from archstat import analyze
from archstat.analyses.receptive_field import receptive_field
from archstat.engine.analyze import analyze_rows
from archstat.formulas.pool import adaptive_window
from oracles.gradient_rf import positive_copy

logging.getLogger("fvcore").setLevel(logging.ERROR)


def _torch_largest_bin(size: int, bins: int) -> int:
    """Length of PyTorch's largest adaptive-pool bin: on ``arange`` each bin's max sits at its last
    element, on ``-arange`` at its first; the length is ``last - first + 1``."""
    x = torch.arange(size, dtype=torch.float64).view(1, 1, size)
    _, last = F.adaptive_max_pool1d(x, bins, return_indices=True)
    _, first = F.adaptive_max_pool1d(-x, bins, return_indices=True)
    return int((last - first).max()) + 1


@pytest.mark.parametrize("bins", [1, 2, 3, 5])
def test_a_symbolic_adaptive_window_is_pytorchs_largest_bin_at_every_size(bins: int):
    """The symbolic window (``Max`` of the bin lengths of a size ``H``), evaluated at ``H = L``, is the
    largest bin PyTorch cuts ``L`` into, for ``L`` below, at and above the number of bins
    (pool.py:55, every mutant of the bin-length expression; pool.py:56 ``lengths[0]`` -> ``lengths[1]``,
    which has no second bin when there is one)."""
    size = sympy.Symbol("H", positive=True, integer=True)
    window = adaptive_window(size, bins)
    for n in range(1, 3 * bins + 3):
        assert int(window.subs(size, n)) == _torch_largest_bin(n, bins), (n, bins)


class Einsum(nn.Module):
    """``torch.einsum(equation, x, w)`` with a parameter ``w``."""

    def __init__(self, equation: str, shape: tuple) -> None:
        super().__init__()
        self.equation = equation
        self.w = nn.Parameter(torch.randn(*shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum(self.equation, x, self.w)


@pytest.mark.parametrize("equation,shape", [("bij,bik->bjk", (1, 37, 83)), ("bij,bkj->bki", (1, 83, 41)),
                                            ("...ij,...ik->...jk", (1, 37, 83))])
def test_fvcore_count_of_an_einsum_with_more_than_four_significant_digits(equation: str, shape: tuple):
    """37 x 41 x 83 = 125,911 MACs, which fvcore's ``%.3e`` reading of numpy's report would print as
    125,900: fvcore's own handle of the two bmm equations counts them exactly, any other spelling
    (``...``, as written) goes through numpy.  The convention must give fvcore's number either way
    (conventions.py:124 the renamed letters ``chr(97 + i)`` -> ``97 - i`` / ``98 + i``, :126 ``or`` ->
    ``and``, :76 the equation as written ``or`` -> ``and``)."""
    model = Einsum(equation, shape)
    expected = FlopCountAnalysis(model, torch.randn(1, 37, 41)).total()
    assert int(analyze(model, (37, 41), convention="fvcore")["flops"].sum()) == expected


class Mean(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(-1)


def _small_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.LocalResponseNorm(2),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 6), Mean())


def test_the_hardware_convention_counts_every_op_it_has_a_formula_for():
    """``hardware`` is the work a device does, not a tool's reading: every op with a formula is
    counted (its flag ``oracle_supported`` is what ``analyze`` reports as ``oracle_unsupported``), and
    its products are FlopCounterMode's 2 per MAC (conventions.py:165 and 169-177, each ``True`` ->
    ``False``; :178 ``!=`` -> ``==`` for the flatten); the LSTM's line 167 has its own test."""
    model, x = _small_net().eval(), torch.randn(1, 3, 10, 10)
    df = analyze(model, (3, 10, 10), convention="hardware")
    assert df.attrs["oracle_unsupported"] == [] and bool(df["oracle_supported"].all())
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    products = df[df["kind"].isin(["conv", "linear"])]["flops"].sum()
    assert int(products) == counter.get_total_flops()


class Lstm(nn.Module):
    """An LSTM over ``(batch, steps, 4)``, its output sequence only."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(4, 8, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


def test_the_hardware_convention_counts_an_lstm():
    """An LSTM's gate products and cell arithmetic are device work: counted, not flagged, its products
    the hand count ``4H(I + H)`` per step and row (conventions.py:167 ``True`` -> ``False``)."""
    df = analyze(Lstm(), (5, 4), batch=2, convention="hardware")
    assert df.attrs["oracle_unsupported"] == [] and bool(df["oracle_supported"].all())
    assert int(df["macs"].sum()) == 4 * 8 * (4 + 8) * 5 * 2


def test_flopcounter_counts_a_conv_and_leaves_the_rest_at_a_counted_zero():
    """FlopCounterMode counts the conv and linear (2 per MAC) and nothing else; a ReLU's or a pool's 0
    is its answer, not an op it cannot count: no op is flagged, and the totals agree
    (conventions.py:157 ``True`` -> ``False``, :158 ``!=`` -> ``==``)."""
    model, x = _small_net().eval(), torch.randn(1, 3, 10, 10)
    df = analyze(model, (3, 10, 10), convention="flopcounter")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    assert df.attrs["oracle_unsupported"] == [] and int(df["flops"].sum()) == counter.get_total_flops()


def _support(model: nn.Module, shape: tuple, unit: tuple) -> list[tuple[int, int]]:
    """First and last input index with a non-zero gradient of output ``unit`` (channel 0), per spatial dim."""
    x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    positive_copy(model)[0](x)[(0, 0, *unit)].backward()
    nz = x.grad[0].abs().sum(0) > 0
    out = []
    for d in range(nz.dim()):
        hit = nz.any(dim=tuple(e for e in range(nz.dim()) if e != d)).nonzero().flatten()
        out.append((int(hit[0]), int(hit[-1])))
    return out


def test_two_uneven_adaptive_bins_are_the_larger_one():
    """5 columns pooled to 2: PyTorch's bins are ``[0, 2]`` and ``[2, 4]`` (the gradient), 3 wide, not
    ``5 // 2 = 2`` (receptive_field.py:95, ``o == 1`` -> ``o == 2``, which takes two bins for even)."""
    model, shape = nn.Sequential(nn.AdaptiveAvgPool2d(2)), (1, 5, 5)
    row = receptive_field(analyze_rows(model, shape)).iloc[0]
    assert _support(model, shape, (0, 0)) == [(0, 2), (0, 2)] and _support(model, shape, (1, 1)) == [(2, 4), (2, 4)]
    assert [row.rf_h, row.rf_w] == [3, 3]


class PadDepth(nn.Module):
    """``F.pad`` of 2 in front of the depth (all six values given), then a 3x3x3 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 0, 0, 0, 2, 0)))


def test_a_pad_of_the_depth_shifts_a_volumes_field():
    """``F.pad`` of a 3-d volume by 2 in front of the depth, then a 3x3x3 conv: output unit 0 reads
    input depth 0 only (the gradient), so the field's depth pad is 2 (receptive_field.py:180, the
    pad list's index ``2 * (k - 1 - d)`` -> ``3 * ...`` drops the depth's pair of a 6-value pad)."""
    model, shape = PadDepth(), (1, 6, 6, 6)
    measured = _support(model, shape, (0, 0, 0))
    assert measured == [(0, 0), (0, 2), (0, 2)]
    row = receptive_field(analyze_rows(model, shape)).iloc[-1]
    claimed = [(max(-p, 0), min(r - 1 - p, n - 1)) for r, p, n in zip(row["rf"], row["pad"], shape[1:])]
    assert claimed == measured
