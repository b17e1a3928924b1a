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
