"""Where a row's operands are in a forward pass: who wrote them, how much traffic since, and whether they
came out of a BatchNorm.  Rows are ``analyze()``'s, in execution order; ``sources`` holds the positions
of the rows that produced a row's inputs (-1: the model's input).  The time model reads these to price
an op back to back (operands in the private caches), a residual add's just-written operand, a max
pool over normalised data, and how much traffic separates two calls of a family.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from archstat.profiling.op_families import NO_KERNEL, family, numel, work


def operand_writers(records: list[dict]) -> list[list[Optional[int]]]:
    """Per row (execution order), the row that wrote each of its operands, in ``sources`` order: -1 for
    the model's input, None for a source that is not a row; a view's output counts as written by its
    source's writer (it is the same storage)."""
    writer: list[int] = []  # the row whose output each row's output is
    out = []
    for i, row in enumerate(records):
        ws = [(writer[int(s)] if 0 <= int(s) < i else -1) if isinstance(s, (int, np.integer)) else None
              for s in (row.get("sources") or [])]
        known = [w for w in ws if w is not None]
        writer.append(known[0] if family(row) in NO_KERNEL and known and known[0] >= 0 else i)
        out.append(ws)
    return out


def in_private_caches(records: list[dict], batch: int, itemsize: int, capacity: float) -> list[bool]:
    """Per row (execution order): were all its operands touched within ``capacity`` bytes of traffic?

    An operand's distance is the bytes the rows since the one that wrote it moved (``work``; a view's
    operand is its source's), plus the row's own bytes; the model's input counts as cold.  ``capacity``
    is the private L2 of the cores in use (``cpu_caches``): a shared last-level cache on a shared host
    cannot be counted on."""
    moved = np.cumsum([0.0] + [work(r, batch, itemsize)[1] for r in records])
    out = []
    for i, ws in enumerate(operand_writers(records)):
        writers = [w for w in ws if w is not None]
        ok = bool(writers) and min(writers) >= 0
        out.append(bool(ok and moved[i + 1] - moved[min(writers) + 1] <= capacity))
    return out


def fresh_operand_bytes(records: list[dict], batch: int, itemsize: int) -> list[float]:
    """Per row (execution order): for an op with two or more operands, one of which the op just before it
    wrote (a view passes the write on), that operand's bytes; 0 for every other row.  Read with
    ``sources`` and ``in_shapes`` in the same order, which holds for the binary ops it is used on (an op
    that takes one tensor twice lists it once in ``sources``)."""
    out, previous = [], -1
    for i, (row, ws) in enumerate(zip(records, operand_writers(records))):
        shapes = row.get("in_shapes") or []
        fresh = [k for k, w in enumerate(ws) if w is not None and w == previous >= 0 and k < len(shapes)]
        out.append(float(numel(shapes[fresh[0]]) * batch * itemsize) if len(ws) >= 2 and fresh else 0.0)
        previous = previous if family(row) in NO_KERNEL else i
    return out


def model_input_bytes(records: list[dict], batch: int, itemsize: int) -> list[float]:
    """Per row (execution order): the bytes of its operands that are the model's input itself (a view of
    it is a row of its own, whose output counts as that row's); 0 for most rows.  Read with ``sources``
    and ``in_shapes`` in the same order, as ``fresh_operand_bytes`` reads them.  A pass touches the
    model's input once, a whole pass after the last time: the row that reads it finds it in DRAM
    (``TimeModel.cold_weights_s``)."""
    out = []
    for row, ws in zip(records, operand_writers(records)):
        shapes = row.get("in_shapes") or []
        out.append(float(sum(numel(shapes[k]) for k, w in enumerate(ws) if w == -1 and k < len(shapes)))
                   * batch * itemsize)
    return out


def family_reuse_bytes(records: list[dict], batch: int, itemsize: int) -> list[float]:
    """Per row (execution order): the bytes the rows between it and the last call of its family moved
    (``work``), counting back into the pass before for a family's first call in a pass: a pass follows a
    pass (a profile's timed passes, a server's requests), so a family called once a pass finds the
    whole pass's traffic, less its own, between two of its calls.

    The time model reads it as how far the family's code has gone down the cache hierarchy
    (``TimeModel.cold_at``)."""
    moved = [work(r, batch, itemsize)[1] for r in records]
    total, ends, last = float(sum(moved)), np.cumsum(moved), {}
    for i, row in enumerate(records):  # each family's last call: where the pass before left it
        last[family(row)] = float(ends[i]) - total
    out = []
    for i, row in enumerate(records):
        fam, start = family(row), float(ends[i]) - moved[i]
        out.append(start - last[fam])
        last[fam] = float(ends[i])
    return out


PASS_NORMALIZED = ("activation", "pool_max", "pool_avg", "concat", "copy", *NO_KERNEL)


def normalized_sources(records: list[dict]) -> list[bool]:
    """Per row (execution order): does its input come out of a BatchNorm, through ops that keep each
    channel centred (activations, pools, concats of such, views)?  ``sources`` holds the positions of
    the rows that produced a row's inputs (-1: the model's input).  A max pool's time depends on it
    (``microbench.pool_input``)."""
    out_norm: list[bool] = []
    inputs: list[bool] = []
    for row in records:
        srcs = [s for s in (row.get("sources") or []) if isinstance(s, (int, np.integer)) and 0 <= s < len(out_norm)]
        from_norm = bool(srcs) and all(out_norm[s] for s in srcs)
        inputs.append(from_norm)
        fam = family(row)
        out_norm.append(fam == "batch_norm" or (fam in PASS_NORMALIZED and from_norm))
    return inputs
