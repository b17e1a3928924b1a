"""Optimizers and learning-rate schedules, as per-iteration multipliers of the base LR.

With ``t`` the iteration (0-based) and ``T`` the total number of iterations:

* ``constant``: ``1`` (the lecture's step 5, "train longer without LR decay");
* ``step``:     ``0.1 ** (number of milestones <= t / T)``, milestones at 50% and 75% by default;
* ``cosine``:   ``(1 + cos(pi t / T)) / 2`` (Loshchilov & Hutter 2017, no restarts);
* ``cyclic``:   cosine annealing restarted every ``T / K`` iterations, ``K`` cycles (Huang et al.
  2017's snapshot-ensemble schedule: the model is saved at the end of each cycle, where the LR is
  at its minimum).

An optional linear warm-up multiplies the first ``warmup`` iterations by ``(t + 1) / warmup``.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch

from archstat.errors import ArchstatError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "step", "cosine", "cyclic")


def build_optimizer(params: Iterable[torch.nn.Parameter], name: str, lr: float, weight_decay: float,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """SGD with (heavy-ball) momentum or AdamW (decoupled weight decay)."""
    if lr <= 0 or weight_decay < 0:
        raise ArchstatError(f"need lr > 0 and weight decay >= 0, got lr={lr}, weight decay={weight_decay}")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ArchstatError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")


def lr_factor(name: str, total: int, *, cycles: int = 1, milestones: tuple[float, ...] = (0.5, 0.75),
              warmup: int = 0) -> Callable[[int], float]:
    """The multiplier ``f(t)`` of the base LR at iteration ``t`` (see the module docstring)."""
    total = max(total, 1)
    if name == "constant":
        base: Callable[[int], float] = lambda t: 1.0
    elif name == "step":
        base = lambda t: 0.1 ** sum(t >= m * total for m in milestones)
    elif name == "cosine":
        base = lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total))
    elif name == "cyclic":
        if cycles < 1:
            raise ArchstatError(f"--cycles must be >= 1, got {cycles}")
        period = total / cycles
        base = lambda t: 0.5 * (1 + math.cos(math.pi * (t % period) / period))
    else:
        raise ArchstatError(f"unknown schedule {name!r}; use one of {', '.join(SCHEDULES)}")
    if warmup <= 0:
        return base
    return lambda t: base(t) * min(1.0, (t + 1) / warmup)


def build_scheduler(opt: torch.optim.Optimizer, name: str, total: int, **kw) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` stepped once per iteration (so schedules are exact for any epoch count)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(name, total, **kw))


def cycle_ends(total: int, cycles: int) -> list[int]:
    """Iterations (1-based counts) after which a cyclic schedule is at its minimum: snapshot points."""
    return [round(total * (k + 1) / cycles) for k in range(cycles)]
