"""bench/roofline_accuracy.py's own arithmetic (its runs are benchmarks, not tests)."""
from __future__ import annotations

import importlib.util
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
