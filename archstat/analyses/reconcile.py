"""Why do the tools disagree?  FLOPs broken down by op kind, side by side in every convention.

For torchvision's ResNet-50 at 224x224 the answer reads: conv+linear MACs 4.09 G are what the
lecture and fvcore both count; fvcore adds batch norm (2 per element in eval); FlopCounterMode
doubles the MACs (2 FLOPs per multiply-add) and counts nothing else.
"""
from __future__ import annotations

import pandas as pd

from archstat.engine.conventions import CONVENTIONS
from archstat.engine.rows import Rows


def reconcile(rows: Rows) -> pd.DataFrame:
    """One row per op kind of ``rows``: calls, MACs, and the FLOPs each convention assigns (every
    convention's column is in the rows, whichever one they show); plus a total row."""
    df = rows.df
    cols = ["macs", *(f"flops_{c}" for c in CONVENTIONS)]
    by_kind = df.groupby("kind", sort=False).agg(calls=("op", "size"), ops=("op", lambda s: ", ".join(sorted(set(s)))),
                                                **{c: (c, "sum") for c in cols})
    by_kind = by_kind[(by_kind[cols] != 0).any(axis=1)].reset_index()
    total = {"kind": "total", "calls": int(by_kind["calls"].sum()), "ops": "", **{c: df[c].sum() for c in cols}}
    out = pd.concat([by_kind, pd.DataFrame([total])], ignore_index=True)
    out.attrs = {k: df.attrs[k] for k in ("model", "input", "batch", "mode")}
    return out
