"""bench/roofline_accuracy.py's own arithmetic (its runs are benchmarks, not tests)."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from _bench import BENCH_DIR, load_bench


def test_round_noise_is_the_median_layer_change_between_two_rounds():
    bench = load_bench("roofline_accuracy")
    r1 = pd.Series([100e-6, 50e-6, 10e-6, 30e-6])
    r2 = pd.Series([110e-6, 40e-6, 10e-6, 20e-6])  # the 10 us layer is below 20 us in both: left out
    # 110/100 - 1 = 0.1, 50/40 - 1 = 0.25, 30/20 - 1 = 0.5 (either way round): the median is 0.25
    assert bench.round_noise([r1, r2]) == pytest.approx(0.25)
    assert math.isnan(bench.round_noise([r1]))


def test_offline_reprediction_reproduces_the_bench(tmp_path, monkeypatch):
    """bench/roofline_offline.py on a folder the bench dumped gives the bench's own figures back (same
    frames, same calibration, same held-out fit): what a model change is judged on offline is the bench."""
    import torch

    monkeypatch.syspath_prepend(str(BENCH_DIR))  # roofline_offline imports its sibling
    bench = load_bench("roofline_accuracy")
    offline = load_bench("roofline_offline")

    rows, _ = bench.run(torch.device("cpu"), ["mobilenet_dw"], [2], small=True, quick=True, repeat=2, layer_repeat=2,
                        dump=tmp_path, rounds=1)
    frame = pd.read_pickle(tmp_path / "mobilenet_dw_b2.pkl")
    cal = json.loads((tmp_path / "calibration.json").read_text())
    assert cal["passes"] == []  # a quick run calibrates once (from the cache), not a pass per round
    again = offline.repredict(frame, cal, 2)
    assert rows[0]["layers"] == again["layers"] > 0
    assert again["median_abs_error"] == pytest.approx(rows[0]["median_abs_error"], rel=1e-9)
    assert again["spearman"] == pytest.approx(rows[0]["spearman"], rel=1e-9)
    assert again["predicted_sum_ratio"] == pytest.approx(rows[0]["predicted_sum_ratio"], rel=1e-9)
