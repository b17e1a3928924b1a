"""Pointwise ops: arithmetic with broadcasting, comparisons, fresh fills and reorderings.

No MACs.  The output has the broadcast shape of the tensor arguments; an in-place call
(``add_``, ``+=``) writes into its first input, so it allocates nothing.  Comparisons return bool
(1 byte per element) and, like ``*_like`` fills, need no gradient (``grad_flow.NO_GRAD_FNS``).
``flip`` and ``roll`` write a reordered copy.
"""
from __future__ import annotations

import functools

import torch

from archstat.formulas import Cost, register_function
from archstat.formulas._checks import broadcast_shapes
from archstat.spec import TensorSpec

ELEMENTWISE = ("add", "sub", "mul", "div", "floordiv", "pow", "maximum", "minimum",
               "rsub", "neg", "abs", "exp", "log", "sqrt", "rsqrt", "clamp", "where")


@register_function(*ELEMENTWISE)
def elementwise_function(args: tuple, kwargs: dict) -> Cost:
    tensors = [a for a in args if isinstance(a, TensorSpec)]
    shape: tuple = ()
    for t in tensors:
        shape = broadcast_shapes(shape, t.shape)
    inplace = bool(kwargs.get("inplace", False))
    # the result has the promoted dtype of the tensor operands (``mask * x`` is float); where's condition is not one
    if kwargs.get("_fn") == "where" and len(args) >= 3:
        dtype = _where_dtype(args)
    else:
        dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])
    out = tensors[0] if inplace else TensorSpec(tuple(shape), dtype)  # in place: the same tensor, same strides
    return Cost(out=out, kind="elementwise", alloc=not inplace, new_bytes=not inplace,
                hparams={"fn": kwargs.get("_fn", "elementwise"), "inplace": inplace, "tensor_args": len(tensors)})


def _where_dtype(args: tuple) -> torch.dtype:
    """``torch.where(cond, a, b)``: ``a`` and ``b`` promoted as PyTorch does, Python numbers included
    (``where(c, 1.0, 0.0)`` is the default float dtype, not the condition's bool; ``where(c, x, 0)``
    is x's).  ``torch.result_type`` on meta stand-ins of the same rank (a 0-dim tensor ranks below
    a dimensioned one)."""
    a, b = (torch.empty((1,) * len(v.shape), dtype=v.dtype, device="meta") if isinstance(v, TensorSpec) else v
            for v in args[1:3])
    return torch.result_type(a, b)


COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne")


@register_function(*COMPARISONS)
def comparison_function(args: tuple, kwargs: dict) -> Cost:
    """``a < b`` and friends: an elementwise op whose output is bool (1 byte), with no gradient."""
    cost = elementwise_function(args, kwargs)
    out = cost.out
    cost.out = out if cost.hparams["inplace"] else TensorSpec(out.shape, torch.bool)
    return cost


FILLS = ("zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like")


@register_function(*FILLS)
def fill_function(args: tuple, kwargs: dict) -> Cost:
    """A new tensor of the input's shape that reads none of its values (no gradient flows through)."""
    x = args[0]
    dtype = kwargs.get("dtype") or x.dtype
    return Cost(out=TensorSpec(tuple(x.shape), dtype), kind="copy", hparams={"fn": kwargs.get("_fn", "fill")})


@register_function("flip", "roll")
def reorder_function(args: tuple, kwargs: dict) -> Cost:
    """``flip`` and ``roll`` write a reordered copy; backward is the inverse reordering (nothing saved)."""
    x = args[0]
    return Cost(out=x.with_shape(x.shape), kind="copy", hparams={"fn": kwargs.get("_fn", "flip")})
