"""Tensor descriptions and integer arithmetic that works on ints and sympy expressions alike.

A :class:`TensorSpec` stands for a tensor during analysis: its full shape (batch first) and dtype,
no storage.  Shapes hold Python ints, or sympy expressions in ``N``, ``H``, ``W`` in symbolic mode.
The helpers below are written so that one formula serves both: ``//`` on a sympy expression is
already ``floor(a/b)``, and ``ceil_div`` is ``-(-a // b)``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence, Union

import torch

if TYPE_CHECKING:
    import sympy

# sympy (0.3 s to import) loads only for symbolic analyses: a value cannot be a sympy expression
# before sympy is imported, so the numeric path checks ``sys.modules`` instead of importing it.
Size = Union[int, "sympy.Expr"]


@dataclass(frozen=True)
class TensorSpec:
    """Shape (batch first), dtype and, for a view, strides of a tensor that is never allocated.

    ``strides`` (in elements) is None for a contiguous row-major tensor, which is what every op
    that computes a result returns.  Only views (permute, transpose, slicing, expand, split...)
    carry strides, because whether ``contiguous()`` or ``reshape`` must copy depends on them.
    """

    shape: tuple[Size, ...]
    dtype: torch.dtype = torch.float32
    strides: Optional[tuple[Size, ...]] = None

    @classmethod
    def of(cls, tensor: torch.Tensor) -> "TensorSpec":
        """The spec of a real (or meta) tensor, strides kept when it is a non-contiguous view."""
        return cls(tuple(tensor.shape), tensor.dtype, None if tensor.is_contiguous() else tuple(tensor.stride()))

    @property
    def numel(self) -> Size:
        return prod(self.shape)

    @property
    def nbytes(self) -> Size:
        return self.numel * self.dtype.itemsize

    @property
    def stride(self) -> tuple[Size, ...]:
        return self.strides if self.strides is not None else contiguous_strides(self.shape)

    @property
    def is_contiguous(self) -> bool:
        return self.strides is None or strides_are_contiguous(self.shape, self.strides)

    def with_shape(self, shape: Iterable[Size]) -> "TensorSpec":
        """A new (contiguous) tensor of this dtype."""
        return TensorSpec(tuple(shape), self.dtype)

    def as_view(self, shape: Iterable[Size], strides: Iterable[Size]) -> "TensorSpec":
        """A view of this tensor; ``strides`` is dropped when it is the contiguous layout anyway."""
        shape, strides = tuple(shape), tuple(strides)
        return TensorSpec(shape, self.dtype, None if strides_are_contiguous(shape, strides) else strides)

    @property
    def sample_shape(self) -> tuple[Size, ...]:
        """Shape without the batch dimension, as tables print it."""
        return self.shape[1:]


def contiguous_strides(shape: Sequence[Size]) -> tuple[Size, ...]:
    """Row-major strides: ``stride[d] = prod(shape[d+1:])``."""
    out, step = [], 1
    for size in reversed(shape):
        out.append(step)
        step = step * size
    return tuple(reversed(out))


def same_size(a: Size, b: Size) -> bool:
    """``a == b`` for ints, and for sympy expressions once expanded (``N*C*H`` vs ``C*N*H``)."""
    if not (is_symbolic(a) or is_symbolic(b)):
        return a == b
    import sympy

    return sympy.expand(a - b) == 0


def strides_are_contiguous(shape: Sequence[Size], strides: Sequence[Size]) -> bool:
    """PyTorch's ``is_contiguous``: from the last dim, each stride is the product of the sizes after
    it, ignoring dims of size 1 (any stride is fine there)."""
    expected: Size = 1
    for size, stride in zip(reversed(shape), reversed(strides)):
        if same_size(size, 1):
            continue
        if not same_size(stride, expected):
            return False
        expected = expected * size
    return True


def _less(a: Size, b: Size) -> bool:
    if not (is_symbolic(a) or is_symbolic(b)):
        return a < b
    import sympy

    diff = sympy.simplify(a - b)
    if diff.is_negative is None:
        raise NotImplementedError(f"cannot decide {a} < {b} for every input size")
    return bool(diff.is_negative)


def view_strides(shape: Sequence[Size], strides: Sequence[Size], new_shape: Sequence[Size]
                 ) -> Optional[tuple[Size, ...]]:
    """Strides of ``new_shape`` viewing a tensor of ``shape``/``strides`` without copying, or None
    when no such view exists (then ``reshape`` copies and ``view`` fails).

    PyTorch's ``computeStride`` (aten/src/ATen/TensorUtils.cpp): walk the old dims from the last,
    grouping runs that are contiguous with each other ("chunks"); each chunk must be covered
    exactly by consecutive new dims, whose strides are then the chunk's base stride times the
    product of the new sizes after them.
    """
    if strides_are_contiguous(shape, strides):
        return contiguous_strides(new_shape)
    new_strides: list[Size] = [0] * len(new_shape)
    view_d = len(new_shape) - 1
    chunk_base = strides[-1] if strides else 1
    tensor_numel: Size = 1
    view_numel: Size = 1
    for d in range(len(shape) - 1, -1, -1):
        tensor_numel = tensor_numel * shape[d]
        if d == 0 or (not same_size(shape[d - 1], 1)
                      and not same_size(strides[d - 1], tensor_numel * chunk_base)):
            while view_d >= 0 and (_less(view_numel, tensor_numel) or same_size(new_shape[view_d], 1)):
                new_strides[view_d] = view_numel * chunk_base
                view_numel = view_numel * new_shape[view_d]
                view_d -= 1
            if not same_size(view_numel, tensor_numel):
                return None
            if d > 0:
                chunk_base, tensor_numel, view_numel = strides[d - 1], 1, 1
    return tuple(new_strides) if view_d == -1 else None


def leaves(value: Any, kind: type | tuple) -> list:
    """The ``kind`` instances inside nested lists, tuples and dicts, in order (a pytree flatten)."""
    if isinstance(value, kind):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in leaves(v, kind)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in leaves(v, kind)]
    return []


def rebuilt(value: Sequence, parts: Iterable[Any]) -> Sequence:
    """``parts`` in a sequence of ``value``'s kind: a list, a tuple, a namedtuple (fields by position),
    a torch.return_types structseq (one sequence)."""
    if isinstance(value, tuple) and hasattr(type(value), "_fields"):
        return type(value)(*parts)
    return type(value)(list(parts))


def prod(values: Iterable[Size]) -> Size:
    out: Size = 1
    for v in values:
        out = out * v
    return out


def is_sympy(value: Any) -> bool:
    """``value`` is a sympy object (checked without importing sympy: see ``Size``)."""
    sympy = sys.modules.get("sympy")
    return sympy is not None and isinstance(value, sympy.Basic)


def is_symbolic(value: Any) -> bool:
    return is_sympy(value) and not value.is_Integer


def simplify(value: Size) -> Size:
    """Plain int for concrete values, a sympy expression otherwise."""
    if is_sympy(value):
        return int(value) if value.is_Integer else value
    return value


def ceil_div(a: Size, b: Size) -> Size:
    """ceil(a / b) for ints and expressions (sympy prints ``ceiling``, not ``-floor(-x)``)."""
    if is_symbolic(a) or is_symbolic(b):
        import sympy

        return sympy.ceiling(sympy.Rational(1, 1) * a / b)
    return -((-a) // b)


def pair(value: Any, n: int = 2) -> tuple:
    """``3`` -> ``(3, 3)``; a tuple is kept (PyTorch's ``_pair``)."""
    if isinstance(value, (tuple, list)):
        return tuple(value) if len(value) == n else tuple(value) * n if len(value) == 1 else tuple(value)
    return (value,) * n


def iterator_strides(shape: Sequence[Size], operands: Sequence["TensorSpec"]) -> Optional[tuple[Size, ...]]:
    """Strides of a new elementwise result of ``shape`` from ``operands``, as TensorIterator lays it
    out; None for the contiguous layout (or symbolic sizes, where the order cannot be compared).

    Why: ``x.transpose(1, 2) + y`` is not contiguous in PyTorch: its dims are ordered as the first
    operand's strides order them (``reorder_dimensions``: an insertion sort from the innermost dim,
    each pair decided by the first operand whose strides differ there, broadcast dims skipped, equal
    strides putting the smaller dim inside), then packed densely in that order.
    """
    nd = len(shape)
    if all(o.strides is None for o in operands) or any(is_symbolic(s) for s in shape):
        return None
    expanded = []
    for o in operands:
        lead = nd - len(o.shape)
        expanded.append([0] * lead + [0 if same_size(size, 1) and not same_size(shape[lead + i], 1) else st
                                      for i, (size, st) in enumerate(zip(o.shape, o.stride))])
    if any(is_symbolic(s) for st in expanded for s in st):
        return None

    def should_swap(d0: int, d1: int) -> int:
        for st in expanded:
            a, b = st[d0], st[d1]
            if a == 0 or b == 0:
                continue
            if a != b:
                return -1 if a < b else 1
            if shape[d0] > shape[d1]:
                return 1
        return 0

    perm = list(range(nd))[::-1]  # perm[0]: the innermost dim
    for i in range(1, nd):
        d1 = i
        for d0 in range(i - 1, -1, -1):
            c = should_swap(perm[d0], perm[d1])
            if c > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif c < 0:
                break
    strides: list[Size] = [0] * nd
    step: Size = 1
    for d in perm:
        strides[d] = step
        step = step * shape[d]
    return None if strides_are_contiguous(shape, strides) else tuple(strides)
