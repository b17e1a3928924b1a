"""A measured roofline, per op call, and how well it predicts the measured times.

For each row (hardware FLOPs ``F``, fewest bytes moved ``B`` = inputs + weights + outputs, once each):

    arithmetic intensity  I = F / B                                  (FLOP per byte)
    compute time          t_c = F / P      P = the ceiling that fits the op (below)
    memory time           t_m = B / BW     BW = measured device-to-device copy bandwidth
    predicted             t = max(t_c, t_m);   verdict: compute-bound if t_c >= t_m, else memory-bound
    achieved fraction     t / measured  (1 = at the roofline)
    error                 (t - measured) / measured

``P`` is the measured matmul FLOP/s of the precision for linear and matmul ops, and for a 2-d
convolution the FLOP/s that the calibration grid point fitting it reached (``ceilings.conv_ceiling``):
the matmul peak alone overstates what small-channel convolutions can reach.  Ops that launch no
kernel (views, identities) predict 0 and are left out of the error statistics, as are layers under
``min_time`` (20 us by default), where launch latency, not the roofline, sets the time.

Next to it, the **naive roofline** (``naive_predicted_s``, ``naive_error``): the same formula with the
matmul peak for every op, convolutions included.  The summary reports both errors, so what the conv
calibration grid buys is measured on each run, not asserted.  ``roof`` names the roof a row sits
under: the compute ceiling when compute-bound, ``copy bandwidth`` when memory-bound.
"""
from __future__ import annotations

import math
from typing import Optional

import pandas as pd

from archstat.profiling.ceilings import Ceilings, conv_ceiling, conv_key

ROOFLINE_COLUMNS = ["intensity", "ceiling_flops_per_s", "ceiling", "t_compute_s", "t_memory_s", "predicted_s",
                    "bound", "roof", "achieved_fraction", "error", "naive_predicted_s", "naive_error"]


def _relative_error(predicted: float, measured: float) -> float:
    return (predicted - measured) / measured if predicted and measured and measured > 0 else math.nan


def _ceiling(row: dict, ceil: Ceilings, precision: str, grid: Optional[list]) -> tuple[float, str]:
    peak = ceil.peak(precision)
    kernel = row.get("kernel")
    if row["kind"] == "conv" and grid and isinstance(kernel, list) and len(kernel) == 2:
        hp = row.get("hparams") or {}
        c_in = int(hp.get("c_in", 1)) // max(int(hp.get("groups", 1)), 1)
        out = row["out_shape"]
        rate, point = conv_ceiling(grid, kernel[0], kernel[1], c_in, int(hp.get("c_out", out[0])),
                                   int(out[1]) * int(out[2]))
        if point is not None:  # the grid's own measured rate, uncapped: it is what such a conv reached
            return rate, (
                f"conv {point['kh']}x{point['kw']} {point['c_in']}->{point['c_out']} @{point['out_h']}")
    return peak, f"matmul {precision}"


def roofline(layers: pd.DataFrame, ceil: Ceilings, precision: str, channels_last: bool, batch: int) -> pd.DataFrame:
    """Add the roofline columns to a profile's per-layer frame.

    Needs ``flops_hardware``, ``bytes_moved``, ``kind``, ``kernel``, ``hparams``, ``out_shape`` and,
    for the error columns, ``time_s`` (the measured median, seconds).
    """
    grid = ceil.conv.get(conv_key(precision, channels_last, batch))
    bw, peak = ceil.copy_bw, ceil.peak(precision)
    rows = []
    for row in layers.to_dict("records"):
        flops, nbytes = float(row["flops_hardware"]), float(row["bytes_moved"])
        rate, source = _ceiling(row, ceil, precision, grid)
        t_c = flops / rate if flops else 0.0
        t_m = nbytes / bw if nbytes else 0.0
        pred = max(t_c, t_m)
        naive = max(flops / peak if flops else 0.0, t_m)
        meas = row.get("time_s", math.nan)
        bound = "none" if pred == 0 else ("compute" if t_c >= t_m else "memory")
        rows.append({
            "intensity": flops / nbytes if nbytes else math.nan, "ceiling_flops_per_s": rate, "ceiling": source,
            "t_compute_s": t_c, "t_memory_s": t_m, "predicted_s": pred, "bound": bound,
            "roof": {"compute": source, "memory": "copy bandwidth", "none": "-"}[bound],
            "achieved_fraction": pred / meas if pred and meas and meas > 0 else math.nan,
            "error": _relative_error(pred, meas),
            "naive_predicted_s": naive, "naive_error": _relative_error(naive, meas),
        })
    out = layers.copy()
    for col in ROOFLINE_COLUMNS:
        out[col] = [r[col] for r in rows]
    return out


def roofline_summary(layers: pd.DataFrame, min_time: float = 20e-6) -> dict[str, float]:
    """Median absolute error and Spearman rank correlation of predicted vs measured time, and the
    naive roofline's median absolute error over the same rows.

    Over the rows that launch a kernel (predicted > 0) and take at least ``min_time`` seconds.
    """
    sel = layers[(layers["predicted_s"] > 0) & (layers["time_s"] >= min_time)]
    all_k = layers[layers["predicted_s"] > 0]
    out: dict[str, float] = {"layers": int(len(sel)), "min_time_s": min_time,
                             "median_abs_error": float(sel["error"].abs().median()) if len(sel) else math.nan,
                             "naive_median_abs_error": (float(sel["naive_error"].abs().median()) if len(sel)
                                                        and "naive_error" in sel else math.nan),
                             "spearman": _spearman(sel["predicted_s"], sel["time_s"]),
                             "spearman_all": _spearman(all_k["predicted_s"], all_k["time_s"]),
                             "compute_bound": int((sel["bound"] == "compute").sum()),
                             "memory_bound": int((sel["bound"] == "memory").sum())}
    return out


def _spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rho = Pearson correlation of the ranks (average ranks for ties)."""
    if len(a) < 3:
        return math.nan
    ra, rb = a.rank().to_numpy(dtype=float), b.rank().to_numpy(dtype=float)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else math.nan
