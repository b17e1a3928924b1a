"""What the HTML page shows for one model: its rows, totals, inference peak, training step, receptive field.

``model_page(label, model, input_shape, ...)`` runs the analyses once (through their public
functions) and returns a ``ModelPage``; ``page_payload`` turns it into the JSON the page script
reads (raw integers, no units: the script formats them) and ``summary_items`` into the totals
shown above the graph (formatted here, with units).  ``comparison_rows`` lines several models up.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import pandas as pd
from torch import nn

from archstat.analyses.live_memory import inference_peak
from archstat.analyses.table_columns import with_receptive_field, with_training
from archstat.engine.analyze import analyze, analyze_rows
from archstat.engine.inputs import several_text
from archstat.engine.rows import Rows
from archstat.errors import ArchstatError

MIB = 1024 ** 2
# the table's columns: key in the payload's rows, header, unit, numeric
COLUMNS = [("i", "#", "", True), ("name", "layer", "", False), ("op", "op", "", False),
           ("out", "output", "", False), ("params", "params", "", True), ("macs", "MACs", "", True),
           ("flops", "FLOPs", "", True), ("act_bytes", "memory", "KB", True),
           ("rf", "RF", "px", True), ("in", "input", "", False), ("kind", "kind", "", False)]


@dataclass
class ModelPage:
    """One model's section of the page (``label`` is the user's model name, shown escaped)."""

    label: str
    df: pd.DataFrame
    peak: Optional[dict]
    training: Optional[dict]
    training_error: Optional[str] = None
    rf_error: Optional[str] = None


def _shape(shape: Sequence) -> str:
    return "×".join(str(int(d)) for d in shape)


def input_label(attrs: dict) -> str:
    """The graph's input node: ``input 3×224×224``, or every input when there are several."""
    several = several_text(attrs.get("inputs"))
    return f"inputs {several}" if several else "input " + _shape(attrs["input"])


def model_page(label: str, model: nn.Module, input_shape: Optional[Sequence[int]] = None, *, batch: int = 1,
               mode: str = "eval", convention: str = "lecture", inputs: Optional[Sequence[Any]] = None,
               kwargs: Optional[dict] = None) -> ModelPage:
    """Analyse ``model`` for the page: rows of ``mode``'s graph, the eval graph's inference peak,
    a training step's memory (batch ``batch``, fp32, SGD with momentum) and the receptive field.
    ``inputs`` / ``kwargs``: several inputs, as :func:`archstat.engine.analyze.analyze_rows` takes them."""
    rows = analyze_rows(model, input_shape, batch=batch, mode=mode, convention=convention, inputs=inputs,
                        kwargs=kwargs)
    return page_from_rows(label, rows)


def page_from_rows(label: str, rows: Rows, df: Optional[pd.DataFrame] = None,
                   training: Optional[dict] = None) -> ModelPage:
    """A ``ModelPage`` from a product already traced (``archstat report`` reuses its own, and its
    table ``df`` with the receptive-field columns); the other mode is traced only when needed."""
    df = rows.df if df is None else df
    eval_df = df if rows.mode == "eval" else analyze(rows.model, batch=rows.batch, **rows.given)
    page = ModelPage(label, df, inference_peak(eval_df) or None, training)
    if "rf" not in df.columns:
        try:
            page.df = with_receptive_field(rows, df)
        except ArchstatError as exc:
            page.rf_error = str(exc)
    if training is None:
        try:
            train_rows = rows if rows.mode == "train" else analyze_rows(rows.model, batch=rows.batch, mode="train",
                                                                         **rows.given)
            page.training = with_training(train_rows).attrs["training"]
        except ArchstatError as exc:
            page.training_error = str(exc)
    return page


def _rf(row: pd.Series) -> Optional[int]:
    rf = row.get("rf")
    return int(max(rf)) if isinstance(rf, (list, tuple)) and rf else None


def payload_rows(df: pd.DataFrame) -> list[list]:
    """One list per row, in ``COLUMNS`` order, plus the row's sources (for the script's tooltips)."""
    rows = []
    for i, r in enumerate(df.to_dict("records")):
        rows.append([i, r["name"], r["op"], _shape(r["out_shape"]), int(r["params"]), int(r["macs"]), int(r["flops"]),
                     int(r["act_bytes"]), _rf(r), " + ".join(_shape(s) for s in r["in_shapes"]), r["kind"]])
    return rows


def last_receptive_field(df: pd.DataFrame) -> Optional[str]:
    """The receptive field of the last layer that still has a spatial map, as text."""
    if "rf" not in df.columns:
        return None
    spatial = df[~df["rf_global"].astype(bool)] if "rf_global" in df.columns else df
    if spatial.empty:
        return None
    r = spatial.iloc[-1]
    return f"{' × '.join(map(str, r['rf']))} px, jump {' × '.join(map(str, r['jump']))} px, at {r['name'] or '(model)'}"


def summary_items(page: ModelPage) -> list[tuple[str, str]]:
    """(quantity, value with units) for the page's totals."""
    df, a = page.df, page.df.attrs
    t = a["total"]
    items = [("input (per sample)", several_text(a.get("inputs")) or _shape(a["input"])),
             ("batch, dtype, graph", f"{a['batch']}, {a['dtype']}, {a['mode']} mode"),
             ("op calls (table rows)", f"{len(df):,}"), ("params", f"{int(t['params']):,} ({int(t['params']) / 1e6:,.2f} M)"),
             ("MACs", f"{int(t['macs']):,} ({int(t['macs']) / 1e9:,.3f} G)"),
             (f"FLOPs ({a['convention']} convention)", f"{int(t['flops']):,} ({int(t['flops']) / 1e9:,.3f} G)"),
             ("activation memory (sum of outputs)", f"{int(t['act_bytes']) / MIB:,.2f} MiB")]
    if page.peak:
        items.append(("inference peak (activations alive at once)",
                      f"{page.peak['peak_bytes'] / MIB:,.2f} MiB at {page.peak['peak_name']}"))
    tr = page.training
    if tr is not None and tr.get("total") is not None:
        items.append((f"training step memory (batch {a['batch']}, fp32, SGD + momentum)",
                      f"{tr['total'] / MIB:,.2f} MiB = saved activations {tr['saved'] / MIB:,.2f} + params, grads, "
                      f"momentum 3 × {tr['params'] / MIB:,.2f} + buffers {tr['buffers'] / MIB:,.2f}"
                      + (" (partial)" if tr.get("partial") else "")))
    elif page.training_error:
        items.append(("training step memory", f"n/a ({page.training_error})"))
    rf = last_receptive_field(page.df)
    items.append(("receptive field (last spatial layer)", rf or f"n/a ({page.rf_error or 'no spatial layer'})"))
    if a.get("partial"):
        items.append(("ops without a formula (totals partial)", ", ".join(a.get("unsupported", []))))
    return items


def comparison_rows(pages: Sequence[ModelPage]) -> list[dict]:
    """One dict per model: raw numbers for the comparison table and charts."""
    out = []
    for p in pages:
        t, tr = p.df.attrs["total"], p.training or {}
        out.append({"model": p.label, "input": several_text(p.df.attrs.get("inputs")) or _shape(p.df.attrs["input"]),
                    "rows": len(p.df),
                    "params": int(t["params"]), "macs": int(t["macs"]), "flops": int(t["flops"]),
                    "act_bytes": int(t["act_bytes"]), "peak_bytes": int(p.peak["peak_bytes"]) if p.peak else None,
                    "train_bytes": tr.get("total"), "rf": last_receptive_field(p.df)})
    return out
