"""A depthwise-separable net in the style of MobileNet v1 (Howard et al., 2017, arXiv:1704.04861), for
bench/roofline_accuracy.py: ``python -m archstat profile bench.mobilenet_dw:mobilenet_v1`` (from the
repository root) or ``bench/mobilenet_dw.py:mobilenet_v1`` through the bench script.

Each block is a 3x3 depthwise conv (groups = channels) + BN + ReLU, then a 1x1 pointwise conv + BN + ReLU.
Table 1 of the paper, width multiplier 1.0, input 3x224x224:

    conv 3x3/2 32 | dw/1 64 | dw/2 128 | dw/1 128 | dw/2 256 | dw/1 256 | dw/2 512 | 5 x dw/1 512 |
    dw/2 1024 | dw/1 1024 | global average pool | fc 1000
"""
from __future__ import annotations

import torch
from torch import nn

# (output channels, stride) of each depthwise-separable block
BLOCKS: list[tuple[int, int]] = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 \
    + [(1024, 2), (1024, 1)]


def conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class MobileNetV1(nn.Module):
    """MobileNet v1 (width 1.0): a plain stack of depthwise-separable blocks."""

    default_input = (3, 224, 224)

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_relu(3, 32, 3, 2)]
        c = 32
        for c_out, stride in BLOCKS:
            layers += [conv_bn_relu(c, c, 3, stride, groups=c),  # depthwise: N x c x H x W
                       conv_bn_relu(c, c_out, 1, 1)]             # pointwise: N x c_out x H x W
            c = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def mobilenet_v1(**kwargs) -> MobileNetV1:
    return MobileNetV1(**kwargs)
