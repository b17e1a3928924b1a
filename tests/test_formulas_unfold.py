"""nn.Unfold (im2col): rows by hand and validate in eval and train."""
import logging

import pytest
import torch
from torch import nn

import archstat
from _validated import validated

logging.getLogger("fvcore").setLevel(logging.ERROR)


class PatchMixer(nn.Module):
    """conv, Unfold into 3x3 blocks, a Linear over each block's values."""

    def __init__(self, stride: int = 2, padding: int = 1) -> None:
        super().__init__()
        self.conv, self.unfold = nn.Conv2d(3, 4, 3, padding=1), nn.Unfold(3, padding=padding, stride=stride)
        self.mix = nn.Linear(36, 8)

    def forward(self, x):
        return self.mix(self.unfold(self.conv(x)).transpose(1, 2))


@pytest.mark.parametrize("unfold, shape, out_shape", [
    # 4 channels * 3*3 = 36 rows; blocks per side (8 + 2 - 2 - 1)//2 + 1 = 4: L = 16
    (nn.Unfold(3, padding=1, stride=2), (4, 8, 8), [36, 16]),
    # 2x3 kernel, dilation 2 on a 9x10 input: H (9 - 2 - 1) + 1 = 7, W (10 - 4 - 1) + 1 = 6: L = 42
    (nn.Unfold((2, 3), dilation=2), (1, 9, 10), [6, 42]),
])
def test_unfold_row(unfold, shape, out_shape):
    row = archstat.analyze(nn.Sequential(unfold), shape, batch=2).iloc[0]
    assert row.supported and row.out_shape == out_shape and row.macs == 0
    assert row.act_bytes == 2 * out_shape[0] * out_shape[1] * 4


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("stride, padding", [(2, 1), (1, 0)])
def test_unfold_validates(stride, padding, mode):
    torch.manual_seed(0)
    df = validated(PatchMixer(stride, padding), (3, 8, 8), mode)
