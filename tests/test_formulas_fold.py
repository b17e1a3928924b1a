"""nn.Fold (col2im): blocks back into an image, overlapping blocks summed.  Shapes by hand, bad
inputs refused with a one-line error, validate in eval and train (no oracle prices col2im)."""
import logging

import pytest
import torch
from torch import nn

import archstat
from archstat.errors import ArchstatError
from _validated import validated

logging.getLogger("fvcore").setLevel(logging.ERROR)


class FoldBack(nn.Module):
    """conv, Unfold into 3x3 blocks, a Linear over each block's values, Fold back, conv."""

    def __init__(self, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.unfold = nn.Unfold(3, padding=padding, stride=stride)
        self.mix = nn.Linear(36, 36)
        self.fold = nn.Fold((8, 8), 3, padding=padding, stride=stride)
        self.out = nn.Conv2d(4, 2, 1)

    def forward(self, x):  # N x 3 x 8 x 8
        blocks = self.mix(self.unfold(self.conv(x)).transpose(1, 2)).transpose(1, 2)  # N x 36 x L
        return self.out(self.fold(blocks))


def test_fold_row_by_hand():
    # 36 = 4 channels * 3*3; 8x8 with padding 1, stride 1: 8*8 = 64 blocks
    row = archstat.analyze(nn.Sequential(nn.Fold((8, 8), 3, padding=1)), (36, 64), batch=2).iloc[0]
    assert row.supported and row.out_shape == [4, 8, 8] and row.macs == 0 and row.act_bytes == 2 * 4 * 8 * 8 * 4


@pytest.mark.parametrize("shape", [(36, 63), (35, 64)])
def test_fold_refuses_blocks_that_do_not_fit(shape):
    with pytest.raises(ArchstatError, match="Fold"):
        archstat.analyze(nn.Sequential(nn.Fold((8, 8), 3, padding=1)), shape, batch=2)


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1)])
def test_fold_validates(stride, padding, mode):
    torch.manual_seed(0)
    df = validated(FoldBack(stride, padding), (3, 8, 8), mode)
