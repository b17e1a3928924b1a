"""The oracle for the inference-peak estimate (``archstat.analyses.live_memory``): live storages, measured.

The model's fx graph runs as generated code (which frees every value after its last use, the
schedule the estimate assumes) under a ``TorchDispatchMode`` that sees every aten op's outputs.
Each new storage is counted once, by its ``untyped_storage()`` pointer, while any tensor viewing it
is alive (one ``weakref.finalize`` per tensor); the weights and the input are not activations and
are left out.  A marker before each row's node starts that row, so the result is, per row, the
most bytes alive at any moment of its real call: what ``live_bytes`` predicts, minus the input.
The dispatch level sees the outputs of the aten ops a module is made of (LocalResponseNorm's
squares, pads and pools), not the scratch space inside one kernel (cuDNN workspaces).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.fx as fx

from archstat.engine.rows import Rows
from archstat.engine.trace import copy_graph
from archstat.validation.live_storages import LiveStorages, existing_storages


_ACTIVE: list[LiveStorages] = []


def _enter_row(row: int) -> None:
    _ACTIVE[-1].enter_row(row)


def measured_live(model: torch.nn.Module, rows: Rows, args: Sequence[torch.Tensor],
                  kwargs: Optional[dict] = None) -> Optional[list[int]]:
    """Per row of ``rows``: the most activation bytes alive during its real call on ``args`` and
    ``kwargs`` (every input excluded).

    None for models that ran on the meta engine (no graph to run).
    """
    if rows.engine != "fx":
        return None
    graph, copies = copy_graph(rows.graph)
    for i, node in enumerate(rows.nodes):
        with graph.inserting_before(copies[node]):
            graph.call_function(_enter_row, (i,))
    gm = fx.GraphModule(model, graph)
    kwargs = kwargs or {}
    known = existing_storages(model, *args, *kwargs.values())
    tracker = LiveStorages(known, len(rows.nodes))
    _ACTIVE.append(tracker)
    try:
        with torch.no_grad(), tracker:
            out = gm(*args, **kwargs)  # the generated forward takes keyword inputs by name
        del out
    finally:
        _ACTIVE.pop()
    return tracker.row_peak
