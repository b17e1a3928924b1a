"""Pooling sizes: the symbolic ceil-mode form, and unbatched (C, H, W) inputs, against PyTorch."""
from __future__ import annotations

import pytest
import sympy
import torch
import torch.nn.functional as F
from torch import nn

from archstat import analyze

# (kernel, stride, padding, dilation): the last window always starts inside the input when
# p + s - 1 <= d*(k-1) (GoogLeNet's MaxPool2d(3, 2, ceil_mode=True) among them), so the size is
# one ceiling, no Piecewise; the others need PyTorch's "drop a window that starts in the padding"
INSIDE = [(3, 2, 0, 1), (3, 2, 1, 1), (2, 2, 0, 1), (3, 3, 0, 1), (2, 3, 0, 2), (5, 3, 1, 1)]
OUTSIDE = [(2, 2, 1, 1), (3, 3, 1, 1), (2, 3, 0, 1), (1, 2, 0, 1)]


@pytest.mark.parametrize("k,s,p,d", INSIDE + OUTSIDE)
def test_symbolic_ceil_mode_size_is_one_ceiling_when_it_can_be(k: int, s: int, p: int, d: int):
    pool = nn.MaxPool2d(k, s, p, d, ceil_mode=True)
    df = analyze(nn.Sequential(pool), (1, 8, 8), symbolic=True)
    h = df["out_shape"].iloc[0][1]
    assert h.has(sympy.Piecewise) == ((k, s, p, d) in OUTSIDE)
    H = next(iter(h.free_symbols))
    for size in range(max(d * (k - 1) + 1 - 2 * p, 2 * p + 1, 1), 30):
        assert int(h.subs(H, size)) == pool(torch.zeros(1, 1, size, 3 * size)).shape[2], size


class Unbatched(nn.Module):
    """Pools on ``x[0]``, a (C, H, W) tensor: PyTorch's unbatched form."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x[0])


@pytest.mark.parametrize("fn", [lambda x: F.adaptive_avg_pool2d(x, (3, 2)), lambda x: F.adaptive_max_pool1d(x[0], 4),
                                lambda x: F.max_pool2d(x, 3, 2), lambda x: F.avg_pool1d(x[0], 2)])
def test_unbatched_pools_match_pytorch(fn):
    model = Unbatched(fn)
    out = model(torch.randn(1, 2, 9, 7))
    df = analyze(model, (2, 9, 7))
    assert list(df["out_shape"].iloc[-1]) == list(out.shape) and df["supported"].all()
