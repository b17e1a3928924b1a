"""Functions that ``torch.fx.wrap`` keeps opaque are traced through where their bodies allow it.

A user's own wrapped helpers (built like torchvision's Swin ones: a branch on sizes, a pad to a
multiple of the window, a mask written with ``x[a:b] = v``, a gather of a bias table, a tuple result)
are costed op by op and validated against the real run and both oracles, in eval and train.  The
branch the trace took is re-checked at other sizes; a body that branches on tensor values stays an
opaque, flagged call.
"""
import logging

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

import archstat
from archstat.engine.analyze import analyze_rows, reinterpret
from archstat.errors import ArchstatError
from archstat.validation.validate import validate

logging.getLogger("fvcore").setLevel(logging.ERROR)


def windowed(x: torch.Tensor, weight: torch.Tensor, table: torch.Tensor, index: torch.Tensor, window: int
             ) -> torch.Tensor:
    """N x L x C: pad L to a multiple of ``window``, mix each window with a gathered bias, unpad."""
    n, length, c = x.shape
    pad = (window - length % window) % window
    if pad > 0:  # a branch on sizes: what fx cannot trace
        x = F.pad(x, (0, 0, 0, pad))
    w = x.view(n, -1, window, c)  # N x nW x window x C
    scores = F.linear(w, weight) @ w.transpose(-2, -1)  # N x nW x window x window
    mask = x.new_zeros((window, window))
    mask[:, window // 2:] = 1.0  # written in place
    bias = table[index].view(window, window)  # a gather of the bias table
    scores = (scores + bias).masked_fill(mask == 1, -1e4)
    out = torch.softmax(scores, dim=-1) @ w
    return out.reshape(n, -1, c)[:, :length].contiguous()


torch.fx.wrap("windowed")


def halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two results, read as ``halves(x)[0]`` and ``[1]``."""
    c = x.shape[-1] // 2
    return x[..., :c] * 2, x[..., c:].sigmoid()


torch.fx.wrap("halves")


def by_value(x: torch.Tensor) -> torch.Tensor:
    """A branch on tensor values: no trace can follow it."""
    return x * 2 if x.sum() > 0 else x


torch.fx.wrap("by_value")


class WindowNet(nn.Module):
    def __init__(self, c: int = 8, window: int = 4) -> None:
        super().__init__()
        self.window = window
        self.inp = nn.Conv1d(c, c, 1)
        self.weight = nn.Parameter(torch.randn(c, c) / c)
        self.table = nn.Parameter(torch.randn(2 * window - 1) / 10)
        pos = torch.arange(window)
        self.register_buffer("index", (pos[:, None] - pos[None, :] + window - 1).flatten())
        self.out = nn.Linear(c, 6)

    def forward(self, x):  # N x C x L: symbolic mode names L
        y = windowed(torch.relu(self.inp(x)).transpose(1, 2), self.weight, self.table, self.index, self.window)
        a = halves(y)
        return self.out(torch.cat([a[0], a[1]], -1))


class ValueNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return by_value(self.lin(x))


class Fills(nn.Module):
    """Fresh tensors from ``x.new_*`` and in-place fills, next to the activation they are sized by."""

    def forward(self, x):  # N x L
        ones = x.new_ones(x.shape)
        half = x.new_empty((x.shape[0], 1)).fill_(0.5)
        scale = x.new_full((1, x.shape[1]), 2.0)
        y = torch.relu(x) * ones + half * scale
        y[:, :1].zero_()
        return y


def build() -> nn.Module:
    torch.manual_seed(0)
    return WindowNet()


def test_wrapped_bodies_are_costed_op_by_op():
    df = archstat.analyze(build(), (8, 10), batch=2, convention="fvcore")
    assert not df.attrs["partial"], df.attrs["unsupported"]
    ops = set(df.op)
    assert {"pad", "linear", "matmul", "getitem", "new_zeros", "setitem", "masked_fill", "softmax"} <= ops
    assert "windowed" not in ops and "halves" not in ops
    # the rows belong to the module that made the call (the root here)
    assert set(df[df.op == "pad"].name) == {""}
    # the windows' products: 2 * 3 windows of 4 x 8 @ 8 x 8, 4 x 8 @ 8 x 4 and 4 x 4 @ 4 x 8
    assert df[df.op == "matmul"].macs.sum() == 2 * 3 * (4 * 8 * 4 + 4 * 4 * 8)
    assert df[df.op == "linear"].macs.sum() == 2 * 12 * 8 * 8  # on the padded length; the Linear modules are rows of their own


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("length", [10, 12])  # padded and not: each its own branch
def test_wrapped_bodies_validate(mode, length):
    a = validate(build(), (8, length), batch=2, mode=mode, convention="fvcore").attrs
    assert a["agree"], a["mismatches"][:5]
    assert not a["partial"], a["unsupported"]


def test_the_branch_taken_is_checked_at_other_sizes():
    rows = analyze_rows(build(), (8, 10), batch=2)
    assert not rows.df.attrs["partial"]
    again = reinterpret(rows, batch=3)  # the branch does not depend on the batch
    assert not again.df.attrs["partial"]
    with pytest.raises(ArchstatError, match="symbolic mode cannot decide"):
        reinterpret(rows, symbolic=True)


def test_symbolic_mode_keeps_the_call_opaque_and_says_so():
    with pytest.raises(ArchstatError, match="windowed"):
        archstat.analyze(build(), (8, 10), symbolic=True)


def test_a_branch_on_values_stays_an_opaque_call():
    """It cannot run on meta tensors either: a one-line error names it (as for any op without a formula)."""
    with pytest.raises(ArchstatError, match="op by_value at layer <root> has no formula"):
        archstat.analyze(ValueNet(), (4,), batch=2)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_fills_validate(mode):
    a = validate(Fills(), (6,), batch=2, mode=mode).attrs
    assert a["agree"], a["mismatches"][:5]
    assert not a["partial"], a["unsupported"]
