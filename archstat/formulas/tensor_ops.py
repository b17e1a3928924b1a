"""Tensor plumbing: cat/stack, reshapes and views, slicing, dropout and identity (pointwise ops are
in ``elementwise.py``, reductions in ``reduce.py``, resampling in ``resize.py``, padding in ``pad.py``).

None of these has MACs.  Views (``view``, ``flatten``, ``permute``, ``squeeze`` ...) share their
input's storage: ``alloc`` is False, but the lecture still lists their output (AlexNet's flatten
row is 36 KB), so their bytes stay in the memory column.  Ops that return their input unchanged
(``Identity``, ``Dropout`` in eval, ``contiguous`` of a contiguous tensor) add nothing.

Views carry their strides (``TensorSpec.strides``), computed as PyTorch does, because three ops
depend on them: ``contiguous()`` copies a non-contiguous view (kind ``copy``, a new tensor), and
``reshape``/``flatten`` copy when no view of the new shape exists (``spec.view_strides``), where
``view`` raises.  A channel shuffle (``view``, ``transpose``, ``contiguous``) thus allocates, as
it does on the device.
"""
from __future__ import annotations

from torch import nn

from archstat.formulas import Cost, ShapeError, register_function, register_module
from archstat.formulas._checks import dim_index
from archstat.formulas.indexing import getitem_tensor_index
from archstat.spec import TensorSpec, is_symbolic, prod, same_size, simplify, view_strides


@register_function("cat")  # torch.concat / concatenate: trace.ALIASES names them cat
def cat_function(args: tuple, kwargs: dict) -> Cost:
    tensors = list(args[0])
    dim = dim_index(args[1] if len(args) > 1 else kwargs.get("dim", 0), len(tensors[0].shape))
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
    shape.insert(dim_index(dim, len(shape) + 1), len(tensors))
    return Cost(out=tensors[0].with_shape(shape), kind="concat", hparams={"dim": dim, "parts": len(tensors)})


def _flatten_shape(shape: tuple, start: int, end: int) -> tuple:
    start, end = dim_index(start, len(shape)), dim_index(end, len(shape))
    return (*shape[:start], prod(shape[start:end + 1]), *shape[end + 1:])


def _unchanged(x: TensorSpec, fn: str, **hparams) -> Cost:
    """The input itself, or a view with its own shape and strides: no kernel, no new bytes."""
    return Cost(out=x, kind="identity", alloc=False, new_bytes=False, hparams={"fn": fn, **hparams})


def _reshape_cost(x: TensorSpec, shape, fn: str, **hparams) -> Cost:
    """``view``/``reshape``/``flatten`` of ``x`` to ``shape``.

    The same shape returns the input's memory view (``flatten`` of a single dim returns its input,
    ``view(x.shape)`` aliases it): no new bytes.  Otherwise a view when one exists; if not,
    ``view`` fails as in PyTorch and ``reshape``/``flatten`` copy into a new contiguous tensor.
    """
    shape = tuple(shape)
    if len(shape) == len(x.shape) and all(same_size(a, b) for a, b in zip(shape, x.shape)):
        return _unchanged(x, fn, **hparams)
    strides = view_strides(x.shape, x.stride, shape)
    if strides is not None:
        return Cost(out=x.as_view(shape, strides), kind="view", alloc=False, hparams={"fn": fn, **hparams})
    if fn == "view":
        raise ShapeError(f"view {list(shape)} of a non-contiguous tensor {list(x.shape)} (strides {list(x.stride)}): "
                         "PyTorch refuses it; use reshape")
    return Cost(out=x.with_shape(shape), kind="copy", hparams={"fn": fn, **hparams})


@register_module(nn.Flatten)
def flatten_module(m: nn.Flatten, inputs: list) -> Cost:
    x = inputs[0]
    return _reshape_cost(x, _flatten_shape(x.shape, m.start_dim, m.end_dim), "flatten")


@register_function("flatten")
def flatten_function(args: tuple, kwargs: dict) -> Cost:
    x = args[0]
    start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
    end = args[2] if len(args) > 2 else kwargs.get("end_dim", -1)
    return _reshape_cost(x, _flatten_shape(x.shape, start, end), "flatten")


@register_function("view", "reshape")
def view_function(args: tuple, kwargs: dict) -> Cost:
    x = args[0]
    sizes = args[1:] if len(args) > 2 or not isinstance(args[1], (tuple, list)) else tuple(args[1])
    sizes = sizes or tuple(kwargs.get("shape", ()))
    if list(sizes).count(-1) > 1:
        raise ShapeError(f"view {list(sizes)} has more than one -1")
    known = prod(s for s in sizes if not (isinstance(s, int) and s == -1))
    if not is_symbolic(x.numel) and not is_symbolic(known) and (known == 0 or x.numel % known):
        raise ShapeError(f"cannot view shape {list(x.shape)} as {list(sizes)}")
    inferred = x.numel // known if not (is_symbolic(x.numel) or is_symbolic(known)) else simplify(x.numel / known)
    shape = tuple(inferred if isinstance(s, int) and s == -1 else s for s in sizes)
    if not is_symbolic(x.numel) and not any(is_symbolic(s) for s in shape) and prod(shape) != x.numel:
        raise ShapeError(f"cannot view shape {list(x.shape)} as {list(sizes)}")
    return _reshape_cost(x, shape, kwargs.get("_fn", "view"))


def _expand(x: TensorSpec, sizes: tuple) -> tuple[list, list]:
    """Shape and strides of ``x.expand(*sizes)``: new leading dims and broadcast size-1 dims get stride 0."""
    lead = len(sizes) - len(x.shape)
    shape, strides = [], []
    for d, n in enumerate(sizes):
        if d < lead:
            shape.append(n)
            strides.append(0)
            continue
        size, stride = x.shape[d - lead], x.stride[d - lead]
        grows = not (isinstance(n, int) and n == -1) and not same_size(n, size)
        shape.append(size if isinstance(n, int) and n == -1 else n)
        strides.append(0 if grows else stride)
    return shape, strides


@register_function("permute", "transpose", "t", "squeeze", "unsqueeze", "contiguous", "expand", "detach")
def view_like_function(args: tuple, kwargs: dict) -> Cost:
    x, fn = args[0], kwargs.get("_fn")
    rest = args[1:]
    if fn == "detach":  # detach_ (in place) also cuts the tensor's later readers (grad_flow)
        return _unchanged(x, fn, **({"inplace": True} if kwargs.get("inplace") else {}))
    if fn == "contiguous" and x.is_contiguous:
        return _unchanged(x, fn)
    if fn == "contiguous":
        return Cost(out=x.with_shape(x.shape), kind="copy", hparams={"fn": fn})
    shape, strides = list(x.shape), list(x.stride)
    rank = len(shape)
    hparams: dict = {"fn": fn}
    if fn == "permute":
        dims = [dim_index(d, rank) for d in (rest[0] if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else rest)]
        shape, strides = [shape[d] for d in dims], [strides[d] for d in dims]
        hparams["dims"] = dims
        if dims == list(range(rank)):
            return _unchanged(x, fn)
    elif fn in ("transpose", "t"):
        a, b = (dim_index(rest[0], rank), dim_index(rest[1], rank)) if fn == "transpose" else (0, 1)
        if a == b or rank < 2:
            return _unchanged(x, fn)
        shape[a], shape[b] = shape[b], shape[a]
        strides[a], strides[b] = strides[b], strides[a]
        hparams["dims"] = [a, b]
    elif fn == "squeeze":
        dims = [dim_index(rest[0], rank)] if rest else [i for i, s in enumerate(shape) if same_size(s, 1)]
        keep = [i for i, s in enumerate(shape) if not (i in dims and same_size(s, 1))]
        if len(keep) == rank:
            return _unchanged(x, fn)
        shape, strides = [shape[i] for i in keep], [strides[i] for i in keep]
    elif fn == "unsqueeze":
        d = dim_index(rest[0], rank + 1)
        shape.insert(d, 1)
        strides.insert(d, strides[d] * x.shape[d] if d < rank else 1)  # PyTorch's choice; any works for size 1
    elif fn == "expand":
        shape, strides = _expand(x, tuple(rest[0] if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else rest))
        if len(shape) == rank and all(same_size(a, b) for a, b in zip(shape, x.shape)):
            return _unchanged(x, fn)
    return Cost(out=x.as_view(shape, strides), kind="view", alloc=False, hparams=hparams)

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


@register_function("stochastic_depth")
def stochastic_depth_function(args: tuple, kwargs: dict) -> Cost:
    """torchvision's ``stochastic_depth(input, p, mode, training)``: in training, each sample ("row")
    or the whole batch ("batch") is kept with probability 1 - p, as ``input * noise / (1 - p)``;
    backward keeps the small noise tensor.  In eval (or p = 0) it returns its input."""
    a = {**dict(zip(("input", "p", "mode", "training"), args)), **kwargs}
    x, p, mode = a["input"], float(a["p"]), a.get("mode", "row")
    if not a.get("training", True) or p == 0.0:
        return Cost(out=x, kind="identity", alloc=False, new_bytes=False, hparams={"fn": "stochastic_depth"})
    noise = x.shape[0] if mode == "row" else 1  # one keep/drop value per sample, or one for the batch
    return Cost(out=x.with_shape(x.shape), kind="dropout",
                hparams={"p": p, "training": True, "inplace": False, "fn": "stochastic_depth", "mode": mode},
                work={"transient_bytes": noise * x.dtype.itemsize, "saved": [("new", noise, x.dtype)]})


def _dropout_cost(x: TensorSpec, p: float, training: bool, inplace: bool, fn: str = "dropout") -> Cost:
    """In eval, dropout returns its input.  In training it writes a new (or, in place, the same)
    tensor and keeps a mask for backward (counted by the training-memory estimate)."""
    active = training and p > 0
    return Cost(out=x, kind="dropout" if active else "identity", alloc=active and not inplace,
                new_bytes=active and not inplace, hparams={"p": p, "training": training, "inplace": inplace, "fn": fn})


@register_function("chunk", "split")
def split_function(args: tuple, kwargs: dict) -> Cost:
    x, fn = args[0], kwargs.get("_fn")
    dim = dim_index(args[2] if len(args) > 2 else kwargs.get("dim", 0), len(x.shape))
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
        outs.append(x.as_view(shape, x.stride))  # each part keeps the input's strides
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
    """Basic indexing (ints, slices, None, ...): a view.  One integer tensor index: a gather
    (:func:`archstat.formulas.indexing.getitem_tensor_index`); other advanced indexing has no formula."""
    x, index = args[0], args[1]
    index = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, TensorSpec) for i in index):  # one integer tensor index: a gather
        return getitem_tensor_index(x, index)
    if any(not isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in index):
        raise NotImplementedError("advanced indexing")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        fill = len(x.shape) - sum(1 for i in index if i is not None and i is not Ellipsis)
        index = index[:at] + (slice(None),) * fill + index[at + 1:]
    shape, strides, dim = [], [], 0
    for i in index:
        if i is None:
            shape.append(1)
            strides.append(1)  # a size-1 dim: its stride never matters
            continue
        if isinstance(i, slice):
            shape.append(_slice_len(x.shape[dim], i))
            strides.append(x.stride[dim] * (i.step or 1))
        dim += 1  # an int index drops the dim
    shape += list(x.shape[dim:])
    strides += list(x.stride[dim:])
    # slices that keep every element (``x[:, :L]`` of a length-L dim) give the very same view: no new bytes
    same = all(isinstance(i, slice) for i in index) and list(x.shape) == shape and list(x.stride) == strides
    return Cost(out=x.as_view(shape, strides), kind="view", alloc=False, new_bytes=not same, hparams={"fn": "getitem"})
