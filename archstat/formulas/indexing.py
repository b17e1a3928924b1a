"""Gather-style indexing: ``x[index]`` with one integer tensor index, ``torch.gather``, ``index_select``.

Each makes a new tensor (kind ``copy``), no MACs:

* ``x[..., idx, ...]`` (one integer tensor among slices, ints and None): the indexed dim is replaced
  by ``idx``'s shape, as NumPy's advanced indexing places a single index array;
* ``gather(x, dim, idx)``: the output has ``idx``'s shape;
* ``index_select(x, dim, idx)``: ``x``'s shape with ``dim`` of size ``len(idx)``.

Backward needs the indices (int64) and ``x``'s sizes (gather: ``x`` itself): the index is saved,
model state when it is a buffer (Swin's ``relative_position_index``).  A boolean mask index has a data-dependent shape
and no formula.  fvcore ignores ``aten::index`` and ``aten::gather`` on purpose (0), and has no
handle for ``aten::index_select``.
"""
from __future__ import annotations

from archstat.formulas import Cost, ShapeError, register_function
from archstat.spec import TensorSpec


def _saved_index(index: TensorSpec, position: int) -> list:
    """The index is saved for backward; it is an input row only when it is an activation (a plain
    TensorSpec), while a parameter or buffer is model state."""
    return [("in", position)] if type(index) is TensorSpec else []


def advanced_index_shape(shape: tuple, index: tuple) -> tuple:
    """Output shape of ``x[index]`` with exactly one tensor among ints, slices, None and Ellipsis."""
    tensors = [i for i in index if isinstance(i, TensorSpec)]
    if len(tensors) != 1 or not (tensors[0].dtype.is_floating_point is False and tensors[0].dtype.itemsize > 1):
        raise NotImplementedError("indexing by other than one integer tensor")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        fill = len(shape) - sum(1 for i in index if i is not None and i is not Ellipsis)
        index = index[:at] + (slice(None),) * fill + index[at + 1:]
    out: list = []
    dim = 0
    for i in index:
        if i is None:
            out.append(1)
            continue
        if dim >= len(shape):
            raise ShapeError(f"too many indices for a tensor of shape {list(shape)}")
        if isinstance(i, slice):
            out.append(len(range(*i.indices(shape[dim]))) if isinstance(shape[dim], int) else shape[dim])
        elif isinstance(i, TensorSpec):
            out.extend(i.shape)
        dim += 1  # an int index drops the dim
    return (*out, *shape[dim:])


def getitem_tensor_index(x: TensorSpec, index: tuple) -> Cost:
    """``x[idx]`` with one integer tensor index (called by the getitem formula)."""
    shape = advanced_index_shape(x.shape, index)
    idx = next(i for i in index if isinstance(i, TensorSpec))
    position = 1 if type(x) is TensorSpec or type(idx) is not TensorSpec else 0
    return Cost(out=x.with_shape(shape), kind="copy", hparams={"fn": "index"},
                work={"saved": _saved_index(idx, position)})


@register_function("gather")
def gather_function(args: tuple, kwargs: dict) -> Cost:
    a = {**dict(zip(("input", "dim", "index"), args)), **kwargs}
    x, idx = a["input"], a["index"]
    if len(idx.shape) != len(x.shape):
        raise ShapeError(f"gather: index of rank {len(idx.shape)} for an input of rank {len(x.shape)}")
    # gather_backward takes ``self`` itself (derivatives.yaml), so the input is saved too
    own = [("in", 0)] if type(x) is TensorSpec else []
    return Cost(out=x.with_shape(idx.shape), kind="copy", hparams={"fn": "gather", "dim": a["dim"]},
                work={"saved": own + _saved_index(idx, len(own))})


@register_function("index_select")
def index_select_function(args: tuple, kwargs: dict) -> Cost:
    a = {**dict(zip(("input", "dim", "index"), args)), **kwargs}
    x, idx, dim = a["input"], a["index"], a["dim"]
    if len(idx.shape) > 1:
        raise ShapeError(f"index_select: index must be 1-d, got shape {list(idx.shape)}")
    shape = list(x.shape)
    shape[dim] = idx.shape[0] if idx.shape else 1
    return Cost(out=x.with_shape(shape), kind="copy", hparams={"fn": "index_select", "dim": dim},
                work={"saved": _saved_index(idx, 1 if type(x) is TensorSpec else 0)})


@register_function("setitem")
def setitem_function(args: tuple, kwargs: dict) -> Cost:
    """``x[key] = value`` (basic indexing): written in place into ``x``, no MACs, nothing allocated;
    autograd's copy into a slice saves nothing.  A tensor key has no formula."""
    x, key = args[0], args[1]
    key = key if isinstance(key, tuple) else (key,)
    if any(isinstance(k, TensorSpec) for k in key):
        raise NotImplementedError("assignment through a tensor index")
    # a scalar is written with aten::fill_ (fvcore has no handle), a tensor with aten::copy_
    # a scalar is written with aten::fill_ (fvcore has no handle), a tensor with aten::copy_; PyTorch
    # first wraps the scalar in a 0-d tensor of x's dtype, alive while the op runs
    scalar = not isinstance(args[2], TensorSpec)
    return Cost(out=x, kind="copy", alloc=False, new_bytes=False, hparams={"fn": "setitem_scalar" if scalar else "setitem"},
                work={"transient_bytes": x.dtype.itemsize if scalar else 0})
