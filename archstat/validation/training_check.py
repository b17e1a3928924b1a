"""The training-graph checks of ``validate(mode="train")``: saved tensors and backward FLOPs, per row.

* ``saved_ok``: the bytes of the storages each row is the first to save for backward
  (``archstat.analyses.memory.saved_per_row``, no autograd) equal what ``saved_tensors_hooks`` sees during
  a real forward pass with autograd on (``memory_check.measured_saved``).  This is the part of a
  training step's memory that grows with the batch.
* ``bwd_ok``: the backward pass's FLOPs in FlopCounterMode's convention (``archstat.analyses.backward``)
  equal FlopCounterMode's count while the autograd nodes the row created run
  (``validation.backward_check.measured_backward``).

Both oracles run the product's own fx graph on copies of the model, so row ``i`` is the same op
call everywhere, and nothing is traced again.  A row whose saved tensors archstat cannot name (an op with no formula, or a formula
whose kind has no rule) is not checked (``None``) and makes the memory estimate partial.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from archstat.analyses.backward import backward_rows
from archstat.analyses.memory import saved_per_row
from archstat.engine.rows import Rows
from archstat.validation.backward_check import measured_backward
from archstat.validation.memory_check import measured_saved
from archstat.validation.oracles import row_checks

TRAINING_COLUMNS = ("saved_bytes", "real_saved_bytes", "saved_ok", "bwd_flops", "real_bwd_flops", "bwd_ok")


def training_checks(rows: Rows, device: torch.device, seed: int) -> tuple[pd.DataFrame, dict[str, tuple[int, int]]]:
    """Per-row columns (:data:`TRAINING_COLUMNS`) and the two totals, ``(archstat, real)``, for the
    training-mode ``rows`` (each oracle runs a copy of ``rows.model``)."""
    est = saved_per_row(rows, device=device.type)
    saved = measured_saved(rows, device=device, seed=seed)
    bwd = backward_rows(rows)
    real_bwd = measured_backward(rows, seed=seed, device=device)
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
