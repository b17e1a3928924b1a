"""Bytes alive inside one op made of several kernels: a timeline of allocations and frees.

A module such as ``nn.MultiheadAttention`` runs a dozen aten ops; while it runs, their results come
and go.  ``Timeline`` replays that order with sizes only (numbers or sympy expressions):

    live(t) = sum of the bytes allocated and not yet freed at step t,   peak = max_t live(t)

and ``transient(out_bytes)`` is what the inference peak adds for the op besides its outputs
(``Cost.work["transient_bytes"]``): ``peak - out_bytes``.
"""
from __future__ import annotations

from archstat.spec import Size, is_symbolic


def size_max(a: Size, b: Size) -> Size:
    """max of two sizes; a sympy ``Max`` when either is symbolic."""
    if is_symbolic(a) or is_symbolic(b):
        import sympy  # symbolic mode only: sympy is already loaded

        return sympy.Max(a, b)
    return max(a, b)


class Timeline:
    """Named allocations in execution order; ``peak`` is the most bytes alive at once."""

    def __init__(self) -> None:
        self.alive: dict[str, Size] = {}
        self.live: Size = 0
        self.peak: Size = 0

    def new(self, name: str, nbytes: Size) -> None:
        self.alive[name] = nbytes
        self.live = self.live + nbytes
        self.peak = size_max(self.peak, self.live)

    def free(self, *names: str) -> None:
        for name in names:
            self.live = self.live - self.alive.pop(name)

    def transient(self, out_bytes: Size) -> Size:
        return self.peak - out_bytes
