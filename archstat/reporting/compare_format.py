"""The comparison table at the edge: units, footnoted sources, text / Markdown / CSV / JSON.

Units: params in millions, MACs and FLOPs in billions (G), memory in MB = bytes / 1024^2 (the
lecture's MB = KB / 1024), errors in percent.  Published errors carry a footnote number that
points at their source; CSV and JSON keep raw integers and the full source strings.
"""
from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from archstat.engine.conventions import DESCRIPTIONS

MB = 1024 ** 2


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _num(value: Any, divisor: float, digits: int) -> str:
    return "" if _missing(value) else f"{value / divisor:,.{digits}f}"


def _err(value: Any) -> str:
    return "" if _missing(value) else f"{value:g}"


def display(table: pd.DataFrame) -> tuple[list[dict[str, str]], list[str]]:
    """(rows of display strings, footnotes: numbered sources, then notes)."""
    sources: dict[str, int] = {}
    conv = table.attrs.get("convention", "lecture")
    batch = table.attrs.get("batch", 1)
    rows = []
    for r in table.to_dict("records"):
        cells = {
            "model": r["model"], "input": r["input"], "params (M)": _num(r["params"], 1e6, 3),
            "MACs (G)": _num(r["macs"], 1e9, 3), f"FLOPs (G, {conv})": _num(r["flops"], 1e9, 3),
            "memory (MB)": _num(r["act_bytes"], MB, 2),
            "peak (MB)": _num(r["peak_bytes"], MB, 2) or "n/a",
            "train mem b1 (MB)": _num(r["train_bytes_1"], MB, 1) or "n/a",
        }
        if batch != 1:
            cells[f"train mem b{batch} (MB)"] = _num(r["train_bytes_n"], MB, 1) or "n/a"
        cells.update({"depth": str(r["depth"]), "weight layers": str(r["weight_layers"]),
                      "RF last conv": r["rf"] or "n/a"})
        for key, label in (("top1_err", "top-1 err (%)"), ("top5_err", "top-5 err (%)"),
                           ("ilsvrc_top5_err", "ILSVRC top-5 (%)")):
            text = _err(r[key])
            if text and r[f"{key}_source"]:
                text += f" [{sources.setdefault(r[f'{key}_source'], len(sources) + 1)}]"
            cells[label] = text
        cells["GPU latency (ms)"] = _num(r["latency_ms"], 1, 3)
        rows.append(cells)
    notes = [f"[{n}] {s}" for s, n in sources.items()]
    notes.append(f"FLOPs: {DESCRIPTIONS[conv]}. params, MACs, FLOPs and memory per image (batch 1); "
                 "memory = sum of layer outputs (bytes / 1024^2, as the lecture counts); peak = activations "
                 "alive at once in inference, input included, each freed after its last use.")
    notes.append("depth = conv/linear layers on the longest input-to-output path (the lecture's "
                 "'22 layers' for GoogLeNet); weight layers = all conv/linear layers.")
    notes.append("train mem = bytes a training step holds after backward (archstat.analyses.memory): activations saved "
                 "for backward + params + buffers + grads + SGD momentum, fp32.")
    latency = [f"{r['model']}: {r['latency_setting']}" for r in table.to_dict("records") if r["latency_setting"]]
    if latency:
        notes.append("GPU latency (forward, from reports/gpu/): " + "; ".join(latency))
    for note in dict.fromkeys(n for n in table["notes"] if n):
        models = ", ".join(table.loc[table["notes"] == note, "model"])
        notes.append(f"{models}: {note}")
    return rows, notes


def to_text(table: pd.DataFrame) -> str:
    rows, notes = display(table)
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    left = ("model", "input")

    def line(r: dict) -> str:
        return "  ".join(r[c].ljust(widths[c]) if c in left else r[c].rjust(widths[c]) for c in cols).rstrip()

    body = [line({c: c for c in cols}), "  ".join("-" * widths[c] for c in cols), *(line(r) for r in rows)]
    return "\n".join([*body, "", *notes])


def to_markdown(table: pd.DataFrame, link: Any = None) -> str:
    """Markdown table; ``link(model) -> url`` turns model names into links (the report's index); a model
    it gives no url (None) stays plain text."""
    rows, notes = display(table)
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" if c in ("model", "input") else "---:"
                                                         for c in cols) + "|"]
    for r in rows:
        cells = dict(r)
        url = link(r["model"]) if link is not None else None
        if url:
            cells["model"] = f"[{r['model']}]({url})"
        lines.append("| " + " | ".join(cells[c] for c in cols) + " |")
    return "\n".join([*lines, "", *(f"- {n}" for n in notes)])


def _plain(value: Any) -> Any:
    if _missing(value):
        return None
    return value.item() if hasattr(value, "item") else value


def to_records(table: pd.DataFrame) -> list[dict]:
    return [{k: _plain(v) for k, v in r.items()} for r in table.to_dict("records")]


def to_json(table: pd.DataFrame) -> str:
    return json.dumps({"convention": table.attrs.get("convention"), "batch": table.attrs.get("batch"),
                       "models": to_records(table)}, indent=1)


def to_csv(table: pd.DataFrame) -> str:
    return pd.DataFrame(to_records(table), columns=list(table.columns)).to_csv(index=False, lineterminator="\n")


FORMATTERS = {"text": to_text, "markdown": to_markdown, "csv": to_csv, "json": to_json}
