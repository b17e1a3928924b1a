"""The machine's pace (``host_pace``): read through the calibration and around a profile, and the
calibration re-read at the measurement's pace."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn

import archstat.profiling.microbench as microbench
import archstat.profiling.profile as profile_module
from archstat import analyze, profile
from archstat.profiling.ceilings import Ceilings
from archstat.profiling.host_pace import PACE, at_pace, between, pace_factor, pace_level, read_pace
from archstat.profiling.microbench import combine
from archstat.profiling.time_model import TimeModel

SLOW = {"matmul": 2e-3, "copy": 4e-3, "dispatch": 1e-6}
CALM = {"matmul": 1e-3, "copy": 2e-3, "dispatch": 0.5e-6}


def test_pace_factor_is_the_geometric_mean_of_the_probe_ratios():
    now, then = {"a": 2.0, "b": 8.0, "only_now": 5.0}, {"a": 1.0, "b": 2.0}
    assert pace_level({"a": 2.0, "b": 8.0}) == pytest.approx(4.0)
    assert pace_factor(now, then) == pytest.approx(math.sqrt(2.0 * 4.0))  # over the probes both have
    assert pace_factor(None, then) == pace_factor(now, {}) == 1.0  # a missing reading: as measured
    assert between({"a": 1.0, "b": 4.0}, {"a": 4.0, "b": 1.0}) == {"a": 2.0, "b": 2.0}


def test_read_pace_times_the_three_probes():
    pace = read_pace(torch.device("cpu"))
    assert sorted(pace) == ["copy", "dispatch", "matmul"] and all(v > 0 for v in pace.values())


def test_at_pace_scales_every_timing_and_nothing_else():
    point = {"family": "conv", "flops": 1e6, "bytes": 1e3, "time_s": 1.0, "hot_s": 0.5, "evicted_s": 2.0,
             "after_s": 0.1, "after_bn_s": 0.2, "after_bn_relu_s": 0.3, "out_bytes": 64, PACE: CALM}
    slow = at_pace(point, SLOW)
    assert {k: slow[k] for k in ("time_s", "hot_s", "evicted_s", "after_s", "after_bn_s", "after_bn_relu_s")} == \
        pytest.approx({"time_s": 2.0, "hot_s": 1.0, "evicted_s": 4.0, "after_s": 0.2, "after_bn_s": 0.4,
                       "after_bn_relu_s": 0.6})
    assert (slow["flops"], slow["bytes"], slow["out_bytes"], slow[PACE]) == (1e6, 1e3, 64, SLOW)
    assert at_pace({"family": "conv", "time_s": 1.0}, SLOW) == {"family": "conv", "time_s": 1.0}  # no reading then
    # a small memory benchmark's times after the larger flushes too, not their flush sizes
    levels = at_pace({"family": "activation", "time_s": 1.0, "cold_levels": [[256.0, 3.0], [1024.0, 5.0]], PACE: CALM},
                     SLOW)["cold_levels"]
    assert levels == [[256.0, pytest.approx(6.0)], [1024.0, pytest.approx(10.0)]]


def test_passes_are_compared_as_measured_and_keep_the_pace_of_the_kept_time():
    first = [{"family": "relu", "time_s": 2.0, "hot_s": 1.0, "after_s": 1.0, "signature": ["r"], PACE: CALM}]
    slow = [{"family": "relu", "time_s": 3.0, "hot_s": 3.0, "after_s": 3.0, "signature": ["r"], PACE: SLOW}]
    (point,) = combine([first, slow])
    assert (point["time_s"], point["hot_s"], point["after_s"], point[PACE]) == (2.0, 1.0, 2.0, CALM)
    (point,) = combine([slow, [{**first[0], "time_s": 4.0}]])
    assert point["time_s"] == 3.0 and point[PACE] == SLOW


def paced_points() -> list[dict]:
    """A calibration with every kind of timing the model reads, measured at ``CALM``."""
    pts = [{"family": "conv", "flops": f, "bytes": 1e3, "features": [math.log2(f), 1.0, 2.0, 3.0, 0.0, 3.0],
            "time_s": 5e-6 + f / 1e10, "hot_s": 4e-6 + f / 1e10, "after_s": 3e-6, "out_bytes": 1e3 * f / 1e6}
           for f in (1e3, 1e6, 1e7, 1e8, 1e9)]
    pts += [{"family": fam, "flops": 0.0, "bytes": b, "features": [], "time_s": 20e-6 + b / 1e9,
             "hot_s": 2e-6 + b / 4e9, "after_s": 1e-6 + b / 1e10, "out_bytes": b / 2}
            for fam in ("activation", "copy", "batch_norm") for b in (8.0, 1e4, 1e6, 1e8)]
    pts += [{"family": "dispatch", "flops": 0.0, "bytes": 0.0, "features": [], "time_s": 9e-6, "hot_s": 1.5e-6},
            {"family": "fresh_pages", "flops": 0.0, "bytes": 1.0, "features": [], "time_s": 1e-10}]
    return [{**p, PACE: CALM} for p in pts]


def priced_net() -> pd.DataFrame:
    net = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten())
    return analyze(net.eval(), (16, 32, 32), batch=4)


def test_a_machine_twice_as_slow_is_predicted_twice_the_time():
    """Every term of the formula is a calibration time (floors, rates, curves, cold starts, successor
    penalties): at a pace twice as slow on every probe, every row's prediction doubles."""
    tm = TimeModel(paced_points(), {"private_cache_bytes": 2 ** 21})
    rows = priced_net()
    base = tm.predict(rows, 4, 4)["predicted_s"]
    slow, calm = (TimeModel(paced_points(), {"private_cache_bytes": 2 ** 21}, pace) for pace in (SLOW, CALM))
    assert calm.pace_scale == 1.0 and slow.pace_scale == pytest.approx(2.0)
    assert list(slow.predict(rows, 4, 4)["predicted_s"]) == pytest.approx(list(2 * base))
    assert list(calm.predict(rows, 4, 4)["predicted_s"]) == pytest.approx(list(base))
    assert slow.describe()["applied_pace"] == {"pace": SLOW, "median_scale": pytest.approx(2.0)}
    assert "applied_pace" not in tm.describe()  # as measured: nothing claimed


def test_profile_records_the_pace_of_its_layers_and_prices_them_as_calibrated(monkeypatch):
    """profile reads the pace before and after its instrumented passes and records it (the geometric mean
    of the two readings); a time model passed in is applied as built (the bench's, calibrated in the same
    minutes as its measurements, read worse re-read at the pace: host_pace)."""
    readings = iter([{k: v * 1.5 for k, v in SLOW.items()}, {k: v / 1.5 for k, v in SLOW.items()}])
    monkeypatch.setattr(profile_module, "read_pace", lambda dev, dtype: next(readings))
    tm = TimeModel(paced_points(), {"private_cache_bytes": 2 ** 21})
    net = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten())
    p = profile(net, (16, 32, 32), batch=4, warmup=1, repeat=2, layer_repeat=1, quiet=True,
                ceilings=Ceilings("d", matmul={"fp32": 1e12}, copy_bw=1e12), time_model=tm)
    assert p.context["host_pace"] == pytest.approx(SLOW)
    assert list(p.layers["predicted_s"]) == pytest.approx(list(tm.predict(priced_net(), 4, 4)["predicted_s"]))
    without = profile(net, (16, 32, 32), batch=4, warmup=1, repeat=2, layer_repeat=1, quiet=True,
                      ceilings=Ceilings("d", matmul={"fp32": 1e12}, copy_bw=1e12), time_model=False)
    assert "host_pace" not in without.context  # no time model: no probes


def test_profile_rereads_the_calibration_it_loads_at_the_pace_of_its_layers(monkeypatch):
    """With ``time_model=True`` (what the CLI does) a CPU profile re-reads a calibration it loaded from the
    cache at the pace its layers ran at: calibrated at ``CALM``, timed at ``SLOW`` (twice as slow on every
    probe), every row is predicted twice the time, and the JSON's time model says by how much.  One it has
    just measured (``MEASURED_NOW``) is used as measured."""
    from archstat.profiling.calibrate import MEASURED_NOW

    monkeypatch.setattr(profile_module, "read_pace", lambda dev, dtype: SLOW)
    tm = TimeModel(paced_points(), {"private_cache_bytes": 2 ** 21})
    entry: dict = {"points": paced_points()}  # as read from the cache
    monkeypatch.setattr(profile_module, "get_time_model", lambda *a, **k: (tm, entry))
    net = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten())

    def run() -> object:
        return profile(net, (16, 32, 32), batch=4, warmup=1, repeat=2, layer_repeat=1, quiet=True,
                       ceilings=Ceilings("d", matmul={"fp32": 1e12}, copy_bw=1e12), time_model=True)

    p = run()
    calm = tm.predict(priced_net(), 4, 4)["predicted_s"]
    assert list(p.layers["predicted_s"]) == pytest.approx(list(2 * calm))
    applied = p.context["ceilings"]["time_model"]["applied_pace"]
    assert applied["pace"] == pytest.approx(SLOW) and applied["median_scale"] == pytest.approx(2.0)
    from archstat.profiling.profile_format import to_text

    assert "every calibration time x2.00" in to_text(p)  # the text report says it too
    entry[MEASURED_NOW] = True  # measured by this call: calibrated in the same minutes, not re-read
    fresh = run()
    assert list(fresh.layers["predicted_s"]) == pytest.approx(list(calm))
    assert "applied_pace" not in fresh.context["ceilings"]["time_model"]
    assert tm.reread(SLOW).reread(SLOW).pace_scale == pytest.approx(2.0)  # from the points as measured: no compounding
    unstamped = TimeModel([{k: v for k, v in q.items() if k != PACE} for q in paced_points()])
    assert "applied_pace" not in unstamped.reread(SLOW).describe()  # nothing to re-read, nothing claimed
    assert tm.reread(None) is tm and "applied_pace" not in tm.describe()  # no reading: as measured


def test_the_grid_stamps_each_point_with_the_pace_around_its_block(monkeypatch):
    """Readings at the start, every ``PACE_EVERY`` benchmarks and at the end; each point gets the
    geometric mean of the readings before and after its block."""
    readings = [{"matmul": float(2 ** k)} for k in range(8)]
    calls = iter(readings)
    monkeypatch.setattr(microbench, "read_pace", lambda dev, dtype: next(calls))
    monkeypatch.setattr(microbench, "time_case", lambda mod, shape, batch, *a: {"family": "x", "time_s": 1.0,
                                                                                "case": mod})
    n = microbench.PACE_EVERY + 4
    points = microbench.time_grid([(k, (1,), 1) for k in range(n)], torch.device("cpu"), torch.float32, False,
                                  True, True, 4, "test")
    by_case = {p["case"]: p[PACE]["matmul"] for p in points if "case" in p}
    assert all(by_case[k] == pytest.approx(math.sqrt(1 * 2)) for k in range(microbench.PACE_EVERY))
    assert all(by_case[k] == pytest.approx(math.sqrt(2 * 4)) for k in range(microbench.PACE_EVERY, n))
    assert points[0]["family"] == "fresh_pages" and points[0][PACE]["matmul"] == pytest.approx(math.sqrt(2))
    no_kernel = [p for p in points if p["family"] in microbench.NO_KERNEL_CASES]
    assert len(no_kernel) == 2 and all(p[PACE]["matmul"] == pytest.approx(math.sqrt(4 * 8)) for p in no_kernel)
