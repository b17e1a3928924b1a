"""What each counting convention says about an op, against the tool it reproduces: run 3's surviving
mutants of ``archstat/engine/conventions.py`` (``reports/mutation/SURVIVORS.md``, the section on
conventions and the receptive field; each test names its mutant by function).

The oracles share no code with archstat: fvcore's ``FlopCountAnalysis`` (its per-module count and
its list of unsupported ops) and ``FlopCounterMode``, each run the way ``archstat validate`` runs
them (the model in its mode, under ``no_grad``), and hand arithmetic for the lecture's rules.
A convention's flag (``oracle_supported``) says whether its tool counts the op at all: it is what
``archstat table`` lists as "ops the ... tool itself does not count"."""
from __future__ import annotations

import logging

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archstat
from archstat import analyze

from _call import Call

logging.getLogger("fvcore").setLevel(logging.ERROR)


def test_the_lecture_prices_every_op_it_has_a_formula_for():
    """The lecture's rules cover every op: MACs for conv / linear, ``K*K`` per output element for
    a pool (adaptive: its largest bin), 0 for the rest.  So no row is "not counted" by the lecture
    convention: ReLU's 0 is the slides' price, not a gap (conventions.py ``lecture``: the last line's
    ``kind != "unsupported"`` -> ``==``, and a pool's ``True`` -> ``False``).  The pools' prices are
    hand arithmetic: 4*6*6 outputs of a 2x2 max pool, 4*3*3 of a 2x2 average pool, 4*1*1 of a
    3x3 adaptive pool over 3x3."""
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.AvgPool2d(2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    df = analyze(model, (2, 12, 12))
    assert df.set_index("op")["flops"][["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]].tolist() == [
        4 * 6 * 6 * 4, 4 * 3 * 3 * 4, 4 * 1 * 1 * 9]
    assert df["oracle_supported"].all()
    assert df.attrs["oracle_unsupported"] == []


class Reductions(nn.Module):
    """The three forms of ``max`` (aten::max, on fvcore's ignore list) and one ``min`` (not on it)."""

    def __init__(self) -> None:
        super().__init__()
        self.max_dim = Call(lambda x: torch.max(x, 1)[0])
        self.max_method = Call(lambda x: x.max(2).values)
        self.max_all = Call(torch.max)
        self.min_dim = Call(lambda x: torch.min(x, 1)[0])

    def forward(self, x: torch.Tensor) -> tuple:
        return self.max_dim(x), self.max_method(x), self.max_all(x), self.min_dim(x)


def test_fvcore_ignores_max_and_reports_min():
    """Per module, archstat's fvcore flag on the reduction is fvcore's own verdict: aten::max is
    ignored on purpose (not unsupported), aten::min is reported unsupported (conventions.py
    ``fvcore``: ``return 0, True`` of ``max`` -> ``False``)."""
    model, x = Reductions(), torch.randn(2, 3, 4)
    with torch.no_grad():
        fa = FlopCountAnalysis(model, x)
        fa.unsupported_ops_warnings(False)
        assert fa.total() == 0
        reported = {name: bool(fa.unsupported_ops(name)) for name in ("max_dim", "max_method", "max_all", "min_dim")}
    assert reported == {"max_dim": False, "max_method": False, "max_all": False, "min_dim": True}  # the oracle
    df = analyze(model, (3, 4), batch=2, convention="fvcore")
    rows = df[df["op"].isin(["max", "min"])]
    assert dict(zip(rows["name"], ~rows["oracle_supported"])) == reported


class Attention(nn.Module):
    def __init__(self, need_weights: bool) -> None:
        super().__init__()
        self.need_weights = need_weights
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mha(x, x, x, need_weights=self.need_weights)[0]


def _tools(model: nn.Module, x: torch.Tensor, name: str) -> dict[str, int]:
    """fvcore's and FlopCounterMode's counts of module ``name``, run as validate runs them."""
    with torch.no_grad():
        fa = FlopCountAnalysis(model, x)
        fa.unsupported_ops_warnings(False)
        fvcore = fa.by_module()[name]
        with FlopCounterMode(display=False) as fc:
            model(x)
    per_module = fc.get_flop_counts()  # keyed "<root class>.<name>"
    return {"fvcore": fvcore, "flopcounter": sum(per_module.get(f"{type(model).__name__}.{name}", {}).values())}


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("need_weights", [False, True], ids=["no_weights", "weights"])
def test_multihead_attention_is_counted_by_a_tool_exactly_when_the_tool_counts_it(mode: str, need_weights: bool):
    """In training both tools count the projections (and with need_weights the bmm's): the row's
    flag is True; in inference under no_grad PyTorch runs the fused native kernel, which neither
    tool has a handle or formula for: each counts 0, and the flag is False, as for a
    matrix-vector product (conventions.py ``fvcore``: the need_weights=False branch's ``True`` ->
    ``False``; ``flopcounter``: both branches' flags)."""
    model, x = Attention(need_weights).train(mode == "train"), torch.randn(2, 5, 8)
    counted = _tools(model, x, "mha")
    assert (counted["fvcore"] > 0) == (counted["flopcounter"] > 0) == (mode == "train")  # the oracles
    for convention, n in counted.items():
        row = analyze(model, (5, 8), batch=2, mode=mode, convention=convention).set_index("op").loc["MultiheadAttention"]
        assert row["flops"] == n and bool(row["oracle_supported"]) == (n > 0), convention


class Recurrent(nn.Module):
    """An LSTM's output sequence (the state is dropped)."""

    def __init__(self, rnn: nn.LSTM) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["onednn", "aten"])
def test_flopcounter_flags_the_lstm_kernel_it_has_no_formula_for(dtype: torch.dtype):
    """A float32 LSTM runs oneDNN's fused kernel, which FlopCounterMode counts 0: flagged, as the
    fused attention kernel and a matrix-vector product are; float64 runs mm/addmm, counted."""
    model = Recurrent(nn.LSTM(6, 4, batch_first=True).to(dtype))
    n = _tools(model, torch.randn(2, 5, 6, dtype=dtype), "rnn")["flopcounter"]
    assert (n > 0) == (dtype == torch.float64)  # the oracle
    row = analyze(model, (5, 6), batch=2, dtype=dtype, convention="flopcounter").set_index("op").loc["LSTM"]
    assert row["flops"] == n and bool(row["oracle_supported"]) == (n > 0)


def test_hardware_count_of_an_lstm_is_its_products_plus_its_gate_arithmetic():
    """The hardware convention prices an LSTM as 2 flops per multiply-add of its matrix products
    (what FlopCounterMode counts of the float64 run's mm/addmm) plus 13 per hidden unit, step and
    batch row for the cell's pointwise work: the gate pre-activation add (4H), the three sigmoids
    and the tanh (4H), ``c = f*c + i*g`` (3H), ``tanh(c)`` (H), ``o * tanh(c)`` (H)
    (conventions.py ``hardware``: ``2 * cost.macs`` -> ``3 * cost.macs``)."""
    t, n, i, h = 5, 2, 6, 4
    model = Recurrent(nn.LSTM(i, h, batch_first=True).double())
    products = _tools(model, torch.randn(n, t, i, dtype=torch.float64), "rnn")["flopcounter"]
    assert products == 2 * t * n * 4 * h * (i + h)  # the oracle agrees with the MACs by hand
    row = analyze(model, (t, i), batch=n, dtype=torch.float64, convention="hardware").set_index("op").loc["LSTM"]
    assert row["flops"] == products + t * n * 13 * h


class WithStats(nn.Module):
    """A user's activation that also returns a per-channel statistic: two outputs, of unequal sizes."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.relu(x)
        return y, y.mean(dim=(2, 3))


def _with_stats(module: nn.Module, inputs: list) -> archstat.Cost:
    x = inputs[0]
    return archstat.Cost(out=(x.with_shape(x.shape), x.with_shape(x.shape[:2])), kind="activation")


def test_a_two_output_row_is_priced_by_its_first_output():
    """The hardware convention prices an activation at one flop per element of its output, the
    first one where a formula returns several (conventions.py ``_out``: ``cost.out[0]`` ->
    ``cost.out[1]``).  The user's formula here returns the activation and a per-channel mean; the
    oracle is the size of what PyTorch returns first: 2*3*5*4 elements, not the mean's 2*3."""
    model = nn.Sequential(WithStats())
    first = model(torch.randn(2, 3, 5, 4))[0]
    with archstat.formulas.registered({WithStats: _with_stats}):
        row = analyze(model, (3, 5, 4), batch=2, convention="hardware").iloc[0]
    assert row["flops"] == first.numel() == 2 * 3 * 5 * 4
