"""Table-driven formula tests: (module, input per sample) -> (output per sample, params, MACs),
every expected value worked out by hand in the comment beside it."""
import pytest
import torch
from torch import nn

import archstat


def one_row(module: nn.Module, shape, **kw):
    df = archstat.analyze(nn.Sequential(module), shape, **kw)
    assert len(df) == 1
    return df.iloc[0]


CASES = [
    # conv1 of the lecture: floor((227 - 11 + 4)/4) + 1 = 56; 64*3*11*11 + 64; 64*56*56 * 3*11*11
    (nn.Conv2d(3, 64, 11, 4, 2), (3, 227, 227), [64, 56, 56], 23_296, 72_855_552),
    # grouped, rectangular: out H = (20 + 0 - 3)//1 + 1 = 18, W = (30 - 7)//2 + 1 = 12;
    # params 8*(4/2)*3*7 + 8 = 344; MACs 8*18*12 * 2*3*7
    (nn.Conv2d(4, 8, (3, 7), (1, 2), groups=2), (4, 20, 30), [8, 18, 12], 344, 8 * 18 * 12 * 42),
    # dilated: effective kernel 2*(3-1)+1 = 5 -> 16 - 5 + 2*1 + 1 = 14
    (nn.Conv2d(2, 3, 3, padding=1, dilation=2, bias=False), (2, 16, 16), [3, 14, 14], 54, 3 * 14 * 14 * 18),
    # padding="same" keeps 17x9
    (nn.Conv2d(2, 2, 5, padding="same"), (2, 17, 9), [2, 17, 9], 102, 2 * 17 * 9 * 50),
    # depthwise: params 6*1*3*3 + 6 = 60, MACs 6*8*8 * 9
    (nn.Conv2d(6, 6, 3, padding=1, groups=6), (6, 8, 8), [6, 8, 8], 60, 6 * 64 * 9),
    # Conv1d: (50 - 5)//3 + 1 = 16
    (nn.Conv1d(2, 4, 5, stride=3), (2, 50), [4, 16], 44, 4 * 16 * 10),
    # transposed: (7-1)*2 - 2 + 3 + 1 + 1 = 15; MACs = 4*7*7 * 3*3*3
    (nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1), (4, 7, 7), [3, 14, 14], 111, 4 * 49 * 27),
    # pool1 of the lecture: (56 - 3)//2 + 1 = 27
    (nn.MaxPool2d(3, 2), (64, 56, 56), [64, 27, 27], 0, 0),
    # ceil_mode: ceil((6 - 3)/2) + 1 = 3, last window starts at 4 < 6: kept
    (nn.MaxPool2d(3, 2, ceil_mode=True), (1, 6, 6), [1, 3, 3], 0, 0),
    # ceil_mode with padding: ceil((5 + 2 - 2)/2) + 1 = 4, but window 3 would start at 6 >= 5 + 1: dropped
    (nn.MaxPool2d(2, 2, padding=1, ceil_mode=True), (1, 5, 5), [1, 3, 3], 0, 0),
    (nn.AvgPool2d(2), (3, 9, 9), [3, 4, 4], 0, 0),
    (nn.AdaptiveAvgPool2d((6, 6)), (256, 13, 13), [256, 6, 6], 0, 0),
    (nn.AdaptiveMaxPool2d(1), (8, 5, 7), [8, 1, 1], 0, 0),
    # Linear on a 3-d input: 5 rows of 7 -> 3: MACs 5*7*3
    (nn.Linear(7, 3), (5, 7), [5, 3], 24, 105),
    (nn.BatchNorm2d(16), (16, 4, 4), [16, 4, 4], 32, 0),
    (nn.GroupNorm(4, 16), (16, 4, 4), [16, 4, 4], 32, 0),
    (nn.LayerNorm(10), (3, 10), [3, 10], 20, 0),
    (nn.LocalResponseNorm(5), (16, 4, 4), [16, 4, 4], 0, 0),
    (nn.PReLU(16), (16, 4, 4), [16, 4, 4], 16, 0),
    (nn.Flatten(), (16, 4, 4), [256], 0, 0),
    # pixel shuffle r=2: (8/4, 3*2, 5*2); unshuffle back: (2*4, 6/2, 10/2)
    (nn.PixelShuffle(2), (8, 3, 5), [2, 6, 10], 0, 0),
    (nn.PixelUnshuffle(2), (2, 6, 10), [8, 3, 5], 0, 0),
    # scale 0.5: floor(7 * 0.5) = 3, floor(9 * 0.5) = 4; scale 1.5: floor(7 * 1.5) = 10
    (nn.Upsample(scale_factor=0.5, mode="bilinear"), (3, 7, 9), [3, 3, 4], 0, 0),
    (nn.Upsample(scale_factor=1.5), (3, 7), [3, 10], 0, 0),
    (nn.UpsamplingBilinear2d(size=(5, 11)), (3, 7, 9), [3, 5, 11], 0, 0),
    # pads list the last dim first: W 5 + 1 + 2 = 8, H 4 + 0 + 1 = 5
    (nn.ZeroPad2d((1, 2, 0, 1)), (3, 4, 5), [3, 5, 8], 0, 0),
    (nn.ReflectionPad2d(2), (3, 4, 5), [3, 8, 9], 0, 0),
    (nn.ReplicationPad1d((1, 0)), (2, 5), [2, 6], 0, 0),
    (nn.ConstantPad3d(1, 0.5), (1, 2, 3, 4), [1, 4, 5, 6], 0, 0),
    (nn.CircularPad2d((1, 1, 2, 2)), (1, 4, 4), [1, 8, 6], 0, 0),
    # reflect padding_mode: same output as zeros, 4*9*9 * 3*3*3 MACs; params 4*3*9 + 4
    (nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), (3, 9, 9), [4, 9, 9], 112, 4 * 81 * 27),
]


@pytest.mark.parametrize("module, shape, out_shape, params, macs", CASES, ids=lambda v: type(v).__name__)
def test_formula_row(module, shape, out_shape, params, macs):
    row = one_row(module, shape)
    assert row.out_shape == out_shape
    assert row.params == params
    assert row.macs == macs
    real = module.eval()(torch.zeros(1, *shape))
    assert list(real.shape[1:]) == out_shape  # and PyTorch agrees


def test_lecture_flop_for_pooling_is_window_per_output():
    row = one_row(nn.MaxPool2d(3, 2), (64, 56, 56))
    assert row.flops == 64 * 27 * 27 * 3 * 3 == 419_904


def test_adaptive_pool_uses_largest_bin():
    # 10 -> 4 bins: [0,3) [2,5) [5,8) [7,10): largest 3; 5 -> 3 bins: [0,2) [1,4) [3,5): largest 3
    assert one_row(nn.AdaptiveAvgPool1d(4), (1, 10)).kernel == [3]
    assert one_row(nn.AdaptiveAvgPool1d(3), (1, 5)).kernel == [3]


def test_batch_multiplies_counts_not_params():
    a = one_row(nn.Conv2d(3, 8, 3), (3, 10, 10))
    b = one_row(nn.Conv2d(3, 8, 3), (3, 10, 10), batch=4)
    assert b.macs == 4 * a.macs and b.act_bytes == 4 * a.act_bytes and b.params == a.params


def test_dtype_sets_bytes():
    assert one_row(nn.Conv2d(3, 8, 3), (3, 10, 10), dtype=torch.float16).act_bytes == 8 * 8 * 8 * 2
