"""Receptive-field columns (size, jump, padding; height and width) against the input gradient.

The formula's field of output unit ``i`` is ``[i*J - P, i*J - P + R - 1]``.  The oracle
(``tests/oracles/gradient_rf.py``) measures, per conv / pool call, the input extent of the centre
unit and of its diagonal neighbour on a positive linear copy of the model.  Where both intervals
lie inside the input (away from the far edge, where floor-rounded layers drop units), the first
index checks ``P``, the extent checks ``R`` and the neighbour's shift checks ``J``, in H and W.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from archstat.analyses.receptive_field import receptive_field
from archstat.engine.analyze import analyze_rows
from archstat.models import get_model, list_models, model_info
from oracles.gradient_rf import positive_copy, probe_fields


class Branches(nn.Module):
    """``sum`` or ``cat`` of branches that see different fields (the union is the largest path)."""

    def __init__(self, branches: list[nn.Module], how: str) -> None:
        super().__init__()
        self.branches, self.how = nn.ModuleList(branches), how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        return torch.cat(outs, 1) if self.how == "cat" else sum(outs[1:], outs[0])


def check_fields(model: nn.Module, shape: tuple) -> int:
    """Assert every probed row's R, J, P (H and W) against the gradient; return how many were checked."""
    rf = receptive_field(analyze_rows(model, shape)).set_index(["name", "op", "call"])
    checked = 0
    for probe in probe_fields(model, shape):
        row = rf.loc[(probe.name, probe.op, probe.call)]
        if not row["regular"] or row["global"]:
            continue
        for dim, (n, r, j, p) in enumerate(((shape[-2], row.rf_h, row.jump_h, row.pad_h),
                                            (shape[-1], row.rf_w, row.jump_w, row.pad_w))):
            spans = [(unit[dim] * j - p, unit[dim] * j - p + r - 1) for unit in probe.units]
            if spans[0][0] < 0 or spans[1][1] > n - 1 - j:  # clipped by the input, or near the far edge
                continue
            measured = [ext[2 * dim: 2 * dim + 2] for ext in probe.extents]
            assert [tuple(m) for m in measured] == spans, (probe, "HW"[dim], dict(R=r, J=j, P=p))
            checked += 1
    return checked


@st.composite
def rf_layer(draw, c: int) -> nn.Module:
    kind = draw(st.sampled_from(["conv", "conv", "pool", "pad", "bn_relu", "sum", "cat"]))
    if kind == "conv":
        k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
        return nn.Conv2d(c, c, k, (draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                         (draw(st.integers(0, 2)), draw(st.integers(0, 2))),
                         (draw(st.integers(1, 2)), draw(st.integers(1, 2))), groups=draw(st.sampled_from([1, c])))
    if kind == "pool":
        k = draw(st.integers(2, 3))
        pool = draw(st.sampled_from([nn.MaxPool2d, nn.AvgPool2d]))
        return pool(k, draw(st.integers(1, 2)), draw(st.integers(0, k // 2)), ceil_mode=draw(st.booleans()))
    if kind == "pad":
        return nn.ZeroPad2d(tuple(draw(st.integers(0, 2)) for _ in range(4)))
    if kind == "bn_relu":
        return nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
    # branches keep H x W (odd kernels, "same" padding with dilation); one may be the identity
    def branch() -> nn.Module:
        k, d = draw(st.sampled_from([1, 3, 5])), draw(st.integers(1, 2))
        if draw(st.integers(0, 3)) == 0:
            return nn.MaxPool2d(3, 1, 1) if kind == "cat" else nn.Identity()
        return nn.Conv2d(c, c, k, 1, d * (k // 2), d)
    branches = [branch() for _ in range(draw(st.integers(2, 3)))]
    return Branches(branches, kind) if kind == "cat" else Branches(branches, "sum")


@st.composite
def rf_net(draw) -> tuple[nn.Module, tuple]:
    """A random stack (branches, dilation, pads, strides, ceil-mode pools) and a large enough input."""
    shape = (2, draw(st.integers(40, 64)), draw(st.integers(40, 64)))
    layers: list[nn.Module] = []
    c = shape[0]
    for _ in range(draw(st.integers(2, 6))):
        cand = draw(rf_layer(c))
        try:
            with torch.no_grad():
                out = nn.Sequential(*layers, cand).eval()(torch.zeros(1, *shape))
        except RuntimeError:
            continue
        if min(out.shape[-2:]) >= 4:
            layers.append(cand)
            c = out.shape[1]
    return nn.Sequential(*layers), shape


@given(rf_net())
@settings(max_examples=max(1, settings.default.max_examples // 2))
def test_random_net_fields_match_the_gradient(case):
    net, shape = case
    check_fields(net, shape)


def test_strided_dilated_branches_are_checked():
    """A fixed net where every column matters: jumps of 2 and 4, a dilated branch, a left pad."""
    net = nn.Sequential(nn.Conv2d(1, 2, (3, 5), 2, (1, 0)), nn.ZeroPad2d((2, 0, 1, 0)),
                        nn.MaxPool2d(3, 2, 1, ceil_mode=True),
                        Branches([nn.Conv2d(2, 2, 3, 1, 2, 2), nn.Conv2d(2, 2, 1), nn.Identity()], "sum"),
                        Branches([nn.Conv2d(2, 2, 5, 1, 2), nn.MaxPool2d(3, 1, 1)], "cat"),
                        nn.Conv2d(4, 1, 3, 2))
    assert check_fields(net, (1, 61, 57)) >= 2 * 6  # all but the last call (its field reaches the far edge)


FAST_ZOO = {"alexnet": (3, 131, 131), "resnet18": (3, 64, 64)}  # smaller inputs: seconds, not a minute


@pytest.mark.parametrize("name", sorted(FAST_ZOO))
def test_zoo_fields_match_the_gradient(name: str):
    assert check_fields(get_model(name), FAST_ZOO[name]) > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in list_models() if n not in FAST_ZOO])
def test_zoo_fields_match_the_gradient_slow(name: str):
    assert check_fields(get_model(name), model_info(name).default_input) > 0


class SwapHW(nn.Module):
    """``reshape`` to (C, W, H): a view that scrambles positions, so no field passes through it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, c, w, h)


def test_a_view_that_scrambles_positions_stops_the_field():
    net = nn.Sequential(nn.Conv2d(1, 1, 3), SwapHW(), nn.Conv2d(1, 1, 3, 2))
    assert check_fields(net, (1, 40, 28)) >= 2  # the first conv; the second only if its field is regular


def test_adaptive_pool_with_even_bins_is_a_regular_window():
    """Bins of L/O pixels are one window of kernel = stride = L/O: regular, and the gradient agrees."""
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.AdaptiveMaxPool2d((24, 20)), nn.Conv2d(2, 2, 3, padding=1),
                        nn.AdaptiveAvgPool2d((12, 10)), nn.Conv2d(2, 1, 1))
    rf = receptive_field(analyze_rows(net, (1, 48, 40)))
    assert rf.regular.all()
    assert check_fields(net, (1, 48, 40)) >= 2 * 4  # the two pools among them


def test_branches_with_unequal_jumps_are_irregular():
    """Jumps 4 and 3 meet at one size: no single (R, J, P) fits every unit (the gradient shows it), so
    the merged row, and all after it, must be marked irregular rather than print a wrong field."""
    net = Branches([nn.Conv2d(1, 1, (1, 2), (1, 4)), nn.Conv2d(1, 1, (1, 4), (1, 3))], "sum")
    shape = (1, 1, 18)  # widths (18-2)//4 + 1 = (18-4)//3 + 1 = 5
    work, _ = positive_copy(net)
    x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    out = work(x)
    spans = []
    for i in range(out.shape[-1]):
        (g,) = torch.autograd.grad(out[0, :, 0, i].sum(), x, retain_graph=True)
        cols = g[0, :, 0].nonzero().flatten()
        spans.append((int(cols[0]), int(cols[-1])))
    firsts, sizes = [a for a, _ in spans], {b - a + 1 for a, b in spans}
    steps = {b - a for a, b in zip(firsts, firsts[1:])}
    assert len(steps) > 1 or len(sizes) > 1  # the oracle: not one jump and one size
    rf = receptive_field(analyze_rows(net, shape))
    assert not rf[rf.op == "add"].regular.any()


def test_a_linear_on_the_width_mixes_every_column():
    """nn.Linear over the last dim reads every column: the gradient spans the width, so the rows from
    there on cannot claim a regular (R, J, P) field."""
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(18, 18), nn.Conv2d(2, 1, 3))
    shape = (1, 24, 20)
    probes = {p.name: p for p in probe_fields(net, shape)}
    first_w, last_w = probes["2"].extents[0][2:]
    assert (first_w, last_w) == (0, shape[-1] - 1)  # the oracle: the whole width
    rf = receptive_field(analyze_rows(net, shape))
    assert not rf.regular.iloc[1:].any()
    assert check_fields(net, shape) == 2  # only the first conv, in H and W


@pytest.mark.parametrize("hw,out", [((7, 5), (3, 3)), ((10, 11), (4, 3)), ((9, 13), (5, 4))])
def test_adaptive_pool_with_uneven_bins_prints_its_widest_field(hw: tuple, out: tuple):
    """Uneven bins have no one (R, J, P), so the row is irregular, but its size column must still be
    the field of its widest unit, measured here on every unit by the gradient (L=7, O=3: bins of 3, 3
    and 3 pixels, after a 3-wide conv a field of 5; ``ceil(L/O) + 1`` would print 6)."""
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(out))
    shape = (1, hw[0] + 2, hw[1] + 2)  # the conv's output, the pool's input, is hw
    work, _ = positive_copy(net)
    x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    y = work(x)
    widest = [0, 0]
    for i in range(out[0]):
        for j in range(out[1]):
            (g,) = torch.autograd.grad(y[0, 0, i, j], x, retain_graph=True)
            nz = g[0, 0] != 0
            rows, cols = nz.any(1).nonzero().flatten(), nz.any(0).nonzero().flatten()
            widest = [max(widest[0], int(rows[-1] - rows[0]) + 1), max(widest[1], int(cols[-1] - cols[0]) + 1)]
    rf = receptive_field(analyze_rows(net, shape)).set_index("op")
    assert [rf.loc["AdaptiveAvgPool2d", "rf_h"], rf.loc["AdaptiveAvgPool2d", "rf_w"]] == widest
    assert not rf.loc["AdaptiveAvgPool2d", "regular"]


def test_same_and_valid_padding_strings():
    """``padding="same"`` pads ``d*(k-1)`` in all, the smaller half on the left (even kernels are
    asymmetric); ``"valid"`` pads nothing.  The gradient sees the left pad as the field's P."""
    net = nn.Sequential(nn.Conv2d(1, 2, (4, 3), padding="same", dilation=(1, 2)), nn.Conv2d(2, 2, 3, 2, padding="valid"),
                        nn.Conv2d(2, 2, (5, 2), padding="same"), nn.Conv2d(2, 1, (2, 6), padding="same", dilation=(3, 1)))
    assert check_fields(net, (1, 41, 37)) == 2 * 4  # every conv, in H and W


class PadWidth(nn.Module):
    """``F.pad`` with a 2-entry list pads only the last dim (W): H's left pad is 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(x, (3, 1))


def test_a_pad_of_the_width_only_leaves_the_height_alone():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, 2), PadWidth(), nn.Conv2d(2, 1, 3, 2))
    assert check_fields(net, (1, 40, 36)) == 2 * 2


class GlobalMean(nn.Module):
    """A spatial mean kept as 1x1, then a 1x1 conv: both see every position of the conv before."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = nn.Conv2d(1, 2, 3, 2), nn.Conv2d(2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean((2, 3), keepdim=True))


def test_a_global_mean_sees_the_union_of_its_input_fields():
    """Its field is the first unit's start to the last unit's end, ``R + (L - 1) * J``, measured by
    the gradient of the 1x1 output; the rows from there on are ``global``."""
    net, shape = GlobalMean(), (1, 20, 15)  # conv: 9 x 7 units, R = 3, J = 2: 3 + 8*2 = 19, 3 + 6*2 = 15
    work, _ = positive_copy(net)
    x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(work(x).sum(), x)
    nz = g[0, 0] != 0
    rows, cols = nz.any(1).nonzero().flatten(), nz.any(0).nonzero().flatten()
    rf = receptive_field(analyze_rows(net, shape))
    last = rf.iloc[-1]
    assert (last.rf_h, last.rf_w) == (int(rows[-1] - rows[0]) + 1, int(cols[-1] - cols[0]) + 1)
    assert list(rf["global"]) == [False, True, True]
