"""The reconciliation table (``analyses.reconcile``) as text: FLOPs by op kind in every convention."""
from __future__ import annotations

import pandas as pd

from archstat.engine.conventions import CONVENTIONS
from archstat.reporting.table_format import scaled


def reconcile_text(table: pd.DataFrame) -> str:
    """Aligned columns in G (10^9), a total row, and the notes that say what each convention counts."""
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
