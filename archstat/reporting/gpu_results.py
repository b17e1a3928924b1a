"""The GPU script's results as the reports read them: ``reports/gpu/<card>/{runs,layers}.csv``.

``bench/gpu_run.py`` writes one folder per card; ``compare`` adds the forward latency it measured,
``report`` draws the measured roofline.  No folder, no GPU column: the readers return empty results
and the tables say the latency was not measured, never a zero.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pandas as pd

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
