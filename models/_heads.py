"""The plain-CNN skeleton AlexNet, ZFNet and VGG share: features -> avgpool -> flatten -> classifier.

The classifier is two hidden fully connected layers of 4096 with the activation and (inverted)
dropout.  Where the dropout sits differs by family and fixes the state_dict indices, so it is a
parameter: torchvision's AlexNet drops *before* fc6 and fc7 (``classifier.1/.4/.6`` are the
Linears), VGG drops *after* them (``classifier.0/.3/.6``).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def fc_head(in_features: int, num_classes: int, dropout: float, act: Callable[[], nn.Module],
            dropout_first: bool, hidden: int = 4096) -> nn.Sequential:
    """fc6 -> fc7 -> fc8 with activation and dropout, in the family's own order."""
    layers: list[nn.Module] = []
    for fan_in in (in_features, hidden):
        block = [nn.Linear(fan_in, hidden), act()]
        layers += [nn.Dropout(p=dropout), *block] if dropout_first else [*block, nn.Dropout(p=dropout)]
    return nn.Sequential(*layers, nn.Linear(hidden, num_classes))


class PlainCNN(nn.Module):
    """``forward`` of a network built from ``features``, ``avgpool`` and ``classifier``."""

    features: nn.Module
    avgpool: nn.Module
    classifier: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)  # N x (C * 6 * 6) for AlexNet/ZFNet, N x 25088 for VGG
        return self.classifier(x)
