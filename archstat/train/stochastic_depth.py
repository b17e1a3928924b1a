"""Stochastic depth (Huang et al. 2016) for the zoo's ResNets, applied to a built model.

Each residual block computes ``act(F(x) + shortcut(x))``; in training, stochastic depth drops
``F(x)`` for whole samples: ``F(x) * b / (1 - p)`` with ``b ~ Bernoulli(1 - p)`` drawn per sample
(torchvision's ``StochasticDepth(p, "row")``, the same formula; torchvision is not a dependency).
The drop probability rises linearly over the blocks, ``p_i = P * i / (N - 1)`` for block ``i`` of
``N``: the first block is never dropped, the last with probability ``P``.  In eval mode it is the
identity, so evaluation, checkpoints and ``archstat table`` are unchanged.

It is attached as a forward hook on the last module of each block's residual branch (``bn2`` of
a basic block, ``bn3`` of a bottleneck, the last conv of a pre-activation block), so the model's
modules and ``state_dict`` keys stay as they were.
"""
from __future__ import annotations

import torch
from torch import nn

from archstat.errors import ArchstatError


def stochastic_depth(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """torchvision's ``stochastic_depth(x, p, "row", training)``: drop whole samples, rescale the rest."""
    if not training or p == 0.0:
        return x
    survival = 1.0 - p
    noise = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(survival)
    if survival > 0.0:
        noise.div_(survival)
    return x * noise


def _branch_ends(model: nn.Module) -> list[nn.Module]:
    """The module whose output is F(x), one per residual block, in forward order."""
    from archstat.models.preact_resnet import PreActBasicBlock, PreActBottleneck
    from archstat.models.resnet import BasicBlock, Bottleneck

    ends = {BasicBlock: "bn2", Bottleneck: "bn3", PreActBasicBlock: "conv2", PreActBottleneck: "conv3"}
    return [getattr(m, ends[type(m)]) for m in model.modules() if type(m) in ends]


def apply_stochastic_depth(model: nn.Module, p: float, name: str = "model") -> list[float]:
    """Attach stochastic depth with probabilities rising linearly 0..``p``; returns them per block.

    Calling it again replaces the earlier hooks (``p == 0`` removes them).
    """
    if not 0.0 <= p < 1.0:
        raise ArchstatError(f"--stochastic-depth must be in [0, 1), got {p:g}")
    ends = _branch_ends(model)
    if not ends and p > 0:
        raise ArchstatError(f"--stochastic-depth: {name} has no zoo ResNet residual blocks (resnet*, preact_resnet*)")
    probs = [p * i / (len(ends) - 1) if len(ends) > 1 else p for i in range(len(ends))]
    for mod, pi in zip(ends, probs):
        old = getattr(mod, "_archstat_sd_hook", None)
        if old is not None:
            old.remove()
            mod._archstat_sd_hook = None
        if p > 0:
            mod._archstat_sd_hook = mod.register_forward_hook(
                lambda m, _inp, out, pi=pi: stochastic_depth(out, pi, m.training))
    return probs if p > 0 else []
