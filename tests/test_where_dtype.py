"""``torch.where``'s output dtype (and so its bytes) against PyTorch's real output, Python-number
operands included: ``where(mask, 1.0, 0.0)`` is float32, not the mask's bool (a mutation survivor,
``elementwise.py``'s where branch, showed no test had a where with fewer than two tensor values)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from archstat import analyze


class Where(nn.Module):
    def __init__(self, values) -> None:
        super().__init__()
        self.values = values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, *self.values(x))


VALUES = {
    "floats": lambda x: (1.0, 0.0),
    "ints": lambda x: (1, 0),
    "tensor_and_float": lambda x: (x, 0.0),
    "int_and_tensor": lambda x: (0, x.double()),
    "half_and_float": lambda x: (x.half(), x),
    "bool_and_bool": lambda x: (True, x < 1),
    "int_tensor_and_float": lambda x: (x.long(), 0.5),
}


@pytest.mark.parametrize("case", sorted(VALUES))
def test_where_dtype_and_bytes_match_pytorch(case: str):
    model = Where(VALUES[case])
    out = model(torch.randn(3, 2, 4, 5))
    row = analyze(model, (2, 4, 5), batch=3).set_index("op").loc["where"]
    assert row["act_bytes"] == out.numel() * out.element_size()
    assert list(row["out_shape"]) == list(out.shape[1:])
