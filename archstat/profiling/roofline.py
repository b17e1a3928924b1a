"""Predicted per-layer times next to the measured ones: the calibrated time model and the naive roofline.

For each row (hardware FLOPs ``F``, fewest bytes moved ``B`` = inputs + weights + outputs, once each):

    naive roofline     t_naive = max(F / P, B / BW)     P = measured matmul peak of the precision,
                                                        BW = measured copy bandwidth (read + write)
    calibrated model   t = floor_f + max(F / R_f(config), B_f / BW_f(B_f))   (``time_model``)
    error              (t - measured) / measured        achieved fraction  t / measured

``intensity`` is ``F / B``.  ``bound`` says which term of the calibrated model sets the time
(``compute``, ``memory``, ``overhead`` = the per-call floor), ``roof`` the rate or bandwidth it ran
into, ``ceiling_flops_per_s`` the calibrated rate (the matmul peak without a time model).  Ops that
launch no kernel (views, identities) and layers under ``min_time`` (20 us) are left out of the error
statistics; the layer sums keep every row.
"""
from __future__ import annotations

import math
from typing import Optional

import pandas as pd

from archstat.profiling.ceilings import Ceilings
from archstat.profiling.op_families import NO_KERNEL, family, work
from archstat.profiling.time_model import MODEL_COLUMNS, TimeModel

ROOFLINE_COLUMNS = ["intensity", "ceiling_flops_per_s", "ceiling", "t_compute_s", "t_memory_s", "predicted_s",
                    "bound", "roof", "achieved_fraction", "error", "naive_predicted_s", "naive_error"]


def relative_error(predicted: float, measured: float) -> float:
    return (predicted - measured) / measured if predicted and measured and measured > 0 else math.nan


def _fb(row: dict, batch: int, itemsize: int) -> tuple[float, float]:
    if "flops_hardware" in row and "bytes_moved" in row:
        return float(row["flops_hardware"]), float(row["bytes_moved"])
    return work(row, batch, itemsize)


def naive(layers: pd.DataFrame, ceil: Ceilings, precision: str, batch: int, itemsize: int) -> list[float]:
    """``max(F / P, B / BW)`` per row: one matmul peak, one copy bandwidth, no floor."""
    peak, bw = ceil.peak(precision), ceil.copy_bw
    out = []
    for row in layers.to_dict("records"):
        f, b = _fb(row, batch, itemsize)
        out.append(0.0 if family(row) in NO_KERNEL else max(f / peak if f else 0.0, b / bw if b else 0.0))
    return out


def roofline(layers: pd.DataFrame, ceil: Ceilings, precision: str, batch: int, itemsize: int,
             model: Optional[TimeModel] = None) -> pd.DataFrame:
    """``layers`` with the naive and (given ``model``) the calibrated predictions, and their errors."""
    out = layers.copy()
    out["naive_predicted_s"] = naive(layers, ceil, precision, batch, itemsize)
    fb = [_fb(r, batch, itemsize) for r in layers.to_dict("records")]
    out["intensity"] = [f / b if b else math.nan for f, b in fb]
    if model is not None:
        pred = model.predict(layers, batch, itemsize, ceil.peak(precision), ceil.copy_bw)
        for col in MODEL_COLUMNS:
            out[col] = pred[col]
        out["ceiling_flops_per_s"] = pred["rate_flops_per_s"]
        out["ceiling"] = [f"{f} (calibrated)" for f in pred["family"]]
    else:
        out["predicted_s"] = out["naive_predicted_s"]
        out["ceiling_flops_per_s"] = ceil.peak(precision)
        out["ceiling"] = f"matmul {precision}"
        t_c = [f / ceil.peak(precision) if f else 0.0 for f, _ in fb]
        t_m = [b / ceil.copy_bw if b else 0.0 for _, b in fb]
        out["t_compute_s"], out["t_memory_s"] = t_c, t_m
        out["bound"] = ["none" if p == 0 else ("compute" if c >= m else "memory")
                        for p, c, m in zip(out["predicted_s"], t_c, t_m)]
        out["roof"] = [{"compute": f"matmul {precision}", "memory": "copy bandwidth"}.get(b, "-") for b in out["bound"]]
    if "time_s" in out.columns:
        meas = out["time_s"]
        out["achieved_fraction"] = [p / m if p and m and m > 0 else math.nan for p, m in zip(out["predicted_s"], meas)]
        out["error"] = [relative_error(p, m) for p, m in zip(out["predicted_s"], meas)]
        out["naive_error"] = [relative_error(p, m) for p, m in zip(out["naive_predicted_s"], meas)]
    if "supported" in out.columns and not out["supported"].astype(bool).all():
        # an op without a formula: its FLOPs are unknown, and so is a time predicted from them (priced as
        # 0 FLOPs it read "memory-bound, 27% of the roof"); its bytes moved are exact and stay
        unknown = ~out["supported"].astype(bool)
        for col in UNKNOWN_WITHOUT_FORMULA:
            if col in out.columns:
                out.loc[unknown, col] = math.nan
        out.loc[unknown, "bound"] = "unknown (no formula)"
        out.loc[unknown, "roof"] = "-"
    return out


# the roofline's columns that an op without a formula cannot have (``roofline``)
UNKNOWN_WITHOUT_FORMULA = ("naive_predicted_s", "predicted_s", "t_compute_s", "intensity", "ceiling_flops_per_s",
                           "achieved_fraction", "error", "naive_error", "rate_flops_per_s")


def roofline_summary(layers: pd.DataFrame, min_time: float = 20e-6) -> dict[str, object]:
    """Over the rows that launch a kernel and take at least ``min_time``: median |error| of the
    calibrated and the naive model, Spearman rank correlation, the bound counts, the median error per
    family; and over every row, the predicted layer sum against the measured one."""
    kernel = layers["naive_predicted_s"] > 0
    sel = layers[kernel & (layers["time_s"] >= min_time)]
    med = lambda s: float(s.abs().median()) if len(s) else math.nan  # noqa: E731
    out: dict[str, object] = {
        "layers": int(len(sel)), "min_time_s": min_time, "median_abs_error": med(sel["error"]),
        "naive_median_abs_error": med(sel["naive_error"]),
        "spearman": spearman(sel["predicted_s"], sel["time_s"]),
        "spearman_all": spearman(layers.loc[kernel, "predicted_s"], layers.loc[kernel, "time_s"]),
        "compute_bound": int((sel["bound"] == "compute").sum()), "memory_bound": int((sel["bound"] == "memory").sum()),
        "overhead_bound": int((sel["bound"] == "overhead").sum()),
        "previous_op_bound": int((sel["bound"] == "previous op").sum()),
        "allocation_bound": int((sel["bound"] == "allocation").sum()),
        "weights_bound": int((sel["bound"] == "weights").sum()),
        "predicted_sum_s": float(layers["predicted_s"].sum()), "naive_sum_s": float(layers["naive_predicted_s"].sum()),
        "measured_sum_s": float(layers["time_s"].sum()),
        # ops without a formula have no prediction (``roofline``): left out of every figure above
        "without_formula": int((~layers["supported"].astype(bool)).sum()) if "supported" in layers.columns else 0}
    if "family" in sel.columns:
        out["median_error_by_family"] = {f: float(g["error"].median()) for f, g in sel.groupby("family")}
    return out


def spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rho = Pearson correlation of the ranks (average ranks for ties)."""
    if len(a) < 3:
        return math.nan
    ra, rb = a.rank().to_numpy(dtype=float), b.rank().to_numpy(dtype=float)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else math.nan
