"""Edge cases of the formulas that the mutation run (``bench/mutation.py``) found untested, each
against an oracle outside archstat: PyTorch's own shapes and state, fvcore, FlopCounterMode.

Each test names the mutant it was written for in ``reports/mutation/SURVIVORS.md``."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fvcore.nn import FlopCountAnalysis
from torch import nn

from archstat import analyze
from archstat.formulas.pad import padded_shape


class Call(nn.Module):
    """A model that is one functional call (with the extra tensors it needs as buffers)."""

    def __init__(self, fn, **buffers: torch.Tensor) -> None:
        super().__init__()
        self.fn = fn
        for name, value in buffers.items():
            self.register_buffer(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self, x)


def test_a_pad_of_every_dim_is_legal_as_in_pytorch():
    """``F.pad`` may pad every dim of a tensor, the first one too (pad.py:23, ``>`` -> ``>=``)."""
    for shape, pad in [((2, 3), (1, 1, 2, 0)), ((2, 3, 4), (0, 1, 1, 0, 2, 2)), ((5,), (1, 2))]:
        assert padded_shape(shape, pad) == tuple(F.pad(torch.zeros(shape), pad).shape)


def test_normalize_defaults_to_dim_1():
    """``F.normalize(x)`` reduces over dim 1: the norm it keeps has ``numel / C`` elements.  The
    oracle is the norm PyTorch computes.  (It does not kill reduce.py:61's ``1 -> 2``: both engines
    hand the formula every argument, defaults filled in, so that default is never read.)"""
    model = Call(lambda m, x: F.normalize(x))
    row = analyze(model, (3, 5, 7), batch=2).iloc[-1]
    norm = torch.linalg.vector_norm(torch.zeros(2, 3, 5, 7), dim=1, keepdim=True)
    assert row["work"]["transient_bytes"] == norm.numel() * norm.element_size()


def test_functional_batch_norm_updates_its_running_stats_only_in_training():
    """``F.batch_norm(x, mean, var)`` defaults to ``training=False``: PyTorch leaves the running
    stats alone, and the row says it writes no state.  (norm.py:44's default ``False -> True`` is
    never read: both engines pass ``training`` explicitly.)"""
    for kwargs in ({}, {"training": False}, {"training": True}):
        model = Call(lambda m, x, kw=kwargs: F.batch_norm(x, m.mean, m.var, **kw),
                     mean=torch.zeros(3), var=torch.ones(3))
        model(torch.randn(2, 3, 4, 4))
        written = bool(model.mean.abs().sum() > 0)
        row = analyze(model, (3, 4, 4), batch=2).iloc[-1]
        assert bool(row["work"]["updates_state"]) == written, kwargs


@pytest.mark.parametrize("affine", [False, True])
def test_functional_layer_norm_in_fvcore_counts_the_affine_step(affine: bool):
    """fvcore prices ``F.layer_norm`` 5 per element with a weight, 4 without (norm.py:80,
    ``is not None`` -> ``is``); the oracle is FlopCountAnalysis itself."""
    weights = {"w": torch.ones(7), "b": torch.zeros(7)} if affine else {}
    model = Call((lambda m, x: F.layer_norm(x, (7,), m.w, m.b)) if affine else (lambda m, x: F.layer_norm(x, (7,))),
                 **weights)
    x = torch.randn(2, 3, 5, 7)
    fvcore = FlopCountAnalysis(model, x)
    fvcore.unsupported_ops_warnings(False)
    fvcore.uncalled_modules_warnings(False)
    df = analyze(model, (3, 5, 7), batch=2, convention="fvcore")
    assert int(df["flops"].sum()) == fvcore.total()


def test_local_response_norm_takes_5d_input_as_pytorch():
    """LocalResponseNorm runs on 3-, 4- and 5-d input (norm.py:112, rank 5 -> 6)."""
    model = Call(lambda m, x: m.lrn(x))
    model.lrn = nn.LocalResponseNorm(3)
    out = model(torch.randn(2, 4, 3, 5, 6))
    row = analyze(model, (4, 3, 5, 6), batch=2).set_index("op").loc["LocalResponseNorm"]
    assert list(row["out_shape"]) == list(out.shape[1:])


def test_a_pad_may_crop_a_dim_to_one():
    """A negative pad may leave a dim of exactly 1 (pad.py:29, ``< 1`` -> ``<= 1``)."""
    for shape, pad in [((2, 3), (-2, 0)), ((2, 4, 3), (0, 0, -1, -2))]:
        assert padded_shape(shape, pad) == tuple(F.pad(torch.zeros(shape), pad).shape)


def test_functional_batch_norm_in_training_returns_per_channel_statistics():
    """In training ``F.batch_norm`` runs ``native_batch_norm``, which returns a mean and an inverse
    std per channel besides the output, dropped at once: the row's transient bytes are theirs
    (norm.py:46, ``x.shape[1]`` -> ``x.shape[2]``).  The oracle is what PyTorch returns."""
    model = Call(lambda m, x: F.batch_norm(x, None, None, training=True))
    row = analyze(model, (3, 5, 7), batch=2).iloc[-1]
    _, mean, invstd = torch.native_batch_norm(torch.randn(2, 3, 5, 7), None, None, None, None, True, 0.1, 1e-5)
    assert row["work"]["transient_bytes"] == mean.nbytes + invstd.nbytes


def test_max_along_a_dim_with_positional_keepdim_matches_pytorch():
    """``torch.max(x, dim, keepdim)`` with keepdim given positionally (reduce.py:42, ``> 2`` -> ``> 3``)."""
    model = Call(lambda m, x: torch.max(x, 2, True).values)
    out = model(torch.zeros(2, 3, 5, 4))
    row = analyze(model, (3, 5, 4), batch=2).set_index("op").loc["max"]
    assert list(row["out_shape"]) == list(out.shape[1:])


def test_hardware_count_of_an_lstm_is_more_than_its_products():
    """The hardware convention adds an LSTM's pointwise gate work to 2 flops per multiply-add, so it
    is above twice the MACs counted by hand: ``T * N * 4H * (I + H)`` (conventions.py:147)."""
    t, n, i, h = 5, 2, 6, 4
    model = Call(lambda m, x: m.rnn(x)[0])
    model.rnn = nn.LSTM(i, h, batch_first=True)
    row = analyze(model, (t, i), batch=n, convention="hardware").set_index("op").loc["LSTM"]
    macs = t * n * 4 * h * (i + h)
    assert row["macs"] == macs and row["flops"] > 2 * macs


@pytest.mark.parametrize("fn,dtype", [(lambda m, x: x * 1j, torch.float32), (lambda m, x: torch.exp(x), torch.float64),
                                      (lambda m, x: x / 3.0, torch.float64)], ids=["complex_scalar", "exp64", "div64"])
def test_result_dtype_of_scalars_and_float_functions_matches_pytorch(fn, dtype):
    """A complex scalar makes a float tensor complex; exp and true division keep a float64 tensor
    float64 (elementwise.py:30, floating's category ``2 -> 3``; :57, ``< 2`` -> ``<= 2``).  The
    oracle is the tensor PyTorch returns."""
    model = Call(fn)
    out = model(torch.ones(2, 3, 4, dtype=dtype))
    row = analyze(model, (3, 4), batch=2, dtype=dtype).iloc[-1]
    assert row["act_bytes"] == out.nbytes


def test_flopcounter_handles_what_it_counts_zero():
    """FlopCounterMode counts 0 for ReLU, batch norm and pooling, which is archstat's count too: those
    rows are within the oracle, and the total is the tool's (conventions.py:138, ``!=`` -> ``==``)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2)).eval()
    with FlopCounterMode(display=False) as fc:
        model(torch.randn(2, 3, 8, 8))
    df = analyze(model, (3, 8, 8), batch=2, convention="flopcounter")
    assert int(df["flops"].sum()) == fc.get_total_flops()
    assert df["oracle_supported"].all()
