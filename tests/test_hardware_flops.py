"""The hardware FLOPs behind achieved FLOP/s and the roofline, against independent counts.

``archstat.profile``'s ``flops_hardware`` column: 2 per MAC for conv / linear (FlopCounterMode's
own count of the real module) and ``window`` per output element for pooling (the hook-based
lecture counter, which measures adaptive windows from PyTorch).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from archstat import profile
from oracles.lecture import lecture_costs

NET = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.AvgPool2d(2),
                    nn.AdaptiveAvgPool2d(3), nn.AdaptiveMaxPool2d((2, 1)), nn.Flatten(), nn.Linear(8, 5))


def test_hardware_flops_of_matrices_and_pools():
    p = profile(NET, (3, 13, 11), batch=2, warmup=1, repeat=1, layers=False, ceilings=False)
    ours = [int(v) for v, kind in zip(p.layers["flops_hardware"], p.layers["kind"])
            if kind in ("conv", "linear", "pool", "adaptive_pool")]
    expected = []
    for what, cost in lecture_costs(NET, (3, 13, 11), batch=2):
        if what in ("Conv2d", "Linear"):
            module = NET[0] if what == "Conv2d" else NET[-1]
            with FlopCounterMode(display=False) as fc:
                NET[: list(NET).index(module) + 1](torch.zeros(2, 3, 13, 11))
            before = 0 if what == "Conv2d" else 2 * lecture_costs(NET[:1], (3, 13, 11), batch=2)[0][1]
            expected.append(fc.get_total_flops() - before)
        else:
            expected.append(cost)
    assert ours == expected


class Scale(nn.Module):
    """``x * 2``: one elementwise multiply per element."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


class Mean(nn.Module):
    """A spatial mean: one add per input element."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


ELEMENTWISE = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4),
                            nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU(), nn.LocalResponseNorm(3),
                            Scale(), nn.GroupNorm(2, 4), nn.Sigmoid(), Mean(), nn.Flatten(), nn.LayerNorm(4))
# hardware FLOPs per element of the real (PyTorch) input or output of each module, by hand:
# BN 2 with running statistics (scale, shift) and 5 with the batch's (also mean, variance,
# normalise); an activation, a multiply, a norm's output: 1; LRN: the window (3) + 3; a mean: 1
# per input element; a view: 0.  (profile's rows are the eval-mode forward.)
PER_ELEMENT = [("in", 2), ("in", 5), ("out", 1), ("out", 6), ("out", 1), ("out", 1), ("out", 1), ("in", 1),
               ("out", 0), ("out", 1)]  # ELEMENTWISE[1:], in order


def test_hardware_flops_of_elementwise_ops_norms_and_reductions():
    numel: list[dict[str, int]] = []

    def record(m: nn.Module, i: tuple, o: torch.Tensor) -> None:
        numel.append({"in": i[0].numel(), "out": o.numel()})
    hooks = [m.register_forward_hook(record) for m in ELEMENTWISE[1:]]
    ELEMENTWISE.eval()(torch.randn(2, 3, 9, 8))
    for h in hooks:
        h.remove()
    expected = [n[where] * per for n, (where, per) in zip(numel, PER_ELEMENT)]
    p = profile(ELEMENTWISE, (3, 9, 8), batch=2, warmup=1, repeat=1, layers=False, ceilings=False)
    rows = p.layers[p.layers["kind"] != "conv"]
    assert [int(v) for v in rows["flops_hardware"]] == expected, list(rows["op"])
