"""Reductions with ``dim`` and ``keepdim`` given positionally or by keyword, against PyTorch's shapes."""
from __future__ import annotations

import pytest
import torch

from archstat import analyze

from _call import Call


CALLS = {"mean_positional": lambda x: x.mean((2, 3), True), "sum_positional": lambda x: torch.sum(x, 1, True),
         "amax_keyword": lambda x: x.amax(dim=-1, keepdim=True), "mean_dropped": lambda x: x.mean(2, False),
         "sum_all": lambda x: x.sum()}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_reduction_shapes_match_pytorch(call: str):
    model = Call(CALLS[call])
    out = model(torch.zeros(1, 3, 5, 4))
    df = analyze(model, (3, 5, 4))
    row = df.iloc[-1]
    assert row["act_bytes"] == out.numel() * out.element_size() and row["supported"]
    if out.dim() > 0:
        assert list(row["out_shape"]) == list(out.shape[1:])
