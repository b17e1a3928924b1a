"""Adapters to analyses that other parts of archstat provide, used only when they are installed.

``archstat compare`` and the reports show training memory (``archstat.memory``), the receptive
field of the last conv (``archstat.receptive_field``) and measured GPU latency (``reports/gpu/``).
Each adapter returns ``(value, note)``: the value, or ``None`` with the reason it is missing, so
a table says "n/a (not yet available)" instead of showing a silent zero.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd
from torch import nn

NOT_AVAILABLE = "n/a (not yet available)"


def _module(name: str) -> Any:
    try:
        return importlib.import_module(f"archstat.{name}")
    except ImportError:
        return None


def training_memory(model: nn.Module, input_shape: Sequence[int], batch: int) -> tuple[Optional[int], str]:
    """Bytes that a training step keeps alive (saved activations + params + grads + SGD momentum)."""
    mod = _module("memory")
    fn = getattr(mod, "training_memory", None) if mod else None
    if fn is None:
        return None, NOT_AVAILABLE
    try:
        result = fn(model, tuple(input_shape), batch=batch)
    except Exception as exc:  # the estimate is optional: report why it is missing, keep the row
        return None, f"n/a ({type(exc).__name__})"
    total = _total_bytes(result)
    if total is None:
        return None, "n/a (unrecognised result)"
    partial = isinstance(result, pd.DataFrame) and result.attrs.get("memory_partial")
    return total, "partial (ops with unknown saved tensors)" if partial else ""


def _total_bytes(result: Any) -> Optional[int]:
    if isinstance(result, (int,)) and not isinstance(result, bool):
        return int(result)
    if isinstance(result, pd.DataFrame):
        result = result.attrs.get("total", result.attrs)
    if isinstance(result, dict):
        for key in ("total_bytes", "total", "train_bytes", "bytes"):
            value = result.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return int(value)
    value = getattr(result, "total_bytes", None)
    return int(value) if isinstance(value, (int, float)) else None


def last_conv_receptive_field(model: nn.Module, input_shape: Sequence[int]) -> tuple[Optional[tuple[int, int]], str]:
    """(height, width) of the receptive field of the model's last conv layer, on its largest path."""
    mod = _module("receptive_field")
    fn = getattr(mod, "receptive_field", None) if mod else None
    if fn is None:
        return None, NOT_AVAILABLE
    try:
        table = fn(model, tuple(input_shape))
    except Exception as exc:
        return None, f"n/a ({type(exc).__name__})"
    if not isinstance(table, pd.DataFrame) or "kind" not in table:
        return None, "n/a (unrecognised result)"
    convs = table[table["kind"] == "conv"]
    if convs.empty:
        return None, "n/a (no conv)"
    last = convs.iloc[-1]
    for h, w in (("rf_h", "rf_w"), ("size_h", "size_w"), ("rf_height", "rf_width")):
        if h in last and w in last:
            return (int(last[h]), int(last[w])), ""
    if "rf" in last:
        rf = last["rf"]
        return ((int(rf[0]), int(rf[-1])) if isinstance(rf, (list, tuple)) else (int(rf), int(rf))), ""
    return None, "n/a (unrecognised result)"


PRECISION_ORDER = ("tf32", "fp32", "bf16", "fp16")


def gpu_latencies(gpu_dir: Path) -> dict[str, dict]:
    """Whole-model forward latency per model from the GPU script's ``reports/gpu/<card>/runs.csv``.

    ``runs.csv`` (bench/gpu_report.py) has one row per measured run: ``model, step, precision,
    phase, batch, median_s, ...``.  Per model this keeps the forward run with the smallest batch,
    then the first precision of tf32, fp32, bf16, fp16: the setting closest to the table's batch-1
    fp32 counts.  Cards are read in name order; the first card that has a model wins.
    """
    found: dict[str, dict] = {}
    if not gpu_dir.is_dir():
        return found
    for path in sorted(gpu_dir.glob("*/runs.csv")):
        try:
            runs = pd.read_csv(path)
        except (OSError, ValueError):
            continue
        if not {"model", "phase", "batch", "median_s"} <= set(runs.columns):
            continue
        runs = runs[(runs["phase"] == "forward") & runs["median_s"].notna()]
        for rec in runs.to_dict("records"):
            entry = {"model": rec["model"], "latency_ms": float(rec["median_s"]) * 1e3, "batch": int(rec["batch"]),
                     "precision": str(rec.get("precision", "")), "card": path.parent.name,
                     "file": path.relative_to(gpu_dir).as_posix()}
            best = found.get(rec["model"])
            if best is None or (best["card"] == entry["card"] and _rank(entry) < _rank(best)):
                found[rec["model"]] = entry
    return found


def _rank(entry: dict) -> tuple:
    prec = entry["precision"]
    return entry["batch"], PRECISION_ORDER.index(prec) if prec in PRECISION_ORDER else len(PRECISION_ORDER)


def gpu_layers(gpu_dir: Path) -> tuple[Optional[pd.DataFrame], dict]:
    """Per-layer GPU measurements (``layers.csv``) and the card's measured ceilings (``results.json``)
    of the first card folder that has both; ``(None, {})`` when there are none."""
    if not gpu_dir.is_dir():
        return None, {}
    for folder in sorted(p for p in gpu_dir.iterdir() if p.is_dir()):
        layers, results = folder / "layers.csv", folder / "results.json"
        if not (layers.is_file() and results.is_file()):
            continue
        try:
            table = pd.read_csv(layers)
            ceilings = json.loads(results.read_text()).get("ceilings") or {}
        except (OSError, ValueError):
            continue
        needed = {"model", "step", "intensity", "achieved_flops_per_s", "time_s"}
        if needed <= set(table.columns) and ceilings:
            return table.assign(card=folder.name), ceilings
    return None, {}
