"""Result dtypes of elementwise ops with Python scalars and integer inputs, against PyTorch's own result.

``torch.result_type``: a scalar of a higher category (bool < integer < floating < complex) than the
tensors gives that category's default dtype; true division, exp, log and roots of integers are floating.
Before these were modelled, ``mask * 0.5`` was priced as a bool tensor (1 byte per element, real 4)."""
import pytest
import torch

import archstat

from _call import Call

CASES = {
    "bool * float": lambda x: (x > 0) * 0.5,
    "bool * int": lambda x: (x > 0) * 2,
    "bool + bool": lambda x: (x > 0) + True,
    "int + float": lambda x: x.long() + 1.5,
    "int * int": lambda x: x.long() * 3,
    "int / int": lambda x: x.long() / 2,
    "int // by rounding": lambda x: torch.div(x.long(), 2, rounding_mode="floor"),
    "exp(int)": lambda x: torch.exp(x.long()),
    "half * float": lambda x: x.half() * 2.0,
    "clamp(int)": lambda x: x.long().clamp(0, 1),
    "where(mask, int, 0)": lambda x: torch.where(x > 0, x.long(), 0),
    "int ** 2": lambda x: x.long() ** 2,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_result_bytes_follow_pytorchs_result_type(name):
    fn = CASES[name]
    real = fn(torch.randn(2, 3, 4))
    row = archstat.analyze(Call(fn), (3, 4), batch=2).iloc[-1]
    assert row.supported and row.act_bytes == real.numel() * real.element_size(), (name, real.dtype)
