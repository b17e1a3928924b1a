"""The lecture's sub-networks as tiny modules, so that their costs are computed, not asserted.

- VGG's design rule: one 5x5 conv (25 C^2 params, 25 C^2 HW MACs) against two 3x3 convs
  (18 C^2, 18 C^2 HW) with the same 5x5 receptive field.
- The naive Inception module on 28x28x256 (1x1 128, 3x3 192, 5x5 96, 3x3 max pool -> 672
  channels, 854M multiply-adds) against the bottleneck one (1x1 reductions to 64 before the 3x3
  and 5x5, 1x1 64 after the pool -> 480 channels, 271M).
- The residual blocks: basic (two 3x3, C -> C: 18 HWC^2) against bottleneck (1x1 4C -> C, 3x3,
  1x1 C -> 4C: 17 HWC^2).  No biases, as the slides count.
"""
from __future__ import annotations

import torch
from torch import nn


def conv(c_in: int, c_out: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)


class Branches(nn.Module):
    """Parallel branches on one input, concatenated along channels (an Inception module)."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)


def naive_inception(c: int = 256) -> nn.Module:
    return Branches(conv(c, 128, 1), conv(c, 192, 3), conv(c, 96, 5), nn.MaxPool2d(3, 1, 1))


def bottleneck_inception(c: int = 256) -> nn.Module:
    return Branches(
        conv(c, 128, 1),
        nn.Sequential(conv(c, 64, 1), conv(64, 192, 3)),
        nn.Sequential(conv(c, 64, 1), conv(64, 96, 5)),
        nn.Sequential(nn.MaxPool2d(3, 1, 1), conv(c, 64, 1)),
    )


def one_5x5(c: int) -> nn.Module:
    return conv(c, c, 5)


def two_3x3(c: int) -> nn.Module:
    return nn.Sequential(conv(c, c, 3), nn.ReLU(), conv(c, c, 3))


class Residual(nn.Module):
    """x + F(x): the shortcut adds no multiply-adds."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def basic_block(c: int) -> nn.Module:
    return Residual(nn.Sequential(conv(c, c, 3), nn.ReLU(), conv(c, c, 3)))


def bottleneck_block(c: int) -> nn.Module:
    return Residual(nn.Sequential(conv(4 * c, c, 1), nn.ReLU(), conv(c, c, 3), nn.ReLU(), conv(c, 4 * c, 1)))
