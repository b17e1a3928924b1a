"""Receptive fields through ops that move or mix spatial dims, against the input gradient
(``tests/oracles/gradient_rf.py``): a transposed H/W, a linear along the width, uneven adaptive bins.
Written for the mutants of ``archstat/analyses/receptive_field.py`` that the mutation run left
alive (``reports/mutation/SURVIVORS.md``)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from archstat.analyses.receptive_field import receptive_field
from archstat.engine.analyze import analyze_rows
from oracles.gradient_rf import positive_copy, probe_fields
from test_receptive_field_gradient import check_fields


class Seq(nn.Module):
    """conv -> a view function -> conv (or linear along the last dim)."""

    def __init__(self, first: nn.Module, view, last: nn.Module) -> None:
        super().__init__()
        self.first, self.view, self.last = first, view, last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.view(self.first(x)))


@pytest.mark.parametrize("view", [lambda x: x.permute(0, 1, 3, 2), lambda x: x.permute(0, 1, -1, -2),
                                  lambda x: x.transpose(-1, -2)], ids=["permute", "permute_negative", "transpose"])
def test_a_swap_of_height_and_width_is_not_taken_for_a_view_that_keeps_them(view):
    """After a 3x1 conv, swapping H and W turns the field into 1x3 (the gradient says so); the
    formula must not carry the 3x1 field through as if the dims stayed put (receptive_field.py:77
    ``d % full`` -> ``d // full``, :78 ``d != i`` -> ``d == i``).  The conv's output is square (9x7
    in, 7x7 out), so the shapes alone cannot tell the swap."""
    model, shape, unit = Seq(nn.Conv2d(2, 2, (3, 1)), view, nn.Conv2d(2, 2, 1)), (2, 9, 7), (1, 4)
    row = receptive_field(analyze_rows(model, shape)).iloc[-1]
    x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    positive_copy(model)[0](x)[0, 0, unit[0], unit[1]].backward()  # an off-diagonal unit: H and W differ
    nz = x.grad[0].abs().sum(0) > 0
    rows, cols = nz.any(1).nonzero().flatten(), nz.any(0).nonzero().flatten()
    measured = (int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1]))
    assert measured == (unit[1], unit[1] + 2, unit[0], unit[0])  # the oracle: the field is 3 rows x 1 column, swapped
    if row["regular"]:
        claimed = tuple(v for i, r, j, p in ((unit[0], row.rf_h, row.jump_h, row.pad_h),
                                            (unit[1], row.rf_w, row.jump_w, row.pad_w)) for v in (i * j - p, i * j - p + r - 1))
        assert claimed == measured


def test_a_linear_along_the_width_mixes_it():
    """A linear on the last dim mixes every column: the next conv's field spans the whole width
    (the gradient), so the formula may not call it a regular window of its own size
    (receptive_field.py:154, the Field's flags)."""
    model = Seq(nn.Conv2d(2, 2, 3, padding=1), nn.Linear(8, 8), nn.Conv2d(2, 2, 3, padding=1))
    shape = (2, 8, 8)
    rf = receptive_field(analyze_rows(model, shape)).set_index(["name", "op", "call"])
    probe = [p for p in probe_fields(model, shape) if p.name == "last"][0]
    first_w, last_w = probe.extents[0][2:]
    assert (first_w, last_w) == (0, shape[-1] - 1)  # the oracle: the whole width
    row = rf.loc[(probe.name, probe.op, probe.call)]
    first_h, last_h = probe.extents[0][:2]
    assert last_h - first_h + 1 < shape[-2]  # ... and a few rows only: not the whole input
    assert not row["global"]
    assert not row["regular"] or row["rf_w"] >= shape[-1]
    check_fields(model, shape)


@pytest.mark.parametrize("size,out", [(7, 3), (10, 4), (9, 2)])
def test_uneven_adaptive_bins_step_by_floor_or_ceil(size: int, out: int):
    """Uneven adaptive bins start ``floor(i*L/o)`` apart: neighbouring units' fields are
    ``floor(L/o)`` or ``ceil(L/o)`` apart (the gradient measures the step); the jump the table prints
    for such an irregular row is the smaller step, never more than one off the measured one
    (receptive_field.py:95, ``L // o`` -> ``L * o``)."""
    model = nn.Sequential(nn.AdaptiveAvgPool2d(out))
    shape = (1, size, size)
    rf = receptive_field(analyze_rows(model, shape)).set_index(["name", "op", "call"])
    for probe in probe_fields(model, shape):
        row = rf.loc[(probe.name, probe.op, probe.call)]
        for dim, jump in enumerate((row["jump_h"], row["jump_w"])):
            step = probe.extents[1][2 * dim] - probe.extents[0][2 * dim]
            assert step in (size // out, -(-size // out))
            assert jump <= step <= jump + 1, (dim, jump, step)


def test_a_one_dimensional_net_has_a_height_of_one_row():
    """A 1-d net's input has one row: every unit's gradient lies in row 0 of a height-1 view, so the
    height columns read R = 1, J = 1, P = 0 (receptive_field.py:215, the pad default ``0 -> 1``)."""
    model = nn.Sequential(nn.Conv1d(2, 2, 3, padding=1), nn.AvgPool1d(2))
    rf = receptive_field(analyze_rows(model, (2, 16)))
    x = torch.ones(1, 2, 16, dtype=torch.float64, requires_grad=True)
    positive_copy(model)[0](x)[0, 0, 3].backward()
    assert (x.grad[0].abs().sum(0) > 0).nonzero().flatten().tolist() == [5, 6, 7, 8]  # the width: R=4, J=2, P=1
    assert rf[["rf_h", "jump_h", "pad_h"]].values.tolist() == [[1, 1, 0]] * len(rf)
    assert rf.iloc[-1][["rf_w", "jump_w", "pad_w"]].tolist() == [4, 2, 1]


class Shuffle(nn.Module):
    """conv -> channel shuffle by ``permute`` of a 5-d view (H, W stay put) -> conv."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.last = nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.first(x)
        n, c, h, w = y.shape
        y = y.reshape(n, 2, c // 2, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)
        return self.last(y)


def test_a_channel_shuffle_keeps_the_field_regular():
    """A permute that moves channel dims only leaves every unit's field a window, as the gradient
    measures; the formula keeps it regular, so both convs are checked (receptive_field.py:78,
    ``fn == "permute"`` -> ``!=``, which counts the spatial dims that stay put as moved)."""
    assert check_fields(Shuffle(), (4, 13, 13)) == 4
