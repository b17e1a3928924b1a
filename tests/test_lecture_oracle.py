"""The lecture convention (archstat's default ``flops``) against an independent counter.

The oracle (``tests/oracles/lecture.py``) runs the real model with forward hooks and a
TorchFunctionMode and applies the slides' rules to the sizes PyTorch produced; it shares no code
with ``archstat.formulas`` or the conventions.  Per call, the multiset of non-zero costs must be
equal (not only the totals), so two errors cannot cancel.
"""
from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from torch import nn

import archstat
from _random_nets import random_cnn
from archstat.models import get_model, list_models, model_info
from oracles.lecture import largest_bin, lecture_costs


def _archstat_costs(model: nn.Module, shape: tuple, batch: int) -> Counter:
    df = archstat.analyze(model, shape, batch=batch)
    assert not df.attrs["unsupported"], df.attrs["unsupported"]  # no silent zero
    return Counter(int(v) for v in df["flops"] if v)


def _oracle_costs(model: nn.Module, shape: tuple, batch: int, device: str = "cpu") -> Counter:
    return Counter(c for _, c in lecture_costs(model, shape, batch, device) if c)


def assert_lecture_agrees(model: nn.Module, shape: tuple, batch: int = 2, device: str = "cpu") -> None:
    ours, oracle = _archstat_costs(model, shape, batch), _oracle_costs(model, shape, batch, device)
    assert ours == oracle, f"archstat only: {ours - oracle}; oracle only: {oracle - ours}"


def test_oracle_reproduces_the_slides_pool1_and_conv1():
    """The oracle itself against the seed's AlexNet numbers (hand arithmetic on the slide)."""
    net = nn.Sequential(nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2))
    costs = [c for _, c in lecture_costs(net, (3, 227, 227))]
    assert costs == [64 * 56 * 56 * 3 * 11 * 11, 64 * 27 * 27 * 3 * 3]  # pool1 = 419,904
    assert costs[1] == 419_904


def test_largest_bin_is_measured_from_pytorch():
    assert [largest_bin(7, o) for o in (1, 2, 3, 7)] == [7, 4, 3, 1]
    assert largest_bin(5, 3) == 3 and largest_bin(10, 4) == 3  # bins [0,2) [1,4) [3,5); [0,3) [2,5) [5,8) [7,10)


@pytest.mark.parametrize("name", list_models())
def test_zoo_lecture_flops_match_the_hook_counter(name: str):
    """Every zoo model at its default input, batch 2, on the meta device (no weights allocated)."""
    assert_lecture_agrees(get_model(name, device="meta"), model_info(name).default_input, device="meta")


class FunctionalNet(nn.Module):
    """Functional convs (1-d, 2-d, 3-d), matrix products and functional pools: rows of their own."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(4, 2, 3))        # conv1d, 2 groups
        self.w2 = nn.Parameter(torch.randn(6, 4, 3, 2))     # conv2d
        self.w3 = nn.Parameter(torch.randn(2, 6, 1, 3, 3))  # conv3d
        self.up = nn.ConvTranspose2d(6, 4, 3, stride=2, groups=2, dilation=2, output_padding=1)

    def forward(self, x):  # N x 4 x 9 x 10
        n, c, h, w = x.shape
        y = F.conv1d(x.flatten(2), self.w1, groups=2, stride=2, padding=1)  # N x 4 x 45
        x = x + y.mean()
        x = F.conv2d(x, self.w2, padding=(1, 0), dilation=(2, 1))           # N x 6 x 7 x 9
        x = F.max_pool2d(x, 3, 2, 1, ceil_mode=True)                         # N x 6 x 4 x 5
        x = x + F.max_pool2d(x, 3, 1, 1, return_indices=True)[0]             # max_pool2d_with_indices
        z = F.conv3d(x.unsqueeze(2), self.w3, padding=(0, 1, 1))             # N x 2 x 1 x 4 x 5
        x = self.up(x) + 0 * z.sum()                                         # N x 4 x 10 x 12
        x = F.avg_pool2d(x, (2, 3), ceil_mode=True, padding=1)               # N x 4 x 6 x 5
        x = F.adaptive_max_pool2d(x, (4, 3))                                 # largest bins 2 and 2
        m = x.flatten(2) @ x.flatten(2).transpose(1, 2)                      # N x 4 x 4, k = 12
        return torch.matmul(m, torch.ones(4, 3)) + F.adaptive_avg_pool1d(m, 3).sum()


def test_functional_ops_match_the_hook_counter():
    assert_lecture_agrees(FunctionalNet(), (4, 9, 10))


@given(random_cnn())
@settings(max_examples=max(1, settings.default.max_examples * 5 // 8))
def test_random_cnn_lecture_flops_match_the_hook_counter(case):
    net, shape = case
    assert_lecture_agrees(net, shape)
