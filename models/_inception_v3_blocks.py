"""Inception v3 modules (Szegedy et al. 2016, "Rethinking the Inception Architecture"), in
torchvision's layout: the same class roles (A..E, Aux) and attribute names, so that
``Inception3`` state_dicts load with ``strict=True``.

Channel bookkeeping (input C, spatial H x W):
- A (35x35, Fig. 5): 1x1 64 | 1x1 48 -> 5x5 64 | 1x1 64 -> 3x3 96 -> 3x3 96 | avg 3x3 -> 1x1 pool_features;
  out 224 + pool_features.
- B (grid reduction 35 -> 17, Fig. 10): 3x3/2 384 | 1x1 64 -> 3x3 96 -> 3x3/2 96 | max 3x3/2; out 480 + C.
- C (17x17, Fig. 6, 7x7 factorised into 1x7 and 7x1): 1x1 192 | 1x1 c7 -> 1x7 c7 -> 7x1 192 |
  1x1 c7 -> 7x1 -> 1x7 -> 7x1 -> 1x7 192 | avg -> 1x1 192; out 768.
- D (17 -> 8): 1x1 192 -> 3x3/2 320 | 1x1 192 -> 1x7 -> 7x1 -> 3x3/2 192 | max 3x3/2; out 512 + C.
- E (8x8, Fig. 7, expanded filter bank): 1x1 320 | 1x1 384 -> {1x3, 3x1} 384 each |
  1x1 448 -> 3x3 384 -> {1x3, 3x1} 384 each | avg -> 1x1 192; out 2048.
- Aux (on the 17x17x768 map): avg 5x5/3 -> 5x5, 1x1 128, 5x5 conv 768 (valid) -> 1x1, fc.
  The 5x5 valid conv needs the pooled map >= 5x5, i.e. a 17x17 input map, which only a
  >= 299x299 network input gives: the aux head is what sets Inception v3's training-mode minimum.
Average pools are ``F.avg_pool2d(.., 3, 1, 1)`` with padding counted, as in torchvision.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archstat.models._inception_common import ActLayer, BasicConv2d


class InceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int, act_layer: ActLayer | None = None) -> None:
        super().__init__()
        a = act_layer
        self.branch1x1 = BasicConv2d(in_channels, 64, a, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, a, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, a, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, a, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, a, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, a, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, a, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels: int, act_layer: ActLayer | None = None) -> None:
        super().__init__()
        a = act_layer
        self.branch3x3 = BasicConv2d(in_channels, 384, a, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, a, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, a, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, a, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels: int, channels_7x7: int, act_layer: ActLayer | None = None) -> None:
        super().__init__()
        a, c7 = act_layer, channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, a, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, a, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, a, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, a, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, a, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, a, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, a, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, a, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, a, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, a, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        bd = self.branch7x7dbl_3(self.branch7x7dbl_2(bd))
        bd = self.branch7x7dbl_5(self.branch7x7dbl_4(bd))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    def __init__(self, in_channels: int, act_layer: ActLayer | None = None) -> None:
        super().__init__()
        a = act_layer
        self.branch3x3_1 = BasicConv2d(in_channels, 192, a, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, a, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, a, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, a, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, a, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, a, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(b7))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class InceptionE(nn.Module):
    def __init__(self, in_channels: int, act_layer: ActLayer | None = None) -> None:
        super().__init__()
        a = act_layer
        self.branch1x1 = BasicConv2d(in_channels, 320, a, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, a, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, a, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, a, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, a, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, a, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, a, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, a, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, a, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([b1, b3, bd, bp], 1)


class InceptionAux(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, act_layer: ActLayer | None = None) -> None:
        super().__init__()
        self.conv0 = BasicConv2d(in_channels, 128, act_layer, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, act_layer, kernel_size=5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, kernel_size=5, stride=3)  # N x 768 x 5 x 5 (from 17 x 17)
        x = self.conv1(self.conv0(x))  # N x 768 x 1 x 1
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.fc(torch.flatten(x, 1))  # N x num_classes
