"""Building blocks of the two GoogLeNet models: the Inception module and the auxiliary heads.

Attribute names follow torchvision's ``googlenet.py`` (``branch1`` .. ``branch4``; aux heads
``conv``/``fc1``/``fc2``/``dropout``) so the BatchNorm variant loads torchvision state_dicts.

Inception module (Table 1 columns, input C x H x W, all branches keep H x W):

    branch1: 1x1 conv -> ch1x1
    branch2: 1x1 conv -> ch3x3red, 3x3 conv (pad 1) -> ch3x3
    branch3: 1x1 conv -> ch5x5red, KxK conv (pad K//2) -> ch5x5   (K = 5 in the paper; 3 in torchvision)
    branch4: 3x3/1 max pool (pad 1), 1x1 conv -> pool_proj
    output:  concat -> ch1x1 + ch3x3 + ch5x5 + pool_proj channels

Weights = C*ch1x1 + C*ch3x3red + 9*ch3x3red*ch3x3 + C*ch5x5red + K^2*ch5x5red*ch5x5 + C*pool_proj;
multiply-adds = weights * H * W (every conv in the module runs at H x W).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from archstat.models._googlenet_table1 import InceptionCfg
from archstat.models._inception_common import ActLayer, BasicConv2d, default_act


class Inception(nn.Module):
    """The Inception module; ``conv_block`` picks conv+ReLU (paper) or conv+BN+ReLU (torchvision)."""

    def __init__(
        self,
        cfg: InceptionCfg,
        conv_block: Callable[..., nn.Module] = BasicConv2d,
        branch3_kernel: int = 3,
        pool_ceil_mode: bool = True,
        act_layer: ActLayer | None = None,
    ) -> None:
        super().__init__()
        c = cfg.in_channels
        k = branch3_kernel
        self.branch1 = conv_block(c, cfg.ch1x1, act_layer, kernel_size=1)
        self.branch2 = nn.Sequential(
            conv_block(c, cfg.ch3x3red, act_layer, kernel_size=1),
            conv_block(cfg.ch3x3red, cfg.ch3x3, act_layer, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            conv_block(c, cfg.ch5x5red, act_layer, kernel_size=1),
            conv_block(cfg.ch5x5red, cfg.ch5x5, act_layer, kernel_size=k, padding=k // 2),
        )
        self.branch4 = nn.Sequential(
            # ceil_mode is a no-op for a 3x3/1 pool with pad 1; torchvision sets it, so we mirror it
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=pool_ceil_mode),
            conv_block(c, cfg.pool_proj, act_layer, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """torchvision's auxiliary head: adaptive avg pool to 4x4, 1x1 conv 128, fc 1024, dropout, fc.

    The adaptive pool accepts any input size (torchvision's choice), so this head never limits
    the smallest input.  At 14x14 it is *not* the paper's 5x5/3 pool (windows of 4, not 5).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dropout: float = 0.7,
        act_layer: ActLayer | None = None,
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = BasicConv2d(in_channels, 128, act_layer, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.act = (act_layer or default_act)()
        self.dropout = nn.Dropout(p=dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pool(x))  # N x 128 x 4 x 4
        x = torch.flatten(x, 1)  # N x 2048
        x = self.dropout(self.act(self.fc1(x)))  # N x 1024
        return self.fc2(x)


class InceptionAuxPaper(nn.Module):
    """The paper's auxiliary classifier (Sec. 5): 5x5/3 avg pool, 1x1 conv 128 + ReLU,
    fc 1024 + ReLU, dropout 0.7, fc.

    At 224 input the (4a)/(4d) maps are 14x14 and the 5x5/3 pool gives 4x4, so fc1 sees
    128*4*4 = 2048 features.  ``AdaptiveAvgPool2d(4)`` after it is the identity there; at other
    input sizes it maps whatever the 5x5/3 pool gives (>= 1x1, i.e. a 4a/4d map >= 5x5) to 4x4,
    so the fixed-size fc1 still fits.  That is this head's only departure from the paper.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dropout: float = 0.7,
        act_layer: ActLayer | None = None,
    ) -> None:
        super().__init__()
        self.avgpool = nn.AvgPool2d(kernel_size=5, stride=3)
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = nn.Conv2d(in_channels, 128, kernel_size=1)
        self.act1 = (act_layer or default_act)()
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act2 = (act_layer or default_act)()
        self.dropout = nn.Dropout(p=dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.avgpool(x))  # N x C x 4 x 4
        x = self.act1(self.conv(x))  # N x 128 x 4 x 4
        x = torch.flatten(x, 1)  # N x 2048
        x = self.dropout(self.act2(self.fc1(x)))  # N x 1024
        return self.fc2(x)
