"""Polyak / exponential moving average of the weights, with the decay warmed up.

After each optimizer step ``t`` (0-based) the averaged weights move towards the trained ones:

    d_t = min(d, (1 + t) / (10 + t))               (timm's warm-up of the decay)
    theta_ema <- d_t * theta_ema + (1 - d_t) * theta

Without the warm-up, the average of a short run is mostly the random initialisation: after ``T``
steps at a fixed ``d`` the initial weights still carry ``d ** T`` of the mass (0.995 ** 128 = 0.53
for resnet18's 8 epochs on digits, which scored at chance).  With it, early steps follow the model
closely and the decay reaches ``d`` only once ``t >= (10 d - 1) / (1 - d)`` (1,791 steps at 0.995).

BatchNorm running statistics are buffers, not weights: they are copied from the model at every step
and, at the end of training, :meth:`EMA.recompute_batchnorm` re-estimates them for the averaged
weights with one pass over the training images (the statistics of averaged weights are not the
average of the statistics).
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

WARMUP_OFFSET = 10  # d_t = min(d, (1 + t) / (WARMUP_OFFSET + t))


def warmed_decay(decay: float, updates: int) -> float:
    """The decay used at update number ``updates`` (0-based)."""
    return min(decay, (1 + updates) / (WARMUP_OFFSET + updates))


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class EMA:
    """A frozen copy of ``model`` whose parameters are the warmed-up EMA of the model's."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.warmup, self.updates = decay, warmup, 0

    def current_decay(self) -> float:
        return warmed_decay(self.decay, self.updates) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step towards ``model`` (the unwrapped module, not its DDP wrapper)."""
        d = self.current_decay()
        for e, p in zip(self.module.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in zip(self.module.buffers(), model.buffers()):
            e.copy_(b)
        self.updates += 1

    @torch.no_grad()
    def recompute_batchnorm(self, x: torch.Tensor, batch: int = 256) -> None:
        """Re-estimate every BatchNorm's running mean/var for the averaged weights on images ``x``."""
        bns = [m for m in self.module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not bns or len(x) == 0:
            return
        device = next(self.module.parameters()).device
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the whole pass
        self.module.train()
        for i in range(0, len(x), batch):
            self.module(x[i:i + batch].to(device))
        self.module.eval()
        for m, mom in zip(bns, momenta):
            m.momentum = mom

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
