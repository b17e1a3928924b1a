"""einsum of a non-contiguous activation with a parameter, in training: torch's bmm copies the
activation, and the parameter's gradient needs it, so autograd saves that copy (64 bytes and more
where archstat used to count the activation itself: 0 new bytes).  Found by the thorough random
sequence-net run; the oracle is autograd's own saved tensors (``validate --mode train``)."""
import pytest
import torch
from torch import nn

from _validated import validated


class ParamEinsum(nn.Module):
    def __init__(self, equation: str, weight_shape: tuple, weight_first: bool) -> None:
        super().__init__()
        self.equation, self.weight_first = equation, weight_first
        self.stem = nn.Conv2d(4, 4, 1)
        self.w = nn.Parameter(torch.randn(*weight_shape))

    def forward(self, x):
        h = torch.relu(self.stem(x).flatten(2).transpose(1, 2))  # (N, L, D), not contiguous: bmm copies it
        return torch.einsum(self.equation, self.w, h) if self.weight_first else torch.einsum(self.equation, h, self.w)


@pytest.mark.parametrize("equation, weight_shape, weight_first", [
    ("bld,de->ble", (4, 5), False), ("de,bld->ble", (4, 5), True),
    ("bld,lm->bmd", (6, 6), False), ("lm,bld->bmd", (6, 6), True)])
def test_einsum_with_a_parameter_saves_the_copy_of_its_activation(equation, weight_shape, weight_first):
    df = validated(ParamEinsum(equation, weight_shape, weight_first), (4, 2, 3), "train")
    assert df.attrs["checks"]["saved_ok"]["ok"] == len(df) and df.attrs["checks"]["saved_ok"]["skipped"] == 0
