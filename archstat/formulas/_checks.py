"""Input checks shared by the formulas: they raise ShapeError with a message that names the sizes."""
from __future__ import annotations

from typing import Sequence

from archstat.formulas import ShapeError
from archstat.spec import Size, TensorSpec, is_symbolic


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
