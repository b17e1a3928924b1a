"""The training-graph checks of ``validate(mode="train")``: saved tensors and backward FLOPs, per row.

* ``saved_ok``: the bytes of the storages each row is the first to save for backward
  (``archstat.analyses.memory.saved_per_row``, no autograd) equal what ``saved_tensors_hooks`` sees during
  a real forward pass with autograd on (``memory_check.measured_saved``).  This is the part of a
  training step's memory that grows with the batch.
* ``bwd_ok``: the backward pass's FLOPs in FlopCounterMode's convention (``archstat.analyses.backward``)
  equal FlopCounterMode's count while the autograd nodes the row created run
  (``validation.backward_check.measured_backward``).

Both oracles watch one real forward pass (and its backward) of one copy of the model along the
product's own fx graph, so row ``i`` is the same op call everywhere, and nothing is traced again.  A row whose saved tensors archstat cannot name (an op with no formula, or a formula
whose kind has no rule) is not checked (``None``) and makes the memory estimate partial.
"""
from __future__ import annotations

import copy
from typing import Any

import pandas as pd
import torch

from archstat.analyses.backward import backward_rows
from archstat.analyses.memory import saved_per_row
from archstat.engine.rows import Rows
from archstat.engine.trace import training_mode
from archstat.validation.backward_check import NodeRows, count_backward, scalar_loss
from archstat.validation.memory_check import SavedTensors
from archstat.validation.real_run import RealRun, storage_key
from archstat.validation.oracles import row_checks

TRAINING_COLUMNS = ("saved_bytes", "real_saved_bytes", "saved_ok", "bwd_flops", "real_bwd_flops", "bwd_ok")


def measured_training(rows: Rows, device: torch.device, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One forward pass with autograd of a copy of ``rows.model`` and its backward, watched by both
    oracles: what ``memory_check.measured_saved`` and ``backward_check.measured_backward`` return,
    from one copy and one run instead of one each."""
    work = copy.deepcopy(rows.model).to(device=device, dtype=rows.dtype)
    hook = SavedTensors({storage_key(t) for t in list(work.parameters()) + list(work.buffers())})
    runner = RealRun(work, rows, listeners=[hook])
    nodes = NodeRows(runner)
    runner.listeners.append(nodes)
    with training_mode(work, rows.mode == "train"), torch.enable_grad():
        with torch.autograd.graph.saved_tensors_hooks(hook.pack, lambda t: t):
            out = runner.run(*rows.example(device, seed))
        loss = scalar_loss(out)  # outside the hooks: the loss's own saved tensors belong to no row
    per_row = [hook.per_row.get(i, 0) for i in range(len(rows.df))]
    saved = {"per_row": per_row, "saved": sum(per_row), "state": hook.state_bytes}
    return saved, count_backward(loss, nodes, len(rows.df))


def training_checks(rows: Rows, device: torch.device, seed: int) -> tuple[pd.DataFrame, dict[str, tuple[int, int]]]:
    """Per-row columns (:data:`TRAINING_COLUMNS`) and the two totals, ``(archstat, real)``, for the
    training-mode ``rows`` (each oracle runs a copy of ``rows.model``)."""
    est = saved_per_row(rows, device=device.type)
    saved, real_bwd = measured_training(rows, device, seed)
    bwd = backward_rows(rows)
    known = list(est["saved_known"])
    cols = pd.DataFrame({
        "saved_bytes": [int(b) if k else None for b, k in zip(est["saved_bytes"], known)],
        "real_saved_bytes": saved["per_row"],
        "bwd_flops": [int(v) for v in bwd["bwd_flops_flopcounter"]],
        "real_bwd_flops": real_bwd["per_row"],
    }, index=rows.df.index)
    supported = list(rows.df["supported"])
    cols["saved_ok"] = row_checks(cols["saved_bytes"], cols["real_saved_bytes"], known, cols.index)
    cols["bwd_ok"] = row_checks(cols["bwd_flops"], cols["real_bwd_flops"], supported, cols.index)
    totals: dict[str, Any] = {}
    if all(known):
        totals["training_saved"] = (int(est["saved_bytes"].sum()), int(saved["saved"]))
    if all(supported):
        totals["backward_flopcounter"] = (int(cols["bwd_flops"].sum()), int(real_bwd["total"]))
    return cols[list(TRAINING_COLUMNS)], totals
