"""Linear layers and matrix products.

Linear on an input (..., in):   out (..., out), MACs = prod(...) * in * out   (bias is not a MAC).
matmul of (..., n, k) @ (..., k, m): out (broadcast(...), n, m), MACs = prod(broadcast(...)) * n * k * m;
a 1-d operand is a vector (its n or m dimension drops out), as ``torch.matmul`` defines it.
"""
from __future__ import annotations

from torch import nn

from archstat.formulas import Cost, ShapeError, register_function, register_module
from archstat.formulas._checks import broadcast_shapes, require_channels
from archstat.spec import Size, TensorSpec, is_symbolic, prod, view_strides


def _linear_cost(x: TensorSpec, in_features: int, out_features: int, bias: bool) -> Cost:
    if len(x.shape) < 2:
        raise ShapeError(f"expects at least a 1-d input per sample, got shape {list(x.sample_shape)}")
    require_channels(x.shape[-1], in_features, "input features")
    rows = prod(x.shape[:-1])
    out = x.with_shape((*x.shape[:-1], out_features))
    # the (rows, in) copy of an input no such view exists of: what backward saves instead of the input
    copy = rows * in_features if len(x.shape) > 2 and not x.is_contiguous and \
        view_strides(x.shape, x.stride, (rows, in_features)) is None else 0
    return Cost(out=out, kind="linear", macs=rows * in_features * out_features,
                work={"transient_bytes": _linear_transient(x, out, bias)},
                hparams={"in_features": in_features, "out_features": out_features, "bias": bias, "input_copy": copy})


def _linear_transient(x: TensorSpec, out: TensorSpec, bias: bool) -> Size:
    """Bytes aten::linear holds besides its output while it runs (see ``archstat.analyses.live_memory``).

    A 2-d or a contiguous input runs as one addmm / mm on a view: nothing.  A non-contiguous input
    of rank > 2 goes through matmul, which reshapes it to (-1, in): a copy when no such view exists;
    then the bias is added out of place, so the matmul result and the output coexist.
    """
    if len(x.shape) <= 2 or x.is_contiguous:
        return 0
    copy = x.nbytes if view_strides(x.shape, x.stride, (prod(x.shape[:-1]), x.shape[-1])) is None else 0
    if not bias:
        return copy
    if is_symbolic(copy) or is_symbolic(out.nbytes):
        import sympy  # symbolic mode only: sympy is already loaded

        return sympy.Max(copy, out.nbytes)
    return max(copy, out.nbytes)


@register_module(nn.Linear)
def linear_module(m: nn.Linear, inputs: list) -> Cost:
    return _linear_cost(inputs[0], m.in_features, m.out_features, m.bias is not None)


@register_function("linear")
def linear_function(args: tuple, kwargs: dict) -> Cost:
    a = {**dict(zip(("input", "weight", "bias"), args)), **kwargs}
    w = a["weight"]
    cost = _linear_cost(a["input"], w.shape[1], w.shape[0], a.get("bias") is not None)
    # a weight the forward computes (weight * scale) is an activation backward keeps; a computed bias
    # alone (Swin V2's zeroed qkv bias) is not kept
    cost.hparams["computed_weight"] = type(w) is TensorSpec
    return cost


@register_function("matmul", "mm", "bmm")
def matmul_function(args: tuple, kwargs: dict) -> Cost:
    a, b = args[0], args[1]
    sa, sb = a.shape, b.shape
    if sa[-1] != sb[-2 if len(sb) > 1 else -1] and not (is_symbolic(sa[-1]) or is_symbolic(sb[0])):
        raise ShapeError(f"cannot multiply shapes {list(sa)} and {list(sb)}")
    k = sa[-1]
    n = (sa[-2],) if len(sa) > 1 else ()
    m = (sb[-1],) if len(sb) > 1 else ()
    batch = broadcast_shapes(sa[:-2], sb[:-2])
    out_shape = (*batch, *n, *m)
    copies = bmm_copies(a, b, batch) if len(sa) >= 3 and len(sb) >= 3 else [0, 0]
    return Cost(out=a.with_shape(out_shape), kind="matmul", macs=prod(batch) * prod(n) * k * prod(m),
                work={"transient_bytes": (copies[0] + copies[1]) * a.dtype.itemsize},
                hparams={"shapes": [list(sa), list(sb)], "copies": copies})


def bmm_copies(a: TensorSpec, b: TensorSpec, batch: tuple) -> list[Size]:
    """Elements of the contiguous copy ``torch.matmul`` makes of each operand (0: none), both >= 3-d.

    It runs ``bmm`` on ``x.expand(*batch, r, c).reshape(prod(batch), r, c)``: a copy where the
    (broadcast) batch dims cannot be viewed as one, as the heads of a permuted qkv in Swin's
    ``k.transpose(-2, -1)``.  The copy lives while the product runs and is what backward saves.
    """
    if any(is_symbolic(s) for s in (*a.shape, *b.shape, *a.stride, *b.stride)):
        return [0, 0]  # symbolic mode prices no memory
    out = []
    for x in (a, b):
        lead = len(batch) - (len(x.shape) - 2)
        shape = (*batch, *x.shape[-2:])
        stride = (0,) * lead + tuple(0 if size == 1 and full != 1 else st for size, full, st in
                                     zip(x.shape[:-2], batch[lead:], x.stride[:-2])) + tuple(x.stride[-2:])
        merged = (prod(batch), *x.shape[-2:])
        out.append(prod(merged) if view_strides(shape, stride, merged) is None else 0)
    return out
