"""Optional columns of ``archstat table``: a training step's cost and the receptive field, per row.

``with_training(df, ...)`` adds, to analyze()'s rows:

* ``saved_bytes``: bytes of the storages this row is the first to keep for backward
  (``archstat.analyses.memory``; a ReLU's output that is also the next conv's input is counted once);
* ``bwd_macs``: the backward pass's multiply-adds, grad-input + grad-weight, each as large as the
  forward product (``archstat.analyses.backward``; the first layer has no grad-input);
* ``bwd_flops``: the same in the table's convention (``flopcounter``: what FlopCounterMode
  counts over a real backward, 2 per multiply-add; ``lecture`` and ``fvcore``: the MACs);

and ``attrs["training"]``: saved activations, parameters, buffers, gradients and optimizer state,
and their sum, the device memory a training step holds after backward.

``with_receptive_field(df, ...)`` adds ``rf`` and ``jump`` (per spatial dim, see
``archstat.analyses.receptive_field``), ``rf_regular`` and ``rf_global``.

Both compute the full graph's rows and keep the prefix that ``df`` has (``--upto``), checking that
the row keys agree.  Neither works on symbolic shapes: they need numbers.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pandas as pd
import torch
from torch import nn

from archstat.analyses.backward import backward_rows
from archstat.errors import ArchstatError
from archstat.engine.rows import graph_rows
from archstat.analyses.memory import OPTIMIZER_STATES, saved_per_row, state_bytes
from archstat.analyses.receptive_field import receptive_field

KEY = ["name", "op", "call"]


def _prefix(df: pd.DataFrame, full: pd.DataFrame, what: str) -> pd.DataFrame:
    """The rows of ``full`` that ``df`` shows (all, or the ``--upto`` prefix), keys checked."""
    part = full.iloc[: len(df)].reset_index(drop=True)
    if part[KEY].values.tolist() != df[KEY].values.tolist():
        raise ArchstatError(f"{what}: the model's graph changed between two traces")
    return part


def _numeric(df: pd.DataFrame, what: str) -> None:
    if df.attrs.get("symbolic"):
        raise ArchstatError(f"{what} needs numbers: drop --symbolic")


def with_training(df: Optional[pd.DataFrame], model: nn.Module, input_shape: Sequence[int], batch: int,
                  dtype: torch.dtype, mode: str, optimizer: str = "sgd", device: str = "cpu") -> pd.DataFrame:
    """``df`` plus ``saved_bytes``, ``bwd_macs``, ``bwd_flops`` per row and ``attrs["training"]``;
    ``df=None`` takes the rows of ``mode``'s graph as they are (no table of one's own to extend).

    ``device`` is where the step would run: only dropout's mask differs (float on the CPU, bool
    in CUDA's fused kernel)."""
    if df is not None:
        _numeric(df, "--training")
    if optimizer not in OPTIMIZER_STATES:
        raise ArchstatError(f"unknown optimizer {optimizer!r}: use {', '.join(OPTIMIZER_STATES)}")
    rows = graph_rows(model, input_shape, batch=batch, dtype=dtype, mode=mode)
    df = rows.df if df is None else df
    saved, bwd = saved_per_row(rows, device=device), backward_rows(rows)
    full = pd.concat([rows.df[KEY], saved[["saved_bytes", "saved_known"]], bwd[["bwd_macs", "bwd_flops_flopcounter"]]],
                     axis=1)
    part = _prefix(df, full, "--training")
    out = df.copy()
    out["saved_bytes"] = list(part["saved_bytes"])
    out["saved_known"] = list(part["saved_known"])
    out["bwd_macs"] = list(part["bwd_macs"])
    flopcounter = df.attrs.get("convention") == "flopcounter"
    out["bwd_flops"] = list(part["bwd_flops_flopcounter"] if flopcounter else part["bwd_macs"])
    state = state_bytes(model, rows, dtype, optimizer)
    saved_total = int(out["saved_bytes"].sum())
    out.attrs = dict(df.attrs)
    out.attrs["training"] = {
        "optimizer_name": optimizer, "saved": saved_total, **state,
        # a whole step's memory; not for an --upto prefix, whose state would be the whole model's
        "total": None if df.attrs.get("upto") else
        saved_total + state["params"] + state["buffers"] + state["grads"] + state["optimizer"],
        "bwd_macs": int(out["bwd_macs"].sum()), "bwd_flops": int(out["bwd_flops"].sum()),
        "partial": not bool(out["saved_known"].all()), "device": device,
    }
    return out


def with_receptive_field(df: pd.DataFrame, model: nn.Module, input_shape: Sequence[int], mode: str) -> pd.DataFrame:
    """``df`` plus ``rf``, ``jump`` (lists, one per spatial dim), ``rf_regular`` and ``rf_global``."""
    _numeric(df, "--receptive-field")
    part = _prefix(df, receptive_field(model, input_shape, mode=mode), "--receptive-field")
    out = df.copy()
    out["rf"], out["jump"] = list(part["rf"]), list(part["jump"])
    out["rf_regular"], out["rf_global"] = list(part["regular"]), list(part["global"])
    out.attrs = dict(df.attrs)
    return out
