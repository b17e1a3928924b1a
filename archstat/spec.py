"""Tensor descriptions and integer arithmetic that works on ints and sympy expressions alike.

A :class:`TensorSpec` stands for a tensor during analysis: its full shape (batch first) and dtype,
no storage.  Shapes hold Python ints, or sympy expressions in ``N``, ``H``, ``W`` in symbolic mode.
The helpers below are written so that one formula serves both: ``//`` on a sympy expression is
already ``floor(a/b)``, and ``ceil_div`` is ``-(-a // b)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Union

import sympy
import torch

Size = Union[int, sympy.Expr]


@dataclass(frozen=True)
class TensorSpec:
    """Shape (batch first) and dtype of a tensor that is never allocated."""

    shape: tuple[Size, ...]
    dtype: torch.dtype = torch.float32

    @property
    def numel(self) -> Size:
        return prod(self.shape)

    @property
    def nbytes(self) -> Size:
        return self.numel * self.dtype.itemsize

    def with_shape(self, shape: Iterable[Size]) -> "TensorSpec":
        return TensorSpec(tuple(shape), self.dtype)

    @property
    def sample_shape(self) -> tuple[Size, ...]:
        """Shape without the batch dimension, as tables print it."""
        return self.shape[1:]


def leaves(value: Any, kind: type | tuple) -> list:
    """The ``kind`` instances inside nested lists, tuples and dicts, in order (a pytree flatten)."""
    if isinstance(value, kind):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in leaves(v, kind)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in leaves(v, kind)]
    return []


def prod(values: Iterable[Size]) -> Size:
    out: Size = 1
    for v in values:
        out = out * v
    return out


def is_symbolic(value: Any) -> bool:
    return isinstance(value, sympy.Basic) and not value.is_Integer


def simplify(value: Size) -> Size:
    """Plain int for concrete values, a sympy expression otherwise."""
    if isinstance(value, sympy.Basic):
        return int(value) if value.is_Integer else value
    return value


def ceil_div(a: Size, b: Size) -> Size:
    """ceil(a / b) for ints and expressions (sympy prints ``ceiling``, not ``-floor(-x)``)."""
    if is_symbolic(a) or is_symbolic(b):
        return sympy.ceiling(sympy.Rational(1, 1) * a / b)
    return -((-a) // b)


def pair(value: Any, n: int = 2) -> tuple:
    """``3`` -> ``(3, 3)``; a tuple is kept (PyTorch's ``_pair``)."""
    if isinstance(value, (tuple, list)):
        return tuple(value) if len(value) == n else tuple(value) * n if len(value) == 1 else tuple(value)
    return (value,) * n
