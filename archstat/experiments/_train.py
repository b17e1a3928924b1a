"""A minimal, seeded full-batch-in-memory training loop for the experiments' small comparisons.

The experiments compare *the same* budget across variants (activations, preprocessing, depth),
so they need identical batches and steps for every variant and the loss at every step, not
checkpoints or schedules: that is all this does.  ``archstat train`` is the full recipe.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn
import torch.nn.functional as F


@dataclass
class Budget:
    """Same for every variant of one comparison."""

    epochs: int
    batch: int = 64
    lr: float = 0.05
    optimizer: str = "sgd"  # "sgd" (momentum 0.9) or "adam"
    weight_decay: float = 0.0


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, budget: Budget, *, seed: int,
          on_epoch: Optional[Callable[[int], None]] = None) -> list[float]:
    """Train in place; return the training loss of every step (train mode, before the update).

    ``on_epoch(e)`` is called as epoch e (1-based) starts: the experiments' progress bars.

    The batch order depends on ``seed`` only, so two variants trained with the same seed see the
    same images in the same order.  A step whose loss is not finite stops training (the variant
    diverged); the remaining steps are recorded as NaN so that curves keep their length.
    """
    gen = torch.Generator().manual_seed(seed)
    if budget.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=budget.lr,
                                                      weight_decay=budget.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=budget.lr, momentum=0.9, weight_decay=budget.weight_decay)
    losses: list[float] = []
    steps_per_epoch = -(-len(x) // budget.batch)
    model.train()
    for epoch in range(budget.epochs):
        if on_epoch is not None:
            on_epoch(epoch + 1)
        for idx in torch.randperm(len(x), generator=gen).split(budget.batch):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            if not torch.isfinite(loss):
                losses += [float("nan")] * (budget.epochs * steps_per_epoch - len(losses))
                return losses
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


@torch.no_grad()
def recalibrate_bn(model: nn.Module, x: torch.Tensor, batch: int = 256) -> None:
    """Replace BN running statistics by their exact average over ``x`` ("precise BN").

    After a short, high-LR run the exponential running averages lag the weights, so an eval-mode
    loss would measure the lag, not the fit.  With ``momentum=None`` BN keeps a cumulative average.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(0, len(x), batch):
        model(x[i:i + batch])
    for m, mom in zip(bns, saved):
        m.momentum = mom


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) in eval mode."""
    model.eval()
    total, correct = 0.0, 0
    for i in range(0, len(x), batch):
        out = model(x[i:i + batch])
        total += F.cross_entropy(out, y[i:i + batch], reduction="sum").item()
        correct += int((out.argmax(1) == y[i:i + batch]).sum())
    return total / len(x), correct / len(x)


def epoch_means(losses: list[float], steps_per_epoch: int) -> list[float]:
    """Mean training loss of each epoch (NaN once diverged)."""
    t = torch.tensor(losses, dtype=torch.float64).view(-1, steps_per_epoch)
    return t.mean(1).tolist()
