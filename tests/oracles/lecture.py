"""An independent lecture-convention counter (the EECS 498 slides' FLOPs).

Rules, from the slides (not from archstat's code): a conv / linear / matrix product costs its
multiply-accumulates; a pooling layer costs ``K*K`` (the window's element count) per output
element; everything else costs 0.  Adaptive pools use the window of their largest bin.

How it counts: forward hooks on the real modules read the sizes PyTorch really produced
(``out.numel()``), and a ``TorchFunctionMode`` catches the functional forms (``F.conv2d``,
``x @ y``, ``F.max_pool2d``...) that run outside a hooked module.  The adaptive window is
measured from PyTorch itself: pooling the identity matrix gives ``1/len(bin)`` for each bin.
Runs on any device, ``meta`` included (no weights needed), except the tiny CPU window probe.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
ADAPTIVE = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
            nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
HOOKED = CONV + CONV_T + POOL + ADAPTIVE + (nn.Linear,)


@functools.lru_cache(maxsize=None)
def largest_bin(size: int, out: int) -> int:
    """Length of adaptive pooling's largest bin, measured: ``adaptive_avg_pool1d(eye)`` is
    ``1/len(bin)`` where a bin covers the pixel, so the smallest non-zero value is ``1/max len``."""
    probe = F.adaptive_avg_pool1d(torch.eye(size, dtype=torch.float64).unsqueeze(0), out)
    return round(1.0 / probe[probe > 0].min().item())


def _as_tuple(v: Any, dims: int) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * dims


def _first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


def _conv(w: torch.Tensor, out: torch.Tensor) -> int:
    """weight is (C_out, C_in/groups, *k): each output element reads C_in/groups * prod(k) inputs."""
    return out.numel() * math.prod(w.shape[1:])


def _conv_t(x: torch.Tensor, w: torch.Tensor) -> int:
    """weight is (C_in, C_out/groups, *k): each input element is scattered to C_out/groups * prod(k)."""
    return x.numel() * math.prod(w.shape[1:])


def _adaptive(x: torch.Tensor, out: torch.Tensor, dims: int) -> int:
    window = math.prod(largest_bin(int(i), int(o)) for i, o in zip(x.shape[-dims:], out.shape[-dims:]))
    return out.numel() * window


def _module_cost(m: nn.Module, x: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(m, CONV):
        return _conv(m.weight, out)
    if isinstance(m, CONV_T):
        return _conv_t(x, m.weight)
    if isinstance(m, nn.Linear):
        return out.numel() * m.in_features
    if isinstance(m, POOL):
        dims = int(type(m).__name__[-2])
        return out.numel() * math.prod(_as_tuple(m.kernel_size, dims))
    dims = int(type(m).__name__[-2])
    return _adaptive(x, out, dims)


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any = None) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _function_cost(func: Callable, args: tuple, kwargs: dict, out: Any) -> Optional[int]:
    """The lecture cost of one functional call, or None for a free op."""
    name = getattr(func, "__name__", "").removesuffix("_with_indices")  # F.max_pool2d(return_indices=True)
    out = _first(out)
    if name in ("conv1d", "conv2d", "conv3d"):
        return _conv(_arg(args, kwargs, 1, "weight"), out)
    if name.startswith("conv_transpose"):
        return _conv_t(args[0], _arg(args, kwargs, 1, "weight"))
    if name == "linear":
        return out.numel() * args[0].shape[-1]
    if name in ("matmul", "__matmul__", "mm", "bmm", "__rmatmul__"):
        a = args[1] if name == "__rmatmul__" else args[0]
        return out.numel() * a.shape[-1]
    if name.startswith(("max_pool", "avg_pool")) and name[-2:] in ("1d", "2d", "3d"):
        dims = int(name[-2])
        return out.numel() * math.prod(_as_tuple(_arg(args, kwargs, 1, "kernel_size"), dims))
    if name.startswith("adaptive_") and name[-2:] in ("1d", "2d", "3d"):
        return _adaptive(args[0], out, int(name[-2]))
    return None


class LectureCounter(TorchFunctionMode):
    """Counts lecture FLOPs of the calls it sees: hooked modules, and functional calls outside them."""

    def __init__(self) -> None:
        super().__init__()
        self.costs: list[tuple[str, int]] = []  # (what, flops) per costed call, in order
        self.depth = 0  # > 0 while a hooked module runs: its inner F.* call is the module's own

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.depth == 0:
            cost = _function_cost(func, args, kwargs, out)
            if cost is not None:
                self.costs.append((getattr(func, "__name__", str(func)), cost))
        return out


def lecture_costs(model: nn.Module, input_shape: tuple, batch: int = 1,
                  device: str | torch.device = "cpu") -> list[tuple[str, int]]:
    """Run ``model`` (eval, no grad) on zeros and return ``(what, lecture flops)`` per costed call."""
    counter = LectureCounter()

    def pre(m: nn.Module, inp: tuple) -> None:
        counter.depth += 1

    def post(m: nn.Module, inp: tuple, out: Any) -> None:
        if counter.depth == 1:  # a hooked module inside a hooked module is not double counted
            # (depth is still 1 here, so the window probe's own pooling call is not counted)
            counter.costs.append((type(m).__name__, _module_cost(m, inp[0], _first(out))))
        counter.depth -= 1

    handles = []
    for m in model.modules():
        if isinstance(m, HOOKED):
            handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(batch, *input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return counter.costs


def lecture_flops(model: nn.Module, input_shape: tuple, batch: int = 1,
                  device: str | torch.device = "cpu") -> int:
    """Total lecture FLOPs of ``model`` on a batch of ``batch`` inputs of ``input_shape``."""
    return sum(c for _, c in lecture_costs(model, input_shape, batch, device))
