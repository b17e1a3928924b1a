"""Which rows' values are used: the rows the model's outputs depend on, and what a tracer keeps.

A value computed but never used (a dead branch) still runs in eager PyTorch, so FlopCounterMode
and a real run count it.  ``torch.jit.trace``, which fvcore's FlopCountAnalysis reads, eliminates
dead code: it keeps only the nodes the outputs depend on and those with side effects (an in-place
write, BatchNorm's running statistics in training), with everything feeding them.  So the rows get:

* ``used``: the model's outputs depend on the row (a dead row gets no gradient either);
* ``traced``: fvcore's trace keeps the row (``used``, or it feeds a side effect).
"""
from __future__ import annotations

from typing import Optional


def _side_effect(r: dict) -> bool:
    hp = r["hparams"] if isinstance(r["hparams"], dict) else {}
    work = r["work"] if isinstance(r["work"], dict) else {}
    in_place = bool(hp.get("inplace")) or (r["kind"] == "elementwise" and not r["alloc"])
    return in_place or bool(work.get("updates_state"))


def _reach(rows: list[dict], roots: set[int]) -> list[bool]:
    """Rows that ``roots`` depend on (themselves included), walking ``sources`` backwards."""
    seen, stack = set(roots), list(roots)
    while stack:
        for s in rows[stack.pop()]["sources"]:
            if s >= 0 and s not in seen:
                seen.add(s)
                stack.append(s)
    return [i in seen for i in range(len(rows))]


def liveness(rows: list[dict], outputs: Optional[list[int]]) -> tuple[list[bool], list[bool]]:
    """``(used, traced)`` per row; every row is both when the outputs are unknown (meta engine)."""
    if outputs is None:
        return [True] * len(rows), [True] * len(rows)
    out = {i for i in outputs if 0 <= i < len(rows)}
    used = _reach(rows, out)
    traced = _reach(rows, out | {i for i, r in enumerate(rows) if _side_effect(r)})
    return used, traced
