"""Input checks and shape helpers shared by the formulas: errors are ShapeErrors that name the sizes."""
from __future__ import annotations

from typing import Sequence

from archstat.formulas import ShapeError
from archstat.spec import Size, TensorSpec, is_symbolic


def spatial_dims(m: object, *by_dims: type) -> int:
    """1, 2 or 3: which of ``by_dims`` (the 1-d, 2-d and 3-d classes of one layer) ``m`` is an instance of.

    From the class hierarchy, not the class name: a ``FrozenBN(nn.BatchNorm2d)`` is 2-d."""
    return next(d for d, cls in enumerate(by_dims, start=1) if isinstance(m, cls))


def require_rank(x: TensorSpec, ranks: Sequence[int], what: str) -> None:
    if len(x.shape) not in ranks:
        want = " or ".join(f"{r - 1}-d" for r in ranks)
        raise ShapeError(f"{what} expects a {want} input per sample, got shape {list(x.sample_shape)}")


def require_channels(got: Size, expected: int, what: str = "input channels") -> None:
    if not is_symbolic(got) and int(got) != int(expected):
        raise ShapeError(f"expects {expected} {what}, got {got}")


def require_positive(sizes: Sequence[Size], in_sizes: Sequence[Size]) -> None:
    """PyTorch refuses an output size below 1; so do we, naming both sizes."""
    if any(not is_symbolic(s) and s < 1 for s in sizes):
        shown = "x".join(str(s) for s in sizes)
        shown_in = "x".join(str(s) for s in in_sizes)
        raise ShapeError(f"output size {shown} is below 1 (input {shown_in} too small)")


def dim_index(d: int, rank: int) -> int:
    """PyTorch's negative dims: ``-1`` is ``rank - 1``, as ``x.size(d)`` reads it."""
    return d + rank if d < 0 else d


def broadcast_shapes(a: tuple, b: tuple) -> tuple:
    """NumPy/PyTorch broadcasting of two shapes: aligned from the right, a 1 stretches to the other."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if not is_symbolic(x) and not is_symbolic(y) and x != y and 1 not in (x, y):
            raise ShapeError(f"batch dimensions {list(a)} and {list(b)} do not broadcast")
        out.append(y if x == 1 else x)
    return tuple(reversed(out))
