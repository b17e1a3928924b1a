"""Reductions: ``mean``, ``sum``, ``amax``, ``amin`` over dims, and ``torch.max`` / ``torch.min``.

The output drops the reduced dims (keeps them as 1 with ``keepdim``); ``work["elements"]`` is
what a device reads, every input element once.
"""
from __future__ import annotations

import torch

from archstat.formulas import Cost, register_function
from archstat.formulas.elementwise import elementwise_function
from archstat.formulas._checks import dim_index
from archstat.spec import TensorSpec, iterator_strides


@register_function("mean", "sum", "amax", "amin")
def reduce_function(args: tuple, kwargs: dict) -> Cost:
    x = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = bool(args[2] if len(args) > 2 else kwargs.get("keepdim", False))
    rank = len(x.shape)
    dims = range(rank) if dims is None else [dims] if isinstance(dims, int) else dims
    dims = {dim_index(d, rank) for d in dims}
    shape = [1 if i in dims else s for i, s in enumerate(x.shape) if keepdim or i not in dims]
    return Cost(out=x.with_shape(shape), kind="reduce", work={"elements": x.numel},
                hparams={"fn": kwargs.get("_fn", "mean"), "dims": sorted(dims)})


@register_function("max", "min")
def max_min_function(args: tuple, kwargs: dict) -> Cost:
    """``torch.max`` has three forms: of two tensors (elementwise ``maximum``), of a whole tensor (one
    value, like ``amax``), and along ``dim``, which returns values and int64 indices: two tensors
    of their own, and the indices are what backward keeps."""
    x, fn = args[0], kwargs.get("_fn", "max")
    other = args[1] if len(args) > 1 else kwargs.get("other")
    if isinstance(other, TensorSpec):
        return elementwise_function((x, other), {**kwargs, "_fn": {"max": "maximum", "min": "minimum"}[fn]})
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    if dim is None:  # backward spreads the gradient over every maximal element: it keeps input and result
        return Cost(out=x.with_shape(()), kind="reduce", work={"elements": x.numel, "saved": [("in", 0), ("out",)]},
                    hparams={"fn": fn, "dims": list(range(len(x.shape)))})
    keepdim = bool(args[2] if len(args) > 2 else kwargs.get("keepdim", False))
    d = dim_index(dim, len(x.shape))
    shape = [1 if i == d else s for i, s in enumerate(x.shape) if keepdim or i != d]
    values, indices = x.with_shape(shape), TensorSpec(tuple(shape), torch.int64)
    result = {"max": torch.return_types.max, "min": torch.return_types.min}[fn]((values, indices))  # .values
    return Cost(out=result, kind="reduce", hparams={"fn": fn, "dims": [d]},
                work={"elements": x.numel, "saved": [("new", indices.numel, torch.int64)]})


@register_function("normalize")
def normalize_function(args: tuple, kwargs: dict) -> Cost:
    """``F.normalize(x, p, dim)``: ``x / max(||x||_p over dim, eps)``, one row for its four kernels.

    The norm and its clamped copy have the reduced shape (keepdim); while the division writes the
    output, the clamped norm is the one extra tensor alive (the output is at least as large as the
    two small ones, so that is the op's peak).  Backward keeps the input, the norm and the divisor.
    """
    a = {**dict(zip(("input", "p", "dim", "eps"), args)), **kwargs}
    x = a["input"]
    d = dim_index(a.get("dim", 1), len(x.shape))
    reduced = x.numel // x.shape[d]
    small = reduced * x.dtype.itemsize
    out = TensorSpec(x.shape, x.dtype, iterator_strides(x.shape, [x]))  # the division keeps x's layout
    return Cost(out=out, kind="elementwise", hparams={"fn": "normalize", "p": a.get("p", 2.0)},
                work={"transient_bytes": small, "saved": [("in", 0), ("new", reduced, x.dtype),
                                                             ("new", reduced, x.dtype)]})
