"""A matrix-vector product (``x @ v``, 1-d right operand) in each convention, against the tools:
FlopCounterMode has no formula for the ``aten::mv``/``dot`` it runs (0, not counted), fvcore's
matmul handle cannot take a 1-d right operand (it raises, or counts nothing); the MACs are hand
arithmetic."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fvcore.nn import FlopCountAnalysis

from archstat import analyze


class MatVec(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.randn(6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.v


def test_matrix_vector_in_every_convention():
    model, shape = MatVec(), (5, 6)
    with FlopCounterMode(display=False) as fc:
        model(torch.randn(2, *shape))
    assert fc.get_total_flops() == 0  # the oracle counts nothing for it
    try:
        fvcore_total = FlopCountAnalysis(model, torch.randn(2, *shape)).total()
    except (IndexError, AssertionError):  # fvcore 0.1.5's handle indexes the vector's missing dim
        fvcore_total = 0
    assert fvcore_total == 0
    lecture = analyze(model, shape, batch=2).set_index("op").loc["matmul"]
    assert lecture["macs"] == 2 * 5 * 6 and lecture["flops"] == 2 * 5 * 6
    for convention in ("flopcounter", "fvcore"):
        row = analyze(model, shape, batch=2, convention=convention).set_index("op").loc["matmul"]
        assert row["flops"] == 0 and not row["oracle_supported"], convention
