"""The tensors a model returns, in its order (dicts in insertion order), against the rows that made them:
``attrs["returned"]``, checked by validate against the real forward()."""
from __future__ import annotations

import torch
from torch import nn

import archstat
from archstat.validation.validate import returned_mismatches


class TwoHeads(nn.Module):
    """Returns a dict whose keys are not in the order the values are computed (nor sorted)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.aux = nn.Conv2d(8, 2, 1)
        self.out = nn.Conv2d(8, 5, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> dict:
        h = torch.relu(self.stem(x))
        aux = self.aux(h)
        return {"out": self.out(h), "aux": aux, "input": x}


def test_returned_tensors_follow_the_models_order():
    df = archstat.analyze(TwoHeads(), (3, 16, 16), batch=2)
    returned = df.attrs["returned"]
    names = [df.name[row] if row >= 0 else "<input>" for row, _ in returned]
    assert names == ["out", "aux", "<input>"]
    assert [tuple(shape) for _, shape in returned] == [(2, 5, 8, 8), (2, 2, 16, 16), (2, 3, 16, 16)]
    assert archstat.validate(TwoHeads(), (3, 16, 16), batch=2).attrs["agree"]


def test_a_wrong_order_or_count_is_a_mismatch():
    real = [torch.empty(2, 5, 8, 8), torch.empty(2, 2, 16, 16)]
    assert returned_mismatches([(0, (2, 5, 8, 8)), (1, (2, 2, 16, 16))], real) == []
    swapped = returned_mismatches([(1, (2, 2, 16, 16)), (0, (2, 5, 8, 8))], real)
    assert swapped == ["output 0: archstat 2x2x16x16 (row 1) vs returned 2x5x8x8",
                       "output 1: archstat 2x5x8x8 (row 0) vs returned 2x2x16x16"]
    assert returned_mismatches([(0, (2, 5, 8, 8))], real)[0].startswith("outputs: archstat says the model returns 1")
    assert returned_mismatches(None, real) == []  # the meta engine does not know the outputs
