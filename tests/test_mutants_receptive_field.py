"""Receptive fields against the input gradient (``tests/oracles/gradient_rf.py``), for run 3's
surviving mutants of ``archstat/analyses/receptive_field.py`` (``reports/mutation/SURVIVORS.md``,
the section on conventions and the receptive field): a transpose of channels and rows, adaptive
bins of every kind, a circular pad, two paths meeting in a product or a contraction, a value made
from parameters alone, and a model with two inputs.  Line numbers are run 3's (``mutants.csv``)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from archstat.analyses.receptive_field import receptive_field
from archstat.engine.analyze import analyze_rows
from archstat.errors import ArchstatError
from _several_inputs_models import ImageTokens
from oracles.gradient_rf import positive_copy, probe_fields
from test_receptive_field_views import Seq


def _support(model: nn.Module, shape: tuple, unit: tuple) -> tuple[int, int, int, int]:
    """First and last input row and column with a non-zero gradient of output ``unit`` (channel 0)."""
    x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    positive_copy(model)[0](x)[(0, 0, *unit)].backward()
    nz = x.grad[0].abs().sum(0) > 0
    rows, cols = nz.any(1).nonzero().flatten(), nz.any(0).nonzero().flatten()
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _claimed(row, unit: tuple, shape: tuple) -> tuple[int, int, int, int]:
    """The formula's interval of ``unit`` per dim, ``[i*J - P, i*J - P + R - 1]``, clipped to the input."""
    out = []
    for i, r, j, p, n in ((unit[0], row.rf_h, row.jump_h, row.pad_h, shape[-2]),
                          (unit[1], row.rf_w, row.jump_w, row.pad_w, shape[-1])):
        out += [max(i * j - p, 0), min(i * j - p + r - 1, n - 1)]
    return tuple(out)


def test_a_swap_of_channels_and_height_is_a_move_even_when_their_sizes_agree():
    """``transpose(1, 2)`` of an 8-channel 8x8 map swaps channels and rows; the shapes cannot tell.
    The next conv mixes all its channels, i.e. all the rows: its unit sees the whole height (the
    gradient), so the formula may not carry a 5-row window through (receptive_field.py:74,
    ``len(ins) + 1`` -> ``+ 2``, which takes the height for a leading dim)."""
    model = Seq(nn.Conv2d(2, 8, 3, padding=1), lambda x: x.transpose(1, 2), nn.Conv2d(8, 2, 3, padding=1))
    shape, unit = (2, 8, 8), (4, 4)
    measured = _support(model, shape, unit)
    assert measured[:2] == (0, shape[-2] - 1)  # the oracle: every row
    row = receptive_field(analyze_rows(model, shape)).iloc[-1]
    assert not row["regular"] or _claimed(row, unit, shape) == measured


@pytest.mark.parametrize("size,out", [(4, 3), (6, 5), (11, 6)])
def test_adaptive_bins_shorter_than_two_step_by_one(size: int, out: int):
    """With ``L < 2*O`` the bins start ``floor(i*L/O)`` apart, 1 or 2: the gradient measures the
    step between the centre unit and its neighbour, and the jump printed is the smaller step,
    ``floor(L/O) = 1`` (receptive_field.py:95, ``max(L // o, 1)`` -> ``max(L // o, 2)``)."""
    model, shape = nn.Sequential(nn.AdaptiveAvgPool2d(out)), (1, size, size)
    rf = receptive_field(analyze_rows(model, shape)).set_index(["name", "op", "call"])
    (probe,) = probe_fields(model, shape)
    row = rf.loc[(probe.name, probe.op, probe.call)]
    for dim, jump in enumerate((row["jump_h"], row["jump_w"])):
        step = probe.extents[1][2 * dim] - probe.extents[0][2 * dim]
        assert step in (size // out, -(-size // out))
        assert jump <= step <= jump + 1, (dim, jump, step)
    assert not row["regular"]


def test_even_adaptive_bins_are_a_window_of_their_own_stride():
    """8 columns pooled to 2: two bins of 4, 4 apart (the gradient of both units), a regular field
    R = 4, J = 4, P = 0 (receptive_field.py:92, ``1 if o == 1`` -> ``1 if o == 2``, which gives two
    bins a jump of 1)."""
    model, shape = nn.Sequential(nn.AdaptiveAvgPool2d(2)), (1, 8, 8)
    row = receptive_field(analyze_rows(model, shape)).iloc[0]
    assert _support(model, shape, (0, 0)) == (0, 3, 0, 3) and _support(model, shape, (1, 1)) == (4, 7, 4, 7)
    assert row["regular"] and [row.rf_h, row.jump_h, row.pad_h, row.rf_w, row.jump_w, row.pad_w] == [4, 4, 0] * 2


def test_a_circular_pad_wraps_the_border_units_around():
    """With ``padding_mode="circular"`` unit 0 of a 3x3 conv reads the last column too (the
    gradient spans every column), not the interval ``[-1, 1]``: the row is no regular window
    (receptive_field.py:144, the flag ``False`` -> ``True``)."""
    model, shape = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular")), (2, 6, 6)
    row = receptive_field(analyze_rows(model, shape)).iloc[-1]
    measured = _support(model, shape, (0, 0))
    assert measured == (0, 5, 0, 5)  # the oracle: both wrapped around
    assert not row["regular"] or _claimed(row, (0, 0), shape) == measured


class Product(nn.Module):
    """A 3x3 path and a 5x5 path of the same square map, multiplied as matrices (rows of one by
    columns of the other)."""

    def __init__(self) -> None:
        super().__init__()
        self.small, self.large = nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.small(x) @ self.large(x)


def test_where_two_paths_meet_in_a_product_the_field_covers_both():
    """``a @ b`` at unit (i, j) reads ``a[i, :]`` and ``b[:, j]``, so a[i, j] and b[i, j] among
    them: its field holds both paths' fields at that unit (the gradient of each path's unit), the
    5x5 one too, though the 3x3 path comes first (receptive_field.py:152, ``kind == "linear" and``
    -> ``or``, and either ``==`` -> ``!=``, which take the first path's field alone)."""
    model, shape, unit = Product(), (1, 12, 12), (5, 6)
    row = receptive_field(analyze_rows(model, shape)).iloc[-1]
    assert not row["regular"]
    claimed = _claimed(row, unit, shape)
    for path in (model.small, model.large):
        first_h, last_h, first_w, last_w = _support(nn.Sequential(path), shape, unit)
        assert claimed[0] <= first_h and last_h <= claimed[1] and claimed[2] <= first_w and last_w <= claimed[3]


def test_a_model_with_two_inputs_has_no_receptive_field():
    """Which input is the image?  The rows cannot say, so the field is refused with a one-line
    error (receptive_field.py:204, ``or [None]`` -> ``and [None]``, which lets two inputs through)."""
    rows = analyze_rows(ImageTokens(), inputs=[(3, 16, 16), torch.zeros(2, 7, dtype=torch.long)], batch=2)
    with pytest.raises(ArchstatError, match="one input; this one takes 2"):
        receptive_field(rows)


class Contract(nn.Module):
    """Two strided paths, then a product summed over the width: ``(N, C, H, W) -> (N, C, H)``.  The
    2x2 stride-3 path never reaches the last column of a 12-wide input; the 3x3 one does."""

    def __init__(self) -> None:
        super().__init__()
        self.short, self.long = nn.Conv2d(1, 1, 2, stride=3), nn.Conv2d(1, 1, 3, stride=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nchw,nchw->nch", self.short(x), self.long(x))


def test_a_contraction_of_two_paths_over_a_spatial_dim_sees_both_paths_whole():
    """The contraction mixes every position of both paths (``global``): the union of all its units'
    fields, which the gradient of the sum of its outputs measures, is every row and column, the
    last column by the 3x3 path alone (receptive_field.py:62, ``shape[1:]`` -> ``shape[2:]``, which
    reads the ``(C, H)`` output as having no spatial dim and collapses the first path only)."""
    model, shape = Contract(), (1, 12, 12)
    row = receptive_field(analyze_rows(model, shape)).iloc[-1]
    x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    positive_copy(model)[0](x).sum().backward()
    nz = x.grad[0].abs().sum(0) > 0
    measured = (*nz.any(1).nonzero().flatten()[[0, -1]].tolist(), *nz.any(0).nonzero().flatten()[[0, -1]].tolist())
    assert measured == (0, 11, 0, 11)  # the oracle
    assert row["global"] and _claimed(row, (0, 0), shape) == measured


class WithState(nn.Module):
    """A strided conv's output plus a bias map that a linear layer makes from parameters alone."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, stride=2, padding=1)
        self.bias_map, self.mix = nn.Parameter(torch.zeros(4, 4)), nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.mix(self.bias_map)


def test_a_value_made_from_parameters_alone_leaves_the_field_alone():
    """``conv(x) + linear(bias_map)`` sees what the conv sees: the gradient of an output unit is
    the conv's 3x3 window at stride 2.  The bias map depends on no input pixel, so it may not make
    the row global (the old code took it for the input, and the linear's 2-d output for a
    collapse).  Found through run 3's mutant receptive_field.py:152 ``len(spatial_out) ==
    len(ins[0].r)`` -> ``!=``, which reached the code only through such a value."""
    model, shape, unit = WithState(), (2, 8, 8), (1, 2)
    measured = _support(model, shape, unit)
    assert measured == (1, 3, 3, 5)  # the oracle: rows 2*1 - 1 .. +2, columns 2*2 - 1 .. +2
    row = receptive_field(analyze_rows(model, shape)).iloc[-1]
    assert row["regular"] and not row["global"] and _claimed(row, unit, shape) == measured
