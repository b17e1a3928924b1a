"""Optimizers and learning-rate schedules, as per-iteration multipliers of the base LR.

With ``t`` the iteration (0-based), ``T`` the total number of iterations and ``w`` the warm-up:

* ``constant``:     ``1`` (the lecture's step 5, "train longer without LR decay");
* ``step``:         ``0.1 ** (number of milestones <= t / T)``, milestones at 50% and 75% by default;
* ``cosine``:       ``(1 + cos(pi t / T)) / 2`` (Loshchilov & Hutter 2017, no restarts);
* ``linear``:       ``1 - t / T`` (linear decay to 0);
* ``inverse-sqrt``: ``sqrt(max(w, 1) / max(t + 1, w))`` (Vaswani et al. 2017: flat at 1 until the
  warm-up ends, then ``1 / sqrt(t)``);
* ``cyclic``:       cosine annealing restarted every ``T / K`` iterations, ``K`` cycles (Huang et al.
  2017's snapshot-ensemble schedule: the model is saved at the end of each cycle, where the LR is
  at its minimum).

An optional linear warm-up multiplies the first ``warmup`` iterations by ``(t + 1) / warmup``.

Optimizers: ``sgd`` (heavy-ball momentum), ``adam``, ``adamw`` (decoupled weight decay) and
``rmsprop``.  By default biases and normalisation weights (every parameter with one dimension or
fewer) get no weight decay: shrinking a BatchNorm scale or a bias does not regularise the function
the way shrinking a conv kernel does (the timm and torchvision reference recipes exclude them too).
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch import nn

from archstat.errors import ArchstatError

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "linear", "inverse-sqrt", "cyclic")


def check_choice(kind: str, name: str, choices: tuple[str, ...]) -> str:
    """``name`` if it is one of ``choices``, else one line naming them (exit 2 at the CLI)."""
    if name not in choices:
        raise ArchstatError(f"unknown {kind} {name!r}; use one of {', '.join(choices)}")
    return name


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = False) -> list[dict]:
    """The trainable parameters in two groups: decayed (>= 2 dims) and not (biases, norm weights)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if decay_norm_and_bias:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0})
            if g["params"]]


def build_optimizer(params: Iterable[torch.nn.Parameter] | list[dict], name: str, lr: float, weight_decay: float,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """SGD with (heavy-ball) momentum, Adam, AdamW (decoupled weight decay) or RMSprop."""
    if lr <= 0 or weight_decay < 0:
        raise ArchstatError(f"need lr > 0 and weight decay >= 0, got lr={lr}, weight decay={weight_decay}")
    check_choice("optimizer", name, OPTIMIZERS)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def _base_factor(name: str, total: int, cycles: int, milestones: tuple[float, ...], warmup: int) -> Callable[[int], float]:
    if name == "constant":
        return lambda t: 1.0
    if name == "step":
        return lambda t: 0.1 ** sum(t >= m * total for m in milestones)
    if name == "cosine":
        return lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total))
    if name == "linear":
        return lambda t: max(0.0, 1.0 - t / total)
    if name == "inverse-sqrt":
        w = max(warmup, 1)
        return lambda t: math.sqrt(w / max(t + 1, w))
    if cycles < 1:
        raise ArchstatError(f"--cycles must be >= 1, got {cycles}")
    period = total / cycles
    return lambda t: 0.5 * (1 + math.cos(math.pi * (t % period) / period))


def lr_factor(name: str, total: int, *, cycles: int = 1, milestones: tuple[float, ...] = (0.5, 0.75),
              warmup: int = 0) -> Callable[[int], float]:
    """The multiplier ``f(t)`` of the base LR at iteration ``t`` (see the module docstring)."""
    check_choice("schedule", name, SCHEDULES)
    base = _base_factor(name, max(total, 1), cycles, milestones, warmup)
    if warmup <= 0:
        return base
    return lambda t: base(t) * min(1.0, (t + 1) / warmup)


def build_scheduler(opt: torch.optim.Optimizer, name: str, total: int, **kw) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` stepped once per iteration (so schedules are exact for any epoch count)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(name, total, **kw))


def cycle_ends(total: int, cycles: int) -> list[int]:
    """Iterations (1-based counts) after which a cyclic schedule is at its minimum: snapshot points."""
    return [round(total * (k + 1) / cycles) for k in range(cycles)]
