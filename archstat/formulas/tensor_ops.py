"""Tensor plumbing: elementwise arithmetic, cat/stack, reshapes and views, reductions, slicing,
dropout, identity and upsampling.

None of these has MACs.  Views (``view``, ``flatten``, ``permute``, ``squeeze`` ...) share their
input's storage: ``alloc`` is False, but the lecture still lists their output (AlexNet's flatten
row is 36 KB), so their bytes stay in the memory column.  Ops that return their input unchanged
(``Identity``, ``Dropout`` in eval, ``contiguous`` of a contiguous tensor) add nothing.
"""
from __future__ import annotations

from torch import nn

from archstat.formulas import Cost, ShapeError, register_function, register_module
from archstat.formulas.linear import _broadcast
from archstat.spec import TensorSpec, is_symbolic, prod, simplify

ELEMENTWISE = ("add", "sub", "mul", "div", "truediv", "floordiv", "pow", "maximum", "minimum",
               "rsub", "neg", "abs", "exp", "log", "sqrt", "rsqrt", "clamp", "where")


@register_function(*ELEMENTWISE)
def elementwise_function(args: tuple, kwargs: dict) -> Cost:
    tensors = [a for a in args if isinstance(a, TensorSpec)]
    shape: tuple = ()
    for t in tensors:
        shape = _broadcast(shape, t.shape)
    inplace = bool(kwargs.get("inplace", False))
    return Cost(out=tensors[0].with_shape(shape), kind="elementwise", alloc=not inplace, new_bytes=not inplace,
                hparams={"fn": kwargs.get("_fn", "elementwise"), "inplace": inplace, "tensor_args": len(tensors)})


def _dim(d: int, rank: int) -> int:
    return d + rank if d < 0 else d


@register_function("cat", "concat", "concatenate")
def cat_function(args: tuple, kwargs: dict) -> Cost:
    tensors = list(args[0])
    dim = _dim(args[1] if len(args) > 1 else kwargs.get("dim", 0), len(tensors[0].shape))
    for t in tensors[1:]:
        same = [a == b for i, (a, b) in enumerate(zip(t.shape, tensors[0].shape)) if i != dim]
        if len(t.shape) != len(tensors[0].shape) or not all(same):
            raise ShapeError(f"cannot concatenate shapes {[list(x.shape) for x in tensors]} along dim {dim}")
    shape = list(tensors[0].shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    return Cost(out=tensors[0].with_shape(shape), kind="concat", hparams={"dim": dim, "parts": len(tensors)})


@register_function("stack")
def stack_function(args: tuple, kwargs: dict) -> Cost:
    tensors = list(args[0])
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    shape = list(tensors[0].shape)
    shape.insert(_dim(dim, len(shape) + 1), len(tensors))
    return Cost(out=tensors[0].with_shape(shape), kind="concat", hparams={"dim": dim, "parts": len(tensors)})


def _flatten_shape(shape: tuple, start: int, end: int) -> tuple:
    start, end = _dim(start, len(shape)), _dim(end, len(shape))
    return (*shape[:start], prod(shape[start:end + 1]), *shape[end + 1:])


def _view_cost(x: TensorSpec, shape, **hparams) -> Cost:
    """A view of ``x``.  One that keeps the shape of a contiguous input is the same memory view
    (``flatten`` of a single dim returns its input, ``view(x.shape)`` aliases it): no new bytes."""
    same = list(shape) == list(x.shape)
    return Cost(out=x.with_shape(shape), kind="identity" if same else "view", alloc=False, new_bytes=not same,
                hparams=hparams)


@register_module(nn.Flatten)
def flatten_module(m: nn.Flatten, inputs: list) -> Cost:
    x = inputs[0]
    return _view_cost(x, _flatten_shape(x.shape, m.start_dim, m.end_dim))


@register_function("flatten")
def flatten_function(args: tuple, kwargs: dict) -> Cost:
    x = args[0]
    start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
    end = args[2] if len(args) > 2 else kwargs.get("end_dim", -1)
    return _view_cost(x, _flatten_shape(x.shape, start, end))


@register_function("view", "reshape")
def view_function(args: tuple, kwargs: dict) -> Cost:
    x = args[0]
    sizes = args[1:] if len(args) > 2 or not isinstance(args[1], (tuple, list)) else tuple(args[1])
    sizes = sizes or tuple(kwargs.get("shape", ()))
    if list(sizes).count(-1) > 1:
        raise ShapeError(f"view {list(sizes)} has more than one -1")
    known = prod(s for s in sizes if not (isinstance(s, int) and s == -1))
    shape = tuple(simplify(x.numel / known) if isinstance(s, int) and s == -1 else s for s in sizes)
    if not is_symbolic(x.numel) and not any(is_symbolic(s) for s in shape) and prod(shape) != x.numel:
        raise ShapeError(f"cannot view shape {list(x.shape)} as {list(sizes)}")
    return _view_cost(x, shape, fn=kwargs.get("_fn", "view"))


@register_function("permute", "transpose", "t", "squeeze", "unsqueeze", "contiguous", "expand", "detach")
def view_like_function(args: tuple, kwargs: dict) -> Cost:
    x, fn = args[0], kwargs.get("_fn")
    rest = args[1:]
    shape = list(x.shape)
    if fn == "permute":
        dims = rest[0] if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else rest
        shape = [x.shape[_dim(d, len(shape))] for d in dims]
    elif fn in ("transpose", "t"):
        a, b = (rest[0], rest[1]) if fn == "transpose" else (0, 1)
        a, b = _dim(a, len(shape)), _dim(b, len(shape))
        shape[a], shape[b] = shape[b], shape[a]
    elif fn == "squeeze":
        dims = [_dim(rest[0], len(shape))] if rest else [i for i, s in enumerate(shape) if s == 1]
        shape = [s for i, s in enumerate(shape) if not (i in dims and s == 1)]
    elif fn == "unsqueeze":
        shape.insert(_dim(rest[0], len(shape) + 1), 1)
    elif fn == "expand":
        sizes = rest[0] if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else rest
        shape = [s if n == -1 else n for s, n in zip([1] * (len(sizes) - len(shape)) + shape, sizes)]
    if fn in ("contiguous", "detach"):
        return Cost(out=x, kind="identity", alloc=False, new_bytes=False, hparams={"fn": fn})
    if fn in ("squeeze", "expand") or (fn == "permute" and [_dim(d, len(shape)) for d in dims] == list(range(len(shape)))):
        return _view_cost(x, shape, fn=fn)  # nothing squeezed / expanded / permuted: the same view
    return Cost(out=x.with_shape(shape), kind="view", alloc=False, hparams={"fn": fn})


@register_function("mean", "sum", "amax", "amin")
def reduce_function(args: tuple, kwargs: dict) -> Cost:
    x = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = bool(args[2] if len(args) > 2 else kwargs.get("keepdim", False))
    rank = len(x.shape)
    dims = range(rank) if dims is None else [dims] if isinstance(dims, int) else dims
    dims = {_dim(d, rank) for d in dims}
    shape = [1 if i in dims else s for i, s in enumerate(x.shape) if keepdim or i not in dims]
    return Cost(out=x.with_shape(shape), kind="reduce", work={"elements": x.numel},
                hparams={"fn": kwargs.get("_fn", "mean"), "dims": sorted(dims)})


@register_module(nn.Identity)
def identity_module(m: nn.Module, inputs: list) -> Cost:
    return Cost(out=inputs[0], kind="identity", alloc=False, new_bytes=False)


# The aten op each variant runs (what fvcore sees, and what decides the saved mask's shape):
# element-wise masks for dropout/alpha_dropout, one mask value per channel for the 1d/2d/3d forms.
DROPOUT_ATEN = {"dropout": "dropout", "dropout1d": "feature_dropout", "dropout2d": "feature_dropout",
                "dropout3d": "feature_dropout", "alpha_dropout": "alpha_dropout"}


@register_module(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
def dropout_module(m: nn.Module, inputs: list) -> Cost:
    fn = DROPOUT_ATEN[type(m).__name__.lower().replace("alphadropout", "alpha_dropout")]
    return _dropout_cost(inputs[0], m.p, m.training, m.inplace, fn)


@register_function("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout")
def dropout_function(args: tuple, kwargs: dict) -> Cost:
    a = {**dict(zip(("input", "p", "training", "inplace"), args)), **kwargs}
    return _dropout_cost(a["input"], a.get("p", 0.5), bool(a.get("training", True)), bool(a.get("inplace", False)),
                         DROPOUT_ATEN.get(kwargs.get("_fn", "dropout"), "dropout"))


def _dropout_cost(x: TensorSpec, p: float, training: bool, inplace: bool, fn: str = "dropout") -> Cost:
    """In eval, dropout returns its input.  In training it writes a new (or, in place, the same)
    tensor and keeps a mask for backward (counted by the training-memory estimate)."""
    active = training and p > 0
    return Cost(out=x, kind="dropout" if active else "identity", alloc=active and not inplace,
                new_bytes=active and not inplace, hparams={"p": p, "training": training, "inplace": inplace, "fn": fn})


@register_module(nn.Upsample)
def upsample_module(m: nn.Upsample, inputs: list) -> Cost:
    x = inputs[0]
    dims = len(x.shape) - 2
    if m.size is not None:
        spatial = tuple(m.size) if isinstance(m.size, (tuple, list)) else (m.size,) * dims
    else:
        factors = m.scale_factor if isinstance(m.scale_factor, (tuple, list)) else (m.scale_factor,) * dims
        spatial = tuple(simplify(L * f) if float(f).is_integer() else int(L * f) for L, f in zip(x.shape[2:], factors))
    return Cost(out=x.with_shape((*x.shape[:2], *spatial)), kind="upsample", hparams={"mode": m.mode})


@register_function("chunk", "split")
def split_function(args: tuple, kwargs: dict) -> Cost:
    x, fn = args[0], kwargs.get("_fn")
    dim = _dim(args[2] if len(args) > 2 else kwargs.get("dim", 0), len(x.shape))
    size = x.shape[dim]
    arg = args[1]
    if fn == "chunk":
        step = -(-size // arg)
        parts = [min(step, size - i) for i in range(0, size, step)]
    else:
        parts = list(arg) if isinstance(arg, (list, tuple)) else [min(arg, size - i) for i in range(0, size, arg)]
    outs = []
    for p in parts:
        shape = list(x.shape)
        shape[dim] = p
        outs.append(x.with_shape(shape))
    return Cost(out=tuple(outs), kind="view", alloc=False, hparams={"fn": fn})


def _slice_len(size, s: slice):
    if not is_symbolic(size):
        return len(range(*s.indices(int(size))))
    if s == slice(None):
        return size
    if (s.step or 1) == 1 and (s.start or 0) >= 0 and (s.stop is None or s.stop >= 0):
        import sympy

        stop = size if s.stop is None else sympy.Min(size, s.stop)
        return sympy.Max(stop - (s.start or 0), 0)
    raise NotImplementedError("symbolic slice with negative bounds or a step")


@register_function("getitem")
def getitem_function(args: tuple, kwargs: dict) -> Cost:
    """Basic indexing (ints, slices, None, ...): a view.  Advanced (tensor) indexing has no formula."""
    x, index = args[0], args[1]
    index = index if isinstance(index, tuple) else (index,)
    if any(not isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in index):
        raise NotImplementedError("advanced indexing")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        fill = len(x.shape) - sum(1 for i in index if i is not None and i is not Ellipsis)
        index = index[:at] + (slice(None),) * fill + index[at + 1:]
    shape, dim = [], 0
    for i in index:
        if i is None:
            shape.append(1)
            continue
        if isinstance(i, slice):
            shape.append(_slice_len(x.shape[dim], i))
        dim += 1
    shape += list(x.shape[dim:])
    return Cost(out=x.with_shape(shape), kind="view", alloc=False, hparams={"fn": "getitem"})
