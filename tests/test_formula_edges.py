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
    """``F.normalize(x)`` reduces over dim 1: the norm it keeps has ``numel / C`` elements
    (reduce.py:61, the default dim ``1 -> 2``).  The oracle is the norm PyTorch computes."""
    model = Call(lambda m, x: F.normalize(x))
    row = analyze(model, (3, 5, 7), batch=2).iloc[-1]
    norm = torch.linalg.vector_norm(torch.zeros(2, 3, 5, 7), dim=1, keepdim=True)
    assert row["work"]["transient_bytes"] == norm.numel() * norm.element_size()


def test_functional_batch_norm_updates_its_running_stats_only_in_training():
    """``F.batch_norm(x, mean, var)`` defaults to ``training=False``: PyTorch leaves the running
    stats alone, and the row says it writes no state (norm.py:44, the default ``False -> True``)."""
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
    model = nn.LocalResponseNorm(3)
    out = model(torch.randn(2, 4, 3, 5, 6))
    row = analyze(model, (4, 3, 5, 6), batch=2).iloc[-1]
    assert list(row["out_shape"]) == list(out.shape[1:])
