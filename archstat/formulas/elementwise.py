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
from archstat.spec import TensorSpec, iterator_strides

ELEMENTWISE = ("add", "sub", "mul", "div", "floordiv", "pow", "maximum", "minimum",
               "rsub", "neg", "abs", "exp", "log", "sqrt", "rsqrt", "clamp", "where")


FLOAT_RESULT = ("div", "exp", "log", "sqrt", "rsqrt")
DEFAULT_OF_CATEGORY = {1: torch.int64, 3: torch.complex64}


def category(dtype: torch.dtype) -> int:
    """bool 0 < integer 1 < floating 2 < complex 3: the order in which PyTorch lets a scalar promote."""
    if dtype == torch.bool:
        return 0
    return 3 if dtype.is_complex else 2 if dtype.is_floating_point else 1


def with_scalars(dtype: torch.dtype, scalars: list) -> torch.dtype:
    """``torch.result_type`` with Python scalars: a scalar of a higher category than the tensors gives
    that category's default dtype (``bool_mask * 0.5`` is float32, ``int_tensor + 1.5`` float32);
    otherwise the tensors' dtype stands (``half_tensor * 2.0`` stays half)."""
    for s in scalars:
        cat = 0 if isinstance(s, bool) else 1 if isinstance(s, int) else 2 if isinstance(s, float) else 3
        if cat > category(dtype):
            dtype = torch.get_default_dtype() if cat == 2 else DEFAULT_OF_CATEGORY[cat]
    return dtype


@register_function(*ELEMENTWISE)
def elementwise_function(args: tuple, kwargs: dict) -> Cost:
    tensors = [a for a in args if isinstance(a, TensorSpec)]
    shape: tuple = ()
    for t in tensors:
        shape = broadcast_shapes(shape, t.shape)
    inplace = bool(kwargs.get("inplace", False))
    fn = kwargs.get("_fn")
    # the result has the promoted dtype of the tensor operands (``mask * x`` is float); where's condition is not one
    values = tensors[1:] if fn == "where" and len(tensors) > 1 else tensors
    dtype = functools.reduce(torch.promote_types, [t.dtype for t in values])
    scalars = [a for a in (args[1:] if fn == "where" else args) if isinstance(a, (bool, int, float, complex))]
    dtype = with_scalars(dtype, scalars)
    if fn in FLOAT_RESULT and category(dtype) < 2 and kwargs.get("rounding_mode") is None:
        dtype = torch.get_default_dtype()  # true division, exp, log and roots of integers are floating
    # in place: the same tensor, same strides; else laid out as TensorIterator orders the operands
    out = tensors[0] if inplace else TensorSpec(tuple(shape), dtype, iterator_strides(shape, tensors))
    return Cost(out=out, kind="elementwise", alloc=not inplace, new_bytes=not inplace,
                hparams={"fn": kwargs.get("_fn", "elementwise"), "inplace": inplace, "tensor_args": len(tensors)})


COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne")


@register_function(*COMPARISONS)
def comparison_function(args: tuple, kwargs: dict) -> Cost:
    """``a < b`` and friends: an elementwise op whose output is bool (1 byte), with no gradient."""
    cost = elementwise_function(args, kwargs)
    out = cost.out
    cost.out = out if cost.hparams["inplace"] else TensorSpec(out.shape, torch.bool, out.strides)
    return cost


FILLS = ("zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like")


@register_function(*FILLS)
def fill_function(args: tuple, kwargs: dict) -> Cost:
    """A new tensor of the input's shape that reads none of its values (no gradient flows through)."""
    x = args[0]
    dtype = kwargs.get("dtype") or x.dtype
    return Cost(out=TensorSpec(tuple(x.shape), dtype), kind="copy", hparams={"fn": kwargs.get("_fn", "fill")})


NEW_FILLS = ("new_zeros", "new_ones", "new_full", "new_empty")


@register_function(*NEW_FILLS)
def new_fill_function(args: tuple, kwargs: dict) -> Cost:
    """``x.new_zeros(size)`` (``new_full(size, v)``): a new tensor of ``size`` with ``x``'s dtype, reading
    none of ``x``'s values (no gradient flows through)."""
    x, rest = args[0], args[1:]
    size = kwargs.get("size", rest[0] if rest else ())
    if isinstance(size, int) or (size is not None and not isinstance(size, (tuple, list))):
        size = rest if kwargs.get("_fn") != "new_full" else rest[:1]  # new_zeros(2, 3): sizes as arguments
    dtype = kwargs.get("dtype") or x.dtype
    return Cost(out=TensorSpec(tuple(size), dtype), kind="copy", hparams={"fn": kwargs.get("_fn", "new_zeros")})


@register_function("zero", "fill")
def fill_in_place_function(args: tuple, kwargs: dict) -> Cost:
    """``x.zero_()`` / ``x.fill_(v)``: written in place (Swin V2 zeroes the key part of a cloned qkv bias)."""
    return Cost(out=args[0], kind="copy", alloc=False, new_bytes=False, hparams={"fn": kwargs.get("_fn", "zero")})


@register_function("masked_fill")
def masked_fill_function(args: tuple, kwargs: dict) -> Cost:
    """``x.masked_fill(mask, v)``: ``x`` where ``mask`` is False, ``v`` elsewhere; the mask broadcasts to
    ``x``.  Elementwise, no MACs; backward needs the mask (``analyses.memory``)."""
    x, mask = args[0], args[1] if len(args) > 1 else kwargs["mask"]
    inplace = bool(kwargs.get("inplace", False))
    shape = tuple(broadcast_shapes(x.shape, mask.shape))
    out = x if inplace else TensorSpec(shape, x.dtype, iterator_strides(shape, [x]))  # a clone keeps x's layout
    return Cost(out=out, kind="elementwise", alloc=not inplace, new_bytes=not inplace,
                hparams={"fn": "masked_fill", "inplace": inplace, "tensor_args": 2})


@register_function("flip", "roll")
def reorder_function(args: tuple, kwargs: dict) -> Cost:
    """``flip`` and ``roll`` write a reordered copy; backward is the inverse reordering (nothing saved)."""
    x = args[0]
    return Cost(out=x.with_shape(x.shape), kind="copy", hparams={"fn": kwargs.get("_fn", "flip")})
