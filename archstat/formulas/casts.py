"""Tensor methods that copy or cast: ``clone``, ``to`` / ``float`` / ``half`` / ``type_as``,
``expand_as`` and ``repeat``.

``x.to(dtype)`` and its spellings return ``x`` itself when nothing changes (no allocation, as
PyTorch does) and otherwise a new tensor of the new dtype; a device move is the same tensor for
archstat, which never places tensors.  ``clone`` and ``repeat`` write new tensors (``repeat``
tiles: each dim times its factor); ``expand_as`` is ``expand`` to another tensor's shape (a view).
None keeps anything for backward.  fvcore ignores ``aten::to`` and ``aten::type_as``; it reports
``aten::clone`` and ``aten::repeat`` as unsupported (``conventions.FVCORE_UNHANDLED_COPIES``).
"""
from __future__ import annotations

import torch

from archstat.formulas import Cost, register_function
from archstat.formulas.tensor_ops import view_like_function
from archstat.spec import TensorSpec, simplify

_CAST_METHODS = {"float": torch.float32, "double": torch.float64, "half": torch.float16, "bfloat16": torch.bfloat16}


def _target_dtype(fn: str, args: tuple, kwargs: dict) -> torch.dtype | None:
    """The dtype a cast asks for, or None when it keeps the dtype (a device move, ``to(x)``)."""
    if fn in _CAST_METHODS:
        return _CAST_METHODS[fn]
    if fn == "type_as":
        return args[1].dtype
    for value in (*args[1:], kwargs.get("dtype")):
        if isinstance(value, torch.dtype):
            return value
        if isinstance(value, TensorSpec):  # x.to(other): other's dtype
            return value.dtype
    return None


@register_function("to", "type_as", *_CAST_METHODS)
def cast_function(args: tuple, kwargs: dict) -> Cost:
    x, fn = args[0], kwargs.get("_fn", "to")
    dtype = _target_dtype(fn, args, kwargs)
    if dtype is None or dtype == x.dtype:
        return Cost(out=x, kind="identity", alloc=False, new_bytes=False, hparams={"fn": fn})
    return Cost(out=TensorSpec(tuple(x.shape), dtype), kind="copy", hparams={"fn": fn, "dtype": str(dtype)})


@register_function("clone")
def clone_function(args: tuple, kwargs: dict) -> Cost:
    x = args[0]
    return Cost(out=x.with_shape(x.shape), kind="copy", hparams={"fn": "clone"})


@register_function("repeat")
def repeat_function(args: tuple, kwargs: dict) -> Cost:
    x = args[0]
    reps = tuple(args[1]) if len(args) == 2 and isinstance(args[1], (tuple, list)) else tuple(args[1:])
    lead = (1,) * (len(reps) - len(x.shape))  # repeat may add leading dims
    shape = tuple(simplify(s * r) for s, r in zip(lead + tuple(x.shape), reps))
    return Cost(out=x.with_shape(shape), kind="copy", hparams={"fn": "repeat", "repeats": list(reps)})


@register_function("expand_as")
def expand_as_function(args: tuple, kwargs: dict) -> Cost:
    return view_like_function((args[0], *args[1].shape), {**kwargs, "_fn": "expand"})
