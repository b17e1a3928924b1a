"""An independent receptive-field oracle: the input gradient of one output unit.

Written for the tests, sharing nothing with ``archstat.validation.receptive_field_check``: a float64
copy with positive constant weights (``1/fan_in``), zero biases, identity batch norm (eval, mean
0, variance 1), max pooling (adaptive too) swapped for average pooling of the same window and a positive input,
so the network is a positive linear map and every pixel in a unit's field gets a non-zero
gradient.  Hooks on conv / pool modules record each call's output; one backward per call probes
two diagonal neighbour units at once (one per sample of a batch of 2), so their first non-zero
input positions differ by the jump and their extents are the field sizes.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

PROBED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass
class Probe:
    """One module call's measured extents, per sample: ``[(first_h, last_h, first_w, last_w)] * 2``."""

    name: str
    op: str
    call: int
    units: list  # [(i, j), (i + 1, j + 1)]
    extents: list


def positive_copy(model: nn.Module) -> tuple[nn.Module, dict[str, str]]:
    """The check-mode copy, and the original class name of each module (max pools are swapped)."""
    work = copy.deepcopy(model).double().eval()
    names = {n: type(m).__name__ for n, m in work.named_modules()}
    for name, m in list(work.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.MaxPool2d):
                assert child.dilation in (1, (1, 1)), "average pooling has no dilation"
                setattr(m, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode))
            elif isinstance(child, nn.AdaptiveMaxPool2d):
                setattr(m, child_name, nn.AdaptiveAvgPool2d(child.output_size))
    with torch.no_grad():
        for m in work.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
            for pname, p in m.named_parameters(recurse=False):
                p.fill_(0.0 if "bias" in pname else (1.0 / p[0].numel() if p.dim() > 1 else 1.0))
    return work, names


def _extent(grad: torch.Tensor) -> tuple[int, int, int, int]:
    """First and last non-zero row and column of one sample's input gradient (summed over channels)."""
    nz = grad.abs().sum(0) > 0
    rows, cols = nz.any(1).nonzero().flatten(), nz.any(0).nonzero().flatten()
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def probe_fields(model: nn.Module, input_shape: tuple) -> list[Probe]:
    """Measured extents of the centre unit and its diagonal neighbour for every conv / pool call."""
    work, names = positive_copy(model)
    outputs: list[tuple[str, torch.Tensor]] = []
    qual = {m: n for n, m in work.named_modules()}
    handles = [m.register_forward_hook(lambda m, i, o: outputs.append((qual[m], o)))
               for m in work.modules() if isinstance(m, PROBED)]
    x = torch.ones(2, *input_shape, dtype=torch.float64, requires_grad=True)
    try:
        work(x)
    finally:
        for h in handles:
            h.remove()
    probes, calls = [], {}
    for name, out in outputs:
        call = calls[name] = calls.get(name, -1) + 1
        h, w = out.shape[-2:]
        if h < 2 or w < 2:
            continue
        i, j = (h - 1) // 2, (w - 1) // 2
        target = out[0, :, i, j].sum() + out[1, :, i + 1, j + 1].sum()
        (grad,) = torch.autograd.grad(target, x, retain_graph=True)
        probes.append(Probe(name, names[name], call, [(i, j), (i + 1, j + 1)], [_extent(g) for g in grad]))
    return probes
