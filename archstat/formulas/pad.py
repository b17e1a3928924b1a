"""Padding: ``F.pad`` and the ``nn.*Pad*d`` modules (zero, constant, reflection, replication, circular).

``pad = (left_last, right_last, left_second_last, right_second_last, ...)`` grows the last dims,
from the last one backwards: ``L_out = L + left + right`` (negative values crop).  Every mode writes
a new tensor (kind ``copy``) and keeps nothing for backward.  TorchScript records every mode as
``aten::pad``, which fvcore has no handle for ("oracle unsupported"; only the older
``constant_pad_nd`` is on its ignore list); FlopCounterMode counts 0.
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

from archstat.formulas import Cost, ShapeError, register_function, register_module
from archstat.spec import TensorSpec, simplify

MODES = ("constant", "reflect", "replicate", "circular")


def padded_shape(shape: Sequence, pad: Sequence[int]) -> tuple:
    """``shape`` after ``F.pad(x, pad)``."""
    if len(pad) % 2 or len(pad) // 2 > len(shape):
        raise ShapeError(f"pad {list(pad)} needs pairs for at most {len(shape)} dims")
    out = list(shape)
    for i in range(len(pad) // 2):
        dim = len(shape) - 1 - i
        out[dim] = simplify(out[dim] + pad[2 * i] + pad[2 * i + 1])
        if isinstance(out[dim], int) and out[dim] < 1:
            raise ShapeError(f"pad {list(pad)} leaves dim {dim} empty")
    return tuple(out)


def pad_cost(x: TensorSpec, pad: Sequence[int], mode: str) -> Cost:
    if mode not in MODES:
        raise ShapeError(f"unknown pad mode {mode!r}")
    return Cost(out=x.with_shape(padded_shape(x.shape, pad)), kind="copy", padding=list(pad),
                hparams={"fn": "pad", "mode": mode})


@register_function("pad")
def pad_function(args: tuple, kwargs: dict) -> Cost:
    a = {**dict(zip(("input", "pad", "mode", "value"), args)), **kwargs}
    return pad_cost(a["input"], tuple(a["pad"]), a.get("mode") or "constant")


# the module families, by the mode their forward passes to F.pad
_PAD_MODES = {"Constant": "constant", "Reflection": "reflect", "Replication": "replicate", "Circular": "circular"}
_PAD_BASES = {getattr(nn.modules.padding, f"_{name}PadNd"): mode for name, mode in _PAD_MODES.items()
              if hasattr(nn.modules.padding, f"_{name}PadNd")}  # CircularPad*d: torch >= 2.1


@register_module(*_PAD_BASES)
def pad_module(m: nn.Module, inputs: list) -> Cost:
    mode = next(mode for base, mode in _PAD_BASES.items() if isinstance(m, base))
    return pad_cost(inputs[0], tuple(m.padding), mode)
