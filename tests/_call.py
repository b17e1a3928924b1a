"""One functional call as a model, for the tests that analyse or validate a single op."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class Call(nn.Module):
    """``forward(x) = fn(x)``: a root module around one call, so that archstat, fvcore and PyTorch see the op
    as a model would make it."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)
