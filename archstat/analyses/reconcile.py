"""Why do the tools disagree?  FLOPs broken down by op kind, side by side in every convention.

For torchvision's ResNet-50 at 224x224 the answer reads: conv+linear MACs 4.09 G are what the
lecture and fvcore both count; fvcore adds batch norm (2 per element in eval); FlopCounterMode
doubles the MACs (2 FLOPs per multiply-add) and counts nothing else.
"""
from __future__ import annotations

import pandas as pd

from archstat.engine.conventions import CONVENTIONS
from archstat.engine.rows import Rows
from archstat.reporting.table_format import scaled


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


def reconcile_text(table: pd.DataFrame) -> str:
    a = table.attrs
    head = f"{a['model']}  input {'x'.join(map(str, a['input']))}  batch {a['batch']}  {a['mode']} mode: FLOPs by op kind"
    rows = [["kind", "ops", "calls", "MACs (G)", *(f"{c} (G)" for c in CONVENTIONS)]]
    for r in table.to_dict("records"):
        rows.append([r["kind"], r["ops"], str(r["calls"]), scaled(r["macs"], 10**9),
                     *(scaled(r[f"flops_{c}"], 10**9) for c in CONVENTIONS)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    t = table.iloc[-1]
    notes = [
        "lecture = MACs of conv/linear/matmul + pooling windows; fvcore = 1 per multiply-add + norms;",
        "flopcounter = 2 per multiply-add, conv and matmul only.",
        f"fvcore - MACs = {scaled(t['flops_fvcore'] - t['macs'], 10**9)} G (what norms and adaptive pools add); "
        f"flopcounter / MACs = {float(t['flops_flopcounter']) / float(t['macs']):.3f}" if t["macs"] else "",
    ]
    return "\n".join([head, *lines, *notes])
