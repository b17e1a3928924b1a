"""Inception-v4 modules (Szegedy, Ioffe, Vanhoucke, Alemi 2016, arXiv:1602.07261, Figs. 3-8).

Every convolution is conv(bias=False) + BatchNorm(eps=0.001) + ReLU (``BasicConv2d``); "V" in
the paper's figures means valid (unpadded), every other conv is "same".  Spatial sizes at a
299x299 input in brackets.

- Stem (Fig. 3) [299 -> 35]: 3x3/2 32 V, 3x3 32 V, 3x3 64; {3x3/2 max pool V | 3x3/2 96 V} -> 160;
  {1x1 64, 3x3 96 V | 1x1 64, 7x1 64, 1x7 64, 3x3 96 V} -> 192; {3x3/2 192 V | 3x3/2 max pool V} -> 384.
- Inception-A (Fig. 4) [35]: 1x1 96 | 1x1 64, 3x3 96 | 1x1 64, 3x3 96, 3x3 96 | avg pool, 1x1 96 -> 384.
- Reduction-A (Fig. 7) [35 -> 17]: 3x3/2 n V | 1x1 k, 3x3 l, 3x3/2 m V | 3x3/2 max pool V -> n + m + C;
  Inception-v4 uses k, l, m, n = 192, 224, 256, 384 (Table 1), so 384 -> 1024.
- Inception-B (Fig. 5) [17]: 1x1 384 | 1x1 192, 1x7 224, 7x1 256 |
  1x1 192, 1x7 192, 7x1 224, 1x7 224, 7x1 256 | avg pool, 1x1 128 -> 1024.
- Reduction-B (Fig. 8) [17 -> 8]: 1x1 192, 3x3/2 192 V | 1x1 256, 1x7 256, 7x1 320, 3x3/2 320 V |
  3x3/2 max pool V -> 192 + 320 + 1024 = 1536.
- Inception-C (Fig. 6) [8]: 1x1 256 | 1x1 384, {1x3 256, 3x1 256} |
  1x1 384, 1x3 448, 3x1 512, {1x3 256, 3x1 256} | avg pool, 1x1 256 -> 1536.

Branches are concatenated in the order 1x1, 3x3-ish, double, pool (TensorFlow-slim's order).
The TF-slim / Cadene / timm port puts 7x1 before 1x7 (and 3x1 before 1x3) in some chains where
the figures draw the opposite order; parameter and multiply-add counts are identical either way.
Average pools are 3x3/1 with padding excluded from the mean (TensorFlow "SAME" semantics).
"""
from __future__ import annotations

import torch
from torch import nn

from archstat.models._inception_common import ActLayer, BasicConv2d


def _chain(act: ActLayer | None, *specs: tuple) -> nn.Sequential:
    """Convs from (in, out, kernel, stride, padding) tuples."""
    return nn.Sequential(*(BasicConv2d(i, o, act, kernel_size=k, stride=s, padding=p)
                           for i, o, k, s, p in specs))


def _avg_pool() -> nn.AvgPool2d:
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


_1x7, _7x1 = ((1, 7), 1, (0, 3)), ((7, 1), 1, (3, 0))
_1x3, _3x1 = ((1, 3), 1, (0, 1)), ((3, 1), 1, (1, 0))


class Stem(nn.Module):
    def __init__(self, in_channels: int = 3, act: ActLayer | None = None) -> None:
        super().__init__()
        self.conv = _chain(act, (in_channels, 32, 3, 2, 0), (32, 32, 3, 1, 0), (32, 64, 3, 1, 1))
        self.mixed_3a_pool = nn.MaxPool2d(3, stride=2)
        self.mixed_3a_conv = BasicConv2d(64, 96, act, kernel_size=3, stride=2)
        self.mixed_4a_0 = _chain(act, (160, 64, 1, 1, 0), (64, 96, 3, 1, 0))
        self.mixed_4a_1 = _chain(act, (160, 64, 1, 1, 0), (64, 64, *_7x1), (64, 64, *_1x7),
                                 (64, 96, 3, 1, 0))
        self.mixed_5a_conv = BasicConv2d(192, 192, act, kernel_size=3, stride=2)
        self.mixed_5a_pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # N x 64 x 147 x 147
        x = torch.cat([self.mixed_3a_pool(x), self.mixed_3a_conv(x)], 1)  # N x 160 x 73 x 73
        x = torch.cat([self.mixed_4a_0(x), self.mixed_4a_1(x)], 1)  # N x 192 x 71 x 71
        return torch.cat([self.mixed_5a_conv(x), self.mixed_5a_pool(x)], 1)  # N x 384 x 35 x 35


class InceptionA(nn.Module):
    def __init__(self, in_channels: int = 384, act: ActLayer | None = None) -> None:
        super().__init__()
        c = in_channels
        self.branch1x1 = _chain(act, (c, 96, 1, 1, 0))
        self.branch3x3 = _chain(act, (c, 64, 1, 1, 0), (64, 96, 3, 1, 1))
        self.branch3x3dbl = _chain(act, (c, 64, 1, 1, 0), (64, 96, 3, 1, 1), (96, 96, 3, 1, 1))
        self.branch_pool = nn.Sequential(_avg_pool(), BasicConv2d(c, 96, act, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x), self.branch3x3(x), self.branch3x3dbl(x),
                          self.branch_pool(x)], 1)


class ReductionA(nn.Module):
    def __init__(self, in_channels: int, k: int, l: int, m: int, n: int,  # noqa: E741 (paper's names)
                 act: ActLayer | None = None) -> None:
        super().__init__()
        self.branch3x3 = _chain(act, (in_channels, n, 3, 2, 0))
        self.branch3x3dbl = _chain(act, (in_channels, k, 1, 1, 0), (k, l, 3, 1, 1), (l, m, 3, 2, 0))
        self.branch_pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(x)], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels: int = 1024, act: ActLayer | None = None) -> None:
        super().__init__()
        c = in_channels
        self.branch1x1 = _chain(act, (c, 384, 1, 1, 0))
        self.branch7x7 = _chain(act, (c, 192, 1, 1, 0), (192, 224, *_1x7), (224, 256, *_7x1))
        self.branch7x7dbl = _chain(act, (c, 192, 1, 1, 0), (192, 192, *_1x7), (192, 224, *_7x1),
                                   (224, 224, *_1x7), (224, 256, *_7x1))
        self.branch_pool = nn.Sequential(_avg_pool(), BasicConv2d(c, 128, act, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x), self.branch7x7(x), self.branch7x7dbl(x),
                          self.branch_pool(x)], 1)


class ReductionB(nn.Module):
    def __init__(self, in_channels: int = 1024, act: ActLayer | None = None) -> None:
        super().__init__()
        c = in_channels
        self.branch3x3 = _chain(act, (c, 192, 1, 1, 0), (192, 192, 3, 2, 0))
        self.branch7x7x3 = _chain(act, (c, 256, 1, 1, 0), (256, 256, *_1x7), (256, 320, *_7x1),
                                  (320, 320, 3, 2, 0))
        self.branch_pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch3x3(x), self.branch7x7x3(x), self.branch_pool(x)], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels: int = 1536, act: ActLayer | None = None) -> None:
        super().__init__()
        c = in_channels
        self.branch1x1 = _chain(act, (c, 256, 1, 1, 0))
        self.branch3x3_1 = _chain(act, (c, 384, 1, 1, 0))
        self.branch3x3_2a = _chain(act, (384, 256, *_1x3))
        self.branch3x3_2b = _chain(act, (384, 256, *_3x1))
        self.branch3x3dbl_1 = _chain(act, (c, 384, 1, 1, 0), (384, 448, *_1x3), (448, 512, *_3x1))
        self.branch3x3dbl_2a = _chain(act, (512, 256, *_1x3))
        self.branch3x3dbl_2b = _chain(act, (512, 256, *_3x1))
        self.branch_pool = nn.Sequential(_avg_pool(), BasicConv2d(c, 256, act, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        bd = self.branch3x3dbl_1(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_2a(bd), self.branch3x3dbl_2b(bd),
                          self.branch_pool(x)], 1)
