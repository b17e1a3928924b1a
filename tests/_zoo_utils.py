"""Small helpers shared by the tests/test_zoo_*.py files.

``analyze_macs`` is archstat's own count (fx trace + formulas).  ``count_macs`` is an independent
cross-check that runs the model: it counts conv and linear multiply-accumulates with forward hooks
on a meta-device model (no weights are allocated), under the project's MAC convention:
Conv2d: C_out * H_out * W_out * (C_in / groups) * kh * kw;  Linear: in * out;  bias is not a MAC.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from archstat.models import get_model


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Conv + linear MACs of one sample through ``model`` (best on a meta-device model)."""
    total = 0

    def hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        per_sample_out = out.numel() // out.shape[0]
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            total += per_sample_out * (m.in_channels // m.groups) * kh * kw
        else:
            total += per_sample_out * m.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        model(torch.empty(1, *input_shape, device=device))
    for h in handles:
        h.remove()
    return total


def analyze_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Total MACs of one sample by ``archstat.engine.analyze`` (nothing is run or allocated)."""
    import archstat

    df = archstat.analyze(model, input_shape)
    assert not df.attrs["unsupported"], df.attrs["unsupported"]  # no op silently counted as 0
    return int(df["macs"].sum())


def meta_macs(name: str, input_shape: tuple[int, ...] | None = None, **kwargs) -> int:
    from archstat.models import model_info

    shape = input_shape or model_info(name).default_input
    return count_macs(get_model(name, device="meta", **kwargs), shape)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def layout(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of every state_dict entry, in order."""
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run small-tensor work on one intra-op thread.

    On a loaded 2-core machine, two OpenMP threads wait on each other at every op: a ResNet-18
    step at 3x32x32 measured 0.11 s on one thread against 3-8 s on two.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def forward_backward(model: nn.Module, input_shape: tuple[int, ...], batch: int = 2) -> torch.Tensor:
    """One train-mode forward + backward and one eval-mode forward; returns the eval logits.

    Checks that every parameter that should learn gets a finite gradient.
    """
    with one_thread():
        return _forward_backward(model, input_shape, batch)


def _forward_backward(model: nn.Module, input_shape: tuple[int, ...], batch: int) -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.randn(batch, *input_shape)
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(x)
    assert out.ndim == 2 and out.shape[0] == batch
    loss = nn.functional.cross_entropy(out, torch.zeros(batch, dtype=torch.long))
    assert math.isfinite(loss.item())
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    # a sum is finite iff every element is (up to overflow), and far cheaper than isfinite().all()
    assert all(g is not None and torch.isfinite(g.sum()) for g in grads)
    model.eval()
    with torch.no_grad():
        return model(x)


def fails_at(model: nn.Module, input_shape: tuple[int, ...], batch: int = 2) -> bool:
    """True when a train- or eval-mode forward at ``input_shape`` raises."""
    x = torch.randn(batch, *input_shape, device=next(model.parameters()).device)
    try:
        with torch.no_grad():
            for mode in (True, False):
                model.train(mode)
                model(x)
    except (RuntimeError, ValueError):
        return True
    return False
