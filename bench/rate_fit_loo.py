"""Leave-one-out error of the conv rate fit over the synthetic grid itself, with and without the work and
intensity features (``fit_curves.rate_features``): no model's layer takes part.

    python bench/rate_fit_loo.py [--calibration calibration.json] [--family conv]

``--calibration``: the ``calibration.json`` that ``bench/roofline_accuracy.py --dump DIR`` writes; without it,
the cached calibration of this machine (``archstat ceilings`` lists them) with the most points of the family.
Each benchmark's rate is predicted from all the others (``RateFit``, as the time model fits it), and the
time error ``R_true / R_predicted - 1`` is summarised: median and 90th percentile of its absolute value.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib

import numpy as np

from archstat.profiling.calibrate import cache_path
from archstat.profiling.cache import read_entries
from archstat.profiling.fit_curves import RateFit, rate_features


def load_points(path: str | None, family: str) -> list[dict]:
    if path:
        return json.loads(pathlib.Path(path).read_text())["points"]
    entries = [e for e in read_entries(cache_path()).values() if isinstance(e, dict) and e.get("points")]
    if not entries:
        raise SystemExit("no cached calibration: run `archstat profile` once, or pass --calibration")
    return max(entries, key=lambda e: sum(p["family"] == family for p in e["points"]))["points"]


def loo_errors(points: list[dict], family: str, extended: bool) -> np.ndarray:
    ps = [p for p in points if p["family"] == family]
    floor = min(p["time_s"] for p in ps)
    ok = [p for p in ps if p["flops"] > 0 and p["time_s"] > 1.5 * floor]
    xs = np.array([rate_features(family, p["features"], p["flops"], p["bytes"]) if extended else p["features"]
                   for p in ok], dtype=float)
    ys = np.array([math.log2(p["flops"] / (p["time_s"] - floor)) for p in ok])
    errors = []
    for i in range(len(ok)):
        rest = np.arange(len(ok)) != i
        errors.append(2.0 ** ys[i] / RateFit(xs[rest], ys[rest])(list(xs[i])) - 1)
    return np.abs(np.array(errors))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calibration", help="a calibration.json written by bench/roofline_accuracy.py --dump")
    ap.add_argument("--family", default="conv")
    a = ap.parse_args()
    points = load_points(a.calibration, a.family)
    for extended in (False, True):
        e = loo_errors(points, a.family, extended)
        label = "config + work + intensity" if extended else "config features only"
        print(f"{a.family} ({len(e)} benchmarks), {label}: leave-one-out |error| median {np.median(e):.1%}, "
              f"90th percentile {np.quantile(e, 0.9):.1%}")


if __name__ == "__main__":
    main()
