"""Optional columns of ``archstat table``: a training step's cost and the receptive field, per row.

``with_training(rows, df)`` adds, to the rows of ``archstat.engine.analyze.analyze_rows``:

* ``saved_bytes``: bytes of the storages this row is the first to keep for backward
  (``archstat.analyses.memory``; a ReLU's output that is also the next conv's input is counted once);
* ``bwd_macs``: the backward pass's multiply-adds, grad-input + grad-weight, each as large as the
  forward product (``archstat.analyses.backward``; the first layer has no grad-input);
* ``bwd_flops``: the same in the table's convention (``flopcounter``: what FlopCounterMode
  counts over a real backward, 2 per multiply-add; ``lecture`` and ``fvcore``: the MACs);

and ``attrs["training"]``: saved activations, parameters, buffers, gradients and optimizer state,
and their sum, the device memory a training step holds after backward.

``with_receptive_field(rows, df)`` adds ``rf`` and ``jump`` (per spatial dim, see
``archstat.analyses.receptive_field``), ``rf_regular`` and ``rf_global``.

Both compute over the full graph's rows and keep the prefix that ``df`` shows (``--upto``: the
same product cut with ``cut_rows``, so the keys agree by construction).  Neither works on symbolic
shapes: they need numbers.
"""
from __future__ import annotations

from typing import Optional

import pandas as pd

from archstat.analyses.backward import backward_rows
from archstat.analyses.memory import OPTIMIZER_STATES, saved_per_row, state_bytes
from archstat.analyses.receptive_field import receptive_field
from archstat.engine.rows import Rows
from archstat.errors import ArchstatError

KEY = ["name", "op", "call"]


def _prefix(df: pd.DataFrame, full: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``full`` that ``df`` shows: all, or the ``--upto`` prefix."""
    return full.iloc[: len(df)].reset_index(drop=True)


def _numeric(df: pd.DataFrame, what: str) -> None:
    if df.attrs.get("symbolic"):
        raise ArchstatError(f"{what} needs numbers: drop --symbolic")


def with_training(rows: Rows, df: Optional[pd.DataFrame] = None, optimizer: str = "sgd",
                  device: str = "cpu") -> pd.DataFrame:
    """``df`` plus ``saved_bytes``, ``bwd_macs``, ``bwd_flops`` per row and ``attrs["training"]``.

    ``rows`` is the whole graph's product (in the mode the step is costed for); ``df`` the table
    to extend, ``rows.df`` itself (None) or its ``--upto`` prefix.

    ``device`` is where the step would run: only dropout's mask differs (float on the CPU, bool
    in CUDA's fused kernel)."""
    df = rows.df if df is None else df
    _numeric(df, "--training")
    if optimizer not in OPTIMIZER_STATES:
        raise ArchstatError(f"unknown optimizer {optimizer!r}: use {', '.join(OPTIMIZER_STATES)}")
    saved, bwd = saved_per_row(rows, device=device), backward_rows(rows)
    full = pd.concat([rows.df[KEY], saved[["saved_bytes", "saved_known"]], bwd[["bwd_macs", "bwd_flops_flopcounter"]]],
                     axis=1)
    part = _prefix(df, full)
    out = df.copy()
    out["saved_bytes"] = list(part["saved_bytes"])
    out["saved_known"] = list(part["saved_known"])
    out["bwd_macs"] = list(part["bwd_macs"])
    flopcounter = df.attrs.get("convention") == "flopcounter"
    out["bwd_flops"] = list(part["bwd_flops_flopcounter"] if flopcounter else part["bwd_macs"])
    state = state_bytes(rows, optimizer)
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


def with_receptive_field(rows: Rows, df: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """``df`` (``rows.df`` or its ``--upto`` prefix) plus ``rf``, ``jump`` (lists, one per spatial
    dim), ``rf_regular`` and ``rf_global``."""
    df = rows.df if df is None else df
    _numeric(df, "--receptive-field")
    part = _prefix(df, receptive_field(rows))
    out = df.copy()
    out["rf"], out["jump"] = list(part["rf"]), list(part["jump"])
    out["rf_regular"], out["rf_global"] = list(part["regular"]), list(part["global"])
    out.attrs = dict(df.attrs)
    return out
