"""Small models with several inputs, importable by the CLI as ``_several_inputs_models:NAME``."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

VOCAB = 50


class ImageTokens(nn.Module):
    """An image through a conv encoder and int64 tokens through an embedding table (indexed with
    ``table[tokens]``, a gather), joined by a linear head."""

    default_input = (3, 16, 16)

    def __init__(self, vocab: int = VOCAB, dim: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.table = nn.Parameter(torch.randn(vocab, dim))
        self.head = nn.Linear(8 + dim, 10)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        a = self.pool(torch.relu(self.conv(image))).flatten(1)  # N x 8
        b = self.table[tokens].mean(1)  # N x L x dim -> N x dim
        return self.head(torch.cat([a, b], 1))


class Masked(nn.Module):
    """A sequence ``x`` (N x L x 12) and a boolean ``mask`` (N x L): masked positions are zeroed
    before the mean over the sequence.  ``mask`` is optional, so it can be given by keyword."""

    default_input = (6, 12)

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(12, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = torch.relu(self.proj(x))  # N x L x 16
        h = torch.where(mask.unsqueeze(-1), h, torch.zeros_like(h))
        return self.head(h.mean(1))


class OptionalScale(nn.Module):
    """Optional arguments the call may leave at their defaults: ``scale=None`` skips a multiply and
    ``double=False`` an add, as a real call without them does."""

    default_input = (3, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor, scale: Optional[torch.Tensor] = None, double: bool = False) -> torch.Tensor:
        y = self.conv(x)
        if scale is not None:
            y = y * scale.float()
        if double:
            y = y + y
        return y


class SortValues(nn.Module):
    """Ops without a formula that return a named pair (``sort``, ``topk``), read by field name."""

    default_input = (3, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).sort(dim=-1).values
        y = torch.topk(y, 2, dim=-1).values
        gram = y.transpose(-1, -2) @ y  # N x 4 x 2 x 2
        return torch.relu(torch.linalg.eigh(gram).eigenvalues)  # fields of other shapes: N x 4 x 2, N x 4 x 2 x 2
