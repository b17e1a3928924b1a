"""bench/roofline_accuracy.py's own arithmetic (its runs are benchmarks, not tests)."""
from __future__ import annotations

import importlib.util
import json
import math
import pathlib

import pandas as pd
import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "roofline_accuracy.py"


def load_bench():  # noqa: ANN201 - the module
    spec = importlib.util.spec_from_file_location("roofline_accuracy", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_round_noise_is_the_median_layer_change_between_two_rounds():
    bench = load_bench()
    r1 = pd.Series([100e-6, 50e-6, 10e-6, 30e-6])
    r2 = pd.Series([110e-6, 40e-6, 10e-6, 20e-6])  # the 10 us layer is below 20 us in both: left out
    # 110/100 - 1 = 0.1, 50/40 - 1 = 0.25, 30/20 - 1 = 0.5 (either way round): the median is 0.25
    assert bench.round_noise([r1, r2]) == pytest.approx(0.25)
    assert math.isnan(bench.round_noise([r1]))


def test_offline_reprediction_reproduces_the_bench(tmp_path):
    """bench/roofline_offline.py on a folder the bench dumped gives the bench's own figures back (same
    frames, same calibration, same held-out fit): what a model change is judged on offline is the bench."""
    import sys

    import torch

    sys.path.insert(0, str(BENCH.parent))
    bench = load_bench()
    import roofline_offline

    rows, _ = bench.run(torch.device("cpu"), ["mobilenet_dw"], [2], small=True, quick=True, repeat=2, layer_repeat=2,
                        dump=tmp_path, rounds=1)
    frame = pd.read_pickle(tmp_path / "mobilenet_dw_b2.pkl")
    cal = json.loads((tmp_path / "calibration.json").read_text())
    again = roofline_offline.repredict(frame, cal, 2)
    assert rows[0]["layers"] == again["layers"] > 0
    assert again["median_abs_error"] == pytest.approx(rows[0]["median_abs_error"], rel=1e-9)
    assert again["spearman"] == pytest.approx(rows[0]["spearman"], rel=1e-9)
    assert again["predicted_sum_ratio"] == pytest.approx(rows[0]["predicted_sum_ratio"], rel=1e-9)
