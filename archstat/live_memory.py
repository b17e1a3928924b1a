"""Inference peak memory: the activation bytes alive at once, row by row, without running anything.

The lecture's memory column sums every output; a device never holds them all.  Here each row that
allocates (``alloc``) creates a storage of its output's bytes; a view, an in-place op or an
identity reuses its first input's storage.  A storage lives from the row that creates it to the
last row that reads a value in it (``sources``); the model's outputs live to the end, and the
input for the whole call (the caller holds it).  While row ``t`` runs, its inputs and its output
are both alive, plus any temporaries of an op composed of several (``work["transient_bytes"]``:
LocalResponseNorm pads a squared copy of its input):

    live[t] = input bytes + sum(bytes(s) for storages s with first(s) <= t <= last(s)) + transient[t]
    peak    = max_t live[t]

This is the schedule of torch.fx's generated code, which frees every value right after its last
use: the smallest peak for this op order.  An eager ``forward`` can hold more (a Python local such
as a residual's ``identity`` lives until the block returns), and kernels may use workspace (cuDNN),
so a device's allocator peak is this plus the weights plus those extras; ``archstat validate``
checks the schedule itself exactly, with a dispatch-level tracker on the fx graph.
"""
from __future__ import annotations

from typing import Optional

import pandas as pd

from archstat.spec import is_symbolic

INPUT = -1  # the storage of the model input


def storages(df: pd.DataFrame) -> list[int]:
    """The storage each row's output lives in: its own row index if it allocates, else the storage
    of its first tensor input (views, in-place ops, identities)."""
    out: list[int] = []
    for alloc, sources in zip(df["alloc"], df["sources"]):
        first = sources[0] if sources else INPUT
        out.append(len(out) if alloc else (out[first] if first >= 0 else INPUT))
    return out


def live_bytes(df: pd.DataFrame, transients: bool = True) -> Optional[list[int]]:
    """``live[t]`` for every row of an analyze() table (numeric mode), in bytes; None when the
    table is symbolic (a peak over rows is then a ``Max`` of case distinctions, not a number).

    ``transients=False`` leaves out the ops' internal temporaries, which depend on the device and
    the autograd mode (CPU inference mode skips max-pool indices): a floor for this op order.
    """
    if df.attrs.get("symbolic") or any(is_symbolic(b) for b in df["act_bytes"]):
        return None
    n = len(df)
    owner = storages(df)
    size = {i: int(b) for i, (b, a) in enumerate(zip(df["act_bytes"], df["alloc"])) if a}
    last = {s: i for i, s in enumerate(owner)}  # at least the row that made (or last touched) it
    for t, sources in enumerate(df["sources"]):
        for k in sources:
            s = owner[k] if k >= 0 else INPUT
            last[s] = max(last.get(s, t), t)
    outputs = df.attrs.get("outputs")
    if outputs is None:  # the meta engine does not say what the model returns: keep every unread value
        read = {k for sources in df["sources"] for k in sources}
        outputs = [k for k in range(n) if k not in read]
    for k in outputs:
        if k >= 0:
            last[owner[k]] = n - 1
    delta = [0] * (n + 1)  # a sweep: + at creation, - after the last use
    for s, nbytes in size.items():
        delta[s] += nbytes
        delta[last[s] + 1] -= nbytes
    live, running = [], int(df.attrs.get("input_bytes", 0))
    for t, work in enumerate(df["work"]):
        running += delta[t]
        live.append(running + (int(work.get("transient_bytes") or 0) if transients else 0))  # the op's temporaries
    return live


def inference_peak(df: pd.DataFrame, transients: bool = True) -> Optional[dict]:
    """``{"peak_bytes", "peak_row", "peak_name", "input_bytes"}`` of an analyze() table, or None
    when it is symbolic or empty (``transients``: see :func:`live_bytes`)."""
    live = live_bytes(df, transients)
    if not live:
        return None
    t = max(range(len(live)), key=live.__getitem__)
    return {"peak_bytes": live[t], "peak_row": t, "peak_name": f"{df['name'].iloc[t] or '<root>'} ({df['op'].iloc[t]})",
            "input_bytes": int(df.attrs.get("input_bytes", 0))}
