"""The curves and the rate fit the per-layer time model is made of (``time_model.TimeModel``).

``RateFit``: a compute family's FLOP/s at a config, an inverse-distance-weighted mean over the nearest
calibration benchmarks in standardised log2-feature space.  ``Curve``: a memory family's bandwidth
against bytes moved, piecewise linear in log-log.  ``successor_curves``: what an op leaves the op after
it, against its size, made non-decreasing (``monotone``) over a running median; ``successor_neighbours``:
the same probes read from the nearest benchmarks in (output bytes, other bytes moved); ``cold_curves``: a
family's cold start against the traffic since its last call.
"""
from __future__ import annotations

import math

import numpy as np

from archstat.profiling.op_families import COLD_LEVELS

K_NEAREST = 4
KERNEL_WEIGHT = 3.0


class RateFit:
    """``log2 R(x)`` = the inverse-distance-weighted mean of ``log2 R`` over the ``K`` nearest benchmarks
    (``R`` a rate; ``successor_neighbours`` fits seconds the same way).

    Distances are taken between standardised log2 features, the first counted ``first_weight`` times:
    for the rates the kernel area, ``KERNEL_WEIGHT`` times, so that a 3x3 conv's neighbours are 3x3 convs
    where the grid has them (nn-Meter's lesson: one predictor per kernel type).  A feature that never
    varies over the benchmarks is left unscaled (standardised by a spread of 0 it would put every
    benchmark equally far from a query that differs in it, and the neighbours would be picked at
    random).  A weighted mean of measured rates never leaves their range: an earlier fit added a
    ridge-linear trend in the features, whose extension beyond the grid predicted 600 GFLOP/s for
    VGG-16's 30-GFLOP convs at batch 8 (the machine's convs reach 230), and which did worse inside the
    grid too (median layer error 28% against 26% over the ten benchmark runs of
    ``bench/roofline_accuracy.py``, same calibration, same measurements).
    """

    def __init__(self, xs: np.ndarray, ys: np.ndarray, first_weight: float = KERNEL_WEIGHT) -> None:
        spread = xs.std(0)
        self.mu, self.sd = xs.mean(0), np.where(spread > 1e-9, spread, 1.0)
        self.z, self.ys = (xs - self.mu) / self.sd, np.asarray(ys, dtype=float)
        self.weight = np.ones(xs.shape[1])
        self.weight[0] = first_weight

    def __call__(self, x: list[float]) -> float:
        z = (np.asarray(x, dtype=float) - self.mu) / self.sd
        d = np.sqrt((((self.z - z) * self.weight) ** 2).sum(1))
        near = np.argsort(d)[:K_NEAREST]
        w = 1.0 / (d[near] + 0.25)
        return 2.0 ** float((w * self.ys[near]).sum() / w.sum())


def rate_features(fam: str, feats: list[float], flops: float, nbytes: float) -> list[float]:
    """The features ``RateFit`` reads: the config's (``op_families.features``) and, for convs, also
    ``log2 F``, ``log2 B`` and their difference (the arithmetic intensity).

    Small and memory-heavy convs reach a fraction of the rate of their neighbours in channels and pixels
    (a 1x1 conv from 192 to 16 channels on 8x28x28: 102 GFLOP/s back to back, to 64 channels: 153); with the work and the intensity as features, the
    leave-one-out error of the fit over the synthetic conv grid itself (112 convs, no model's layer)
    fell from a median 17% to 10-13% on two calibrations of this machine (``bench/rate_fit_loo.py``)."""
    if fam != "conv":
        return list(feats)
    lf, lb = math.log2(max(flops, 1.0)), math.log2(max(nbytes, 1.0))
    return [*feats, lf, lb, lf - lb]


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


def successor_curves(by: dict[str, list[dict]], key: str, axis: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per family, ``(log axis, running median of key made non-decreasing)`` over its benchmarks that
    measured ``key``; ``axis``: ``out_bytes`` or ``bytes`` (moved).

    Non-decreasing (``monotone``, as the bandwidth curves' times): an op that moves more leaves at
    least as much behind.  The probes are differences of two timings, and below a few megabytes they
    scatter (what a conv of 0.25-2.5 MB left a BatchNorm: 5-27 us in one calibration), so the running
    median still wobbled, and Inception-v3's batch norms at batch 1, 73-80 of its 94 within 30-50 us,
    took that wobble for their ranks.  Over the twelve stored runs of 17:43-19:35 UTC, the mean of the ten
    medians fell in eleven (12.63 -> 12.48% on average) and inception_v3's batch-1 Spearman rose in ten
    (a mean 0.9445 -> 0.9475)."""
    curves = {}
    for f, ps in by.items():
        ok = sorted((p for p in ps if key in p and p.get(axis)), key=lambda p: p[axis])
        if ok:
            curves[f] = (np.log([p[axis] for p in ok]), np.array(monotone(list(running_median([p[key] for p in ok])))))
    return curves


def cold_curves(by: dict[str, list[dict]], cold: dict[str, float], hot_floor: dict[str, float],
                base_bytes: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per family with ``COLD_LEVELS`` on some benchmark, ``(log flush bytes, cold start)``: at
    ``base_bytes`` (the grid's own flush) its cold start ``cold[f]``, at each larger flush ``L`` the least
    time of its benchmarks timed after ``L`` less its warm floor, ``min_i t_i(L) - hot_floor[f]`` (as the
    floor is the least flushed time), at least ``cold[f]`` and made non-decreasing (``monotone``: more
    traffic never leaves a family's code warmer; a level that read below the base, noise where the flush
    to DRAM is no deeper than the grid's own, would otherwise pull the curve under ``cold[f]``)."""
    curves = {}
    for f, ps in by.items():
        levels = [p[COLD_LEVELS] for p in ps if COLD_LEVELS in p]
        if f not in cold or f not in hot_floor or not levels:
            continue
        sizes = sorted({n for lv in levels for n, _ in lv if n > base_bytes})
        least = [min(t for lv in levels for n, t in lv if n == size) for size in sizes]
        ys = [cold[f]] + [max(cold[f], t - hot_floor[f]) for t in least]
        curves[f] = (np.log([base_bytes, *sizes]), np.array(monotone(ys)))
    return curves


PROBE_FLOOR_S = 1e-6  # a successor probe (a difference of two timings) under 1 us reads as 1 us: its noise is about that


def successor_features(out_bytes: float, nbytes: float) -> list[float]:
    """Where an op's bytes were, as ``successor_neighbours`` reads them: ``log2`` of its output bytes and
    of the rest of its bytes moved (inputs and weights)."""
    return [math.log2(max(out_bytes, 1.0)), math.log2(max(nbytes - out_bytes, 1.0))]


def successor_neighbours(by: dict[str, list[dict]], key: str) -> dict[str, RateFit]:
    """Per family, the probe ``key`` read from the ``K_NEAREST`` benchmarks nearest in
    ``successor_features`` (both standardised, weighted alike): ``log2`` of the probe's seconds,
    inverse-distance weighted (``RateFit`` on other features).

    Why a second read beside ``successor_curves``: the curve follows the bytes moved alone, and a conv
    that writes 1.8 MB after reading 7 MB (Inception-v3's 768 -> 192 1x1 convs at batch 8) is not one
    that writes 7 MB after reading 1.8; the neighbours tell them apart, but average four scattered
    probes where the curve smooths a running median (``TimeModel.conv_leaves_s`` combines the two)."""
    fits = {}
    for f, ps in by.items():
        ok = [p for p in ps if key in p and p.get("out_bytes") and p["bytes"] > p["out_bytes"]]
        if len(ok) >= K_NEAREST:
            xs = np.array([successor_features(p["out_bytes"], p["bytes"]) for p in ok])
            fits[f] = RateFit(xs, np.log2(np.maximum([p[key] for p in ok], PROBE_FLOOR_S)), first_weight=1.0)
    return fits


def bandwidth_curve(points: list[dict], key: str, floor: float) -> Curve:
    """``BW(B) = B_i / (t_i - floor)`` over the points sorted by bytes, ``t_i - floor`` made non-decreasing."""
    points = sorted(points, key=lambda p: p["bytes"])
    t = monotone([p[key] - floor for p in points])
    return Curve([p["bytes"] for p in points], [p["bytes"] / ti for p, ti in zip(points, t)])


def running_median(ys: list[float], width: int = 5) -> np.ndarray:
    """Each value replaced by the median of the ``width`` values around it (fewer at the ends):
    one benchmark disturbed by another process moves the curve by nothing."""
    half = width // 2
    return np.array([float(np.median(ys[max(0, i - half):i + half + 1])) for i in range(len(ys))])
