"""A tiny CNN for smoke tests, the DDP test and quick demos (not a zoo architecture).

conv3x3(C->w) - BN - ReLU - maxpool2 - conv3x3(w->2w) - BN - ReLU - adaptive avgpool 4x4 -
linear(32w -> K).  3,842 parameters at w = 8 on one-channel digits; it fits them in seconds.  The last layer
starts small (std 0.01) so that the initial loss is ln K, like the zoo's.
"""
from __future__ import annotations

from torch import nn

from archstat.models.init import init_weights


def tiny_cnn(num_classes: int = 10, in_channels: int = 1, width: int = 8) -> nn.Sequential:
    """Works from 2x2 inputs up (the adaptive pool repeats pixels of smaller maps)."""
    model = nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(32 * width, num_classes),
    )
    init_weights(model)
    return model


tiny_cnn.default_input = (1, 16, 16)  # type: ignore[attr-defined]
