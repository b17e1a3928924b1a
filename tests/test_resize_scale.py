"""Interpolation sizes from a non-integer ``scale_factor`` (``floor(L * s)``) against PyTorch."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archstat import analyze


class Interpolate(nn.Module):
    def __init__(self, scale) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="nearest")


@pytest.mark.parametrize("model", [nn.Upsample(scale_factor=1.5), nn.Upsample(scale_factor=(0.5, 2.7), mode="bilinear"),
                                   Interpolate((1.3, 0.7)), Interpolate(2.5)], ids=["1.5", "0.5x2.7", "1.3x0.7", "2.5"])
def test_fractional_scale_sizes_match_pytorch(model: nn.Module):
    out = model(torch.zeros(1, 2, 11, 7))
    df = analyze(model if not isinstance(model, nn.Upsample) else nn.Sequential(model), (2, 11, 7))
    assert list(df["out_shape"].iloc[-1]) == list(out.shape[1:]) and df["supported"].all()
