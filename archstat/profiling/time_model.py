"""The per-layer time model, calibrated per op family on synthetic micro-benchmarks.

For one op call (``op_families``: family ``f``, hardware FLOPs ``F``, bytes moved ``B``):

    t = floor_f + max(F / R_f(config), B / BW_f(B)) + t_fresh

``t_fresh`` is the first-touch cost of an output of 32 MiB or more, which comes back as fresh pages
(CPU only, under ``fresh_pages.pinned_heap``); 0 for every other row.

* ``floor_f``: the per-call dispatch floor of the family, the time of its smallest benchmark.
* ``R_f(config)``: the FLOP/s such a kernel reaches (conv, depthwise conv, linear; 0 FLOPs elsewhere):
  the inverse-distance-weighted mean of ``log2 R`` over the ``K`` nearest of the family's benchmarks
  in (standardised) log2-feature space (``RateFit``).
* ``BW_f(B)``: the bandwidth the family reaches at that size, ``B_i / (t_i - floor_f)`` on its
  benchmarks (``t_i - floor_f`` made non-decreasing in ``B_i``), interpolated linearly in
  ``(log B, log BW)`` and constant beyond the ends (cache sizes show up as steps).  Conv families use the ``copy`` family's curve; linear its own, from the
  benchmarks with M <= 4 rows, which stream their weights (its rate is fitted on M >= 16).
* Views and identities: ``floor_dispatch`` (they launch no kernel, but the call still costs).

Every prediction says why: ``bound`` is the largest of the three terms (``compute``, ``memory``,
``overhead``), and ``roof`` names the calibrated rate or bandwidth (and its share of the measured
matmul peak or copy bandwidth).  A person can check one layer by hand from the ``rate`` and
``bandwidth`` columns: ``t = floor + max(F / rate, B / bandwidth)``.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import pandas as pd

from archstat.profiling.fresh_pages import is_fresh
from archstat.profiling.op_families import COMPUTE_FAMILIES, calibrated, family, features, numel, work

K_NEAREST = 4
KERNEL_WEIGHT = 3.0
MODEL_COLUMNS = ["family", "predicted_s", "floor_s", "t_compute_s", "t_memory_s", "t_fresh_s", "rate_flops_per_s",
                 "bandwidth_bytes_per_s", "bound", "roof", "calibrated"]


class RateFit:
    """``log2 R(x)`` = the inverse-distance-weighted mean of ``log2 R`` over the ``K`` nearest benchmarks.

    Distances are taken between standardised log2 features, the first (the kernel area) counted
    ``KERNEL_WEIGHT`` times, so that a 3x3 conv's neighbours are 3x3 convs where the grid has them
    (nn-Meter's lesson: one predictor per kernel type).  A weighted mean of measured rates never
    leaves their range: an earlier fit added a ridge-linear trend in the features, whose extension
    beyond the grid predicted 600 GFLOP/s for VGG-16's 30-GFLOP convs at batch 8 (the machine's convs
    reach 230), and which did worse inside the grid too (median layer error 28% against 26% over the
    ten benchmark runs of ``bench/roofline_accuracy.py``, same calibration, same measurements).
    """

    def __init__(self, xs: np.ndarray, ys: np.ndarray) -> None:
        self.mu, self.sd = xs.mean(0), xs.std(0) + 1e-9
        self.z, self.ys = (xs - self.mu) / self.sd, np.asarray(ys, dtype=float)
        self.weight = np.ones(xs.shape[1])
        self.weight[0] = KERNEL_WEIGHT

    def __call__(self, x: list[float]) -> float:
        z = (np.asarray(x, dtype=float) - self.mu) / self.sd
        d = np.sqrt((((self.z - z) * self.weight) ** 2).sum(1))
        near = np.argsort(d)[:K_NEAREST]
        w = 1.0 / (d[near] + 0.25)
        return 2.0 ** float((w * self.ys[near]).sum() / w.sum())


def monotone(ts: list[float]) -> list[float]:
    """The closest non-decreasing sequence (pool adjacent violators): more bytes never take less time,
    so a benchmark slowed by another process cannot make a bigger tensor look faster than a smaller one."""
    blocks: list[list[float]] = []  # [sum, count]
    for t in ts:
        blocks.append([t, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += n
    return [b[0] / b[1] for b in blocks for _ in range(int(b[1]))]


class Curve:
    """``BW(B)``: bandwidth against bytes, piecewise linear in log-log, constant beyond the ends."""

    def __init__(self, nbytes: list[float], bw: list[float]) -> None:
        order = np.argsort(nbytes)
        self.lb = np.log(np.asarray(nbytes, dtype=float)[order])
        self.lbw = np.log(np.asarray(bw, dtype=float)[order])

    def __call__(self, nbytes: float) -> float:
        return float(np.exp(np.interp(math.log(max(nbytes, 1.0)), self.lb, self.lbw)))


class TimeModel:
    """Fitted from calibration points (``microbench.run_grid``); predicts rows (``predict``)."""

    def __init__(self, points: list[dict[str, Any]], state: Optional[dict] = None) -> None:
        self.state = state or {}
        by: dict[str, list[dict]] = {}
        self.page_cost = next((p["time_s"] for p in points if p["family"] == "fresh_pages"), 0.0)
        for p in points:
            if p["family"] != "fresh_pages":
                by.setdefault(p["family"], []).append(p)
        self.floor = {f: min(p["time_s"] for p in ps) for f, ps in by.items()}
        self.rate: dict[str, RateFit] = {}
        self.bw: dict[str, Curve] = {}
        for f, ps in by.items():
            fl = self.floor[f]
            if f in COMPUTE_FAMILIES:
                ok = [p for p in ps if p["flops"] > 0 and p["time_s"] > 1.5 * fl]
                if f == "linear":  # rows M >= 16 set the rate; M <= 4 stream the weights: their bandwidth
                    stream = [p for p in ok if p["features"][0] <= 2]
                    if stream:
                        self.bw[f] = bandwidth_curve(stream, "time_s", fl)
                    ok = [p for p in ok if p["features"][0] >= 4] or ok
                if len(ok) >= 3:
                    xs = np.array([p["features"] for p in ok], dtype=float)
                    ys = np.array([math.log2(p["flops"] / (p["time_s"] - fl)) for p in ok])
                    self.rate[f] = RateFit(xs, ys)
            elif f != "dispatch":
                ok = [p for p in ps if p["bytes"] > 0 and p["time_s"] > 1.05 * fl]
                if ok:
                    self.bw[f] = bandwidth_curve(ok, "time_s", fl)
        self.n_points = {f: len(ps) for f, ps in by.items()}

    def describe(self) -> dict[str, Any]:
        """What the JSON records about the calibration: points per family, floors, when measured."""
        return {"points": self.n_points, "floor_s": self.floor, "fresh_page_s_per_byte": self.page_cost,
                "measured": self.state,
                "source": "synthetic micro-benchmarks (archstat.profiling.microbench), none from the model"}

    def predict_row(self, row: dict, batch: int, itemsize: int) -> dict[str, Any]:
        fam = family(row)
        flops, nbytes = work(row, batch, itemsize)
        fam_bw = fam if fam in self.bw else ("copy" if fam in COMPUTE_FAMILIES else "elementwise")
        floor, curve = self.floor.get(fam, self.floor.get("dispatch", 0.0)), self.bw.get(fam_bw)
        rate = self.rate[fam](features(row, batch)) if fam in self.rate and flops else math.nan
        bw = curve(nbytes) if curve is not None and nbytes else math.nan
        t_c = flops / rate if flops and rate == rate else 0.0
        t_m = nbytes / bw if nbytes and bw == bw else 0.0
        out_bytes = out_elements(row) * batch * itemsize
        t_f = out_bytes * self.page_cost if row.get("alloc") and is_fresh(out_bytes) else 0.0
        bound = max((t_c, "compute"), (t_m, "memory"), (floor, "overhead"), (t_f, "allocation"))[1]
        bound = "overhead" if fam == "dispatch" else bound
        return {"family": fam, "predicted_s": floor + max(t_c, t_m) + t_f, "floor_s": floor, "t_compute_s": t_c,
                "t_memory_s": t_m, "t_fresh_s": t_f, "rate_flops_per_s": rate, "bandwidth_bytes_per_s": bw,
                "bound": bound, "roof": "", "calibrated": calibrated(row), "_bw_family": fam_bw}

    def predict(self, rows: pd.DataFrame, batch: int, itemsize: int, peak: float = math.nan,
                copy_bw: float = math.nan) -> pd.DataFrame:
        """``MODEL_COLUMNS`` for every row of ``rows`` (analyze()'s columns), same index."""
        out = []
        records = rows.to_dict("records")
        for row in records:
            p = self.predict_row(row, batch, itemsize)
            p["roof"] = why(p, peak, copy_bw)
            p.pop("_bw_family")
            out.append(p)
        return pd.DataFrame(out, columns=MODEL_COLUMNS, index=rows.index)


def bandwidth_curve(points: list[dict], key: str, floor: float) -> Curve:
    """``BW(B) = B_i / (t_i - floor)`` over the points sorted by bytes, ``t_i - floor`` made non-decreasing."""
    points = sorted(points, key=lambda p: p["bytes"])
    t = monotone([p[key] - floor for p in points])
    return Curve([p["bytes"] for p in points], [p["bytes"] / ti for p, ti in zip(points, t)])


def out_elements(row: dict) -> int:
    out = row.get("out_shape") or []
    return numel(out) if out and all(isinstance(d, (int, float)) for d in out) else 0


def why(p: dict[str, Any], peak: float, copy_bw: float) -> str:
    """One phrase: which term sets the predicted time, at which calibrated rate or bandwidth."""
    if p["bound"] == "compute":
        share = f" = {p['rate_flops_per_s'] / peak:.0%} of matmul peak" if peak == peak and peak else ""
        return f"{p['family']} rate {p['rate_flops_per_s'] / 1e9:.1f} GFLOP/s{share}"
    if p["bound"] == "memory":
        share = f" = {p['bandwidth_bytes_per_s'] / copy_bw:.0%} of copy bw" if copy_bw == copy_bw and copy_bw else ""
        return f"{p['_bw_family']} bandwidth {p['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s{share}"
    if p["bound"] == "allocation":
        return f"fresh output pages {p['t_fresh_s'] * 1e3:.2f} ms (first touch of a new buffer)"
    return f"per-call floor {p['floor_s'] * 1e6:.1f} us ({p['family']})"


