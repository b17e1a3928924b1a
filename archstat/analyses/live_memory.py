"""Inference peak memory: the activation bytes alive at once, row by row, without running anything.

The lecture's memory column sums every output; a device never holds them all.  Here each row that
allocates (``alloc``) creates a storage of its output's bytes; a view, an in-place op or an
identity reuses its first input's storage; an op with several outputs of their own (max pooling
with its indices, attention with its weights) makes one storage per output, and a reader that
picks one of them (``source_parts``) keeps only that one alive.  A storage lives from the row that
creates it to the last row that reads a value in it (``sources``); the model's outputs live to
the end, and the input for the whole call (the caller holds it); a value whose sizes a later node
reads (``x.size(0)``, attrs ``held``) lives until that read, as fx's generated code keeps it.  While
row ``t`` runs, its inputs and its output are both alive, plus any temporaries of an op composed of
several (``work["transient_bytes"]``: LocalResponseNorm pads a squared copy of its input):

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

INPUT = (-1, None)  # the storage of the model input
Storage = tuple  # (row that allocated it, which of its outputs or None when it has one)


def _part(row_parts: Optional[list], k: int) -> Optional[list]:
    """Which outputs of its k-th source a row reads (None: all of them)."""
    return row_parts[k] if row_parts is not None and k < len(row_parts) else None


def storages(df: pd.DataFrame) -> list[list[Storage]]:
    """The storages each row's output lives in: its own (one per output when it allocates several,
    as max pooling's values and indices), else those of its first tensor input (views, in-place
    ops, identities; only the outputs of that input it reads)."""
    out: list[list[Storage]] = []
    rows = zip(df["alloc"], df["sources"], df["out_part_bytes"], df["source_parts"])
    for i, (alloc, sources, many, row_parts) in enumerate(rows):
        if alloc:
            out.append([(i, k) for k in range(len(many))] if many else [(i, None)])
        elif not sources or sources[0] < 0:
            out.append([INPUT])
        else:
            out.append(_pick(out[sources[0]], _part(row_parts, 0)))
    return out


def _pick(keys: list[Storage], parts: Optional[list]) -> list[Storage]:
    """The storages among ``keys`` that hold the given outputs (all when ``parts`` is None)."""
    if parts is None or len(keys) == 1:
        return keys
    return [keys[k] for k in parts if k < len(keys)]


def _sizes(df: pd.DataFrame) -> dict[Storage, int]:
    size: dict[Storage, int] = {}
    for i, (nbytes, alloc, many, work) in enumerate(zip(df["act_bytes"], df["alloc"], df["out_part_bytes"],
                                                       df["work"])):
        nbytes = (work or {}).get("storage_bytes", nbytes)  # a result in a larger storage (CPU col2im)
        if alloc:
            for k, b in enumerate(many or [nbytes]):
                size[(i, k if many else None)] = int(b)
    return size


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
    size = _sizes(df)
    last = {s: i for i, keys in enumerate(owner) for s in keys}  # at least the row that made (or last touched) it
    for t, (sources, row_parts) in enumerate(zip(df["sources"], df["source_parts"])):
        for j, k in enumerate(sources):
            for s in (_pick(owner[k], _part(row_parts, j)) if k >= 0 else [INPUT]):
                last[s] = max(last.get(s, t), t)
    for k, t in df.attrs.get("held") or []:  # read later by a node that is no row (``x.size(0)``)
        if k < n:
            for s in owner[k]:
                last[s] = max(last[s], min(t, n - 1))
    outputs, output_parts = df.attrs.get("outputs"), df.attrs.get("output_parts")
    if outputs is None:  # the meta engine does not say what the model returns: keep every unread value
        read = {k for sources in df["sources"] for k in sources}
        outputs, output_parts = [k for k in range(n) if k not in read], None
    for j, k in enumerate(outputs):
        if k >= 0:
            for s in _pick(owner[k], output_parts[j] if output_parts else None):
                last[s] = n - 1
    delta = [0] * (n + 1)  # a sweep: + at creation, - after the last use
    for s, nbytes in size.items():
        delta[s[0]] += nbytes
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
