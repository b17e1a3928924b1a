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


def test_offline_first_rounds_rebuild_a_shorter_run_from_the_dumped_rounds(tmp_path, monkeypatch):
    """A dumped frame keeps each round's layer times and whole-model time; ``--rounds K`` takes the median
    of the first ``K`` (all of them give the frame's own times back: the bench reads its rounds so), or
    their least with ``fastest``, and likewise of the first ``K`` calibration passes, and refuses a frame
    or a calibration that kept fewer."""
    import torch

    monkeypatch.syspath_prepend(str(BENCH_DIR))
    bench = load_bench("roofline_accuracy")
    offline = load_bench("roofline_offline")
    bench.run(torch.device("cpu"), ["mobilenet_dw"], [2], small=True, quick=True, repeat=2, layer_repeat=2,
              dump=tmp_path, rounds=2)
    frame = pd.read_pickle(tmp_path / "mobilenet_dw_b2.pkl")
    r1, r2 = frame[bench.ROUND_PREFIX + "1"], frame[bench.ROUND_PREFIX + "2"]
    assert (r1 != r2).any()  # two timings of the same layers, not one copied
    both = offline.first_rounds(frame, 2)
    assert both["time_s"].tolist() == pytest.approx(frame["time_s"].tolist())
    assert both["time_s"].tolist() == pytest.approx([(a + b) / 2 for a, b in zip(r1, r2)])  # the median of two
    assert both["whole_model_s"].iloc[0] == pytest.approx(frame["whole_model_s"].iloc[0])
    assert offline.first_rounds(frame, 2, fastest=True)["time_s"].tolist() == [min(a, b) for a, b in zip(r1, r2)]
    one = offline.first_rounds(frame, 1)
    assert one["time_s"].tolist() == r1.tolist()
    assert one["whole_model_s"].iloc[0] == frame[bench.WHOLE_ROUND_PREFIX + "1"].iloc[0]
    with pytest.raises(SystemExit, match="round3"):
        offline.first_rounds(frame, 3)

    fast = {"family": "copy", "signature": [1], "time_s": 1.0, "hot_s": 0.5}
    slow = {**fast, "time_s": 2.0, "hot_s": 0.25}
    cal = {"points": [], "passes": [[slow], [fast]]}
    assert offline.first_passes(cal, 1)["points"] == [slow]
    assert offline.first_passes(cal, 2, fastest=True)["points"] == [{**fast, "hot_s": 0.25}]  # each the least of its own
    assert offline.first_passes(cal, 2)["points"] == [{**fast, "time_s": 1.5, "hot_s": 0.375}]  # each the median
    with pytest.raises(SystemExit, match="2 passes, not 3"):
        offline.first_passes(cal, 3)


def test_offline_main_says_which_reading_each_folder_got(tmp_path, monkeypatch, capsys):
    """``roofline_offline.py DUMP``: a folder whose frames kept their rounds is re-read by the medians (or
    by the fastest with ``--fastest``), one dumped before the per-round columns as stored; the line under
    each folder says which, and the targets line follows.  ``--flushed`` takes only a family timed as in a
    pass."""
    import sys

    import torch

    monkeypatch.syspath_prepend(str(BENCH_DIR))
    bench = load_bench("roofline_accuracy")
    offline = load_bench("roofline_offline")
    new, old = tmp_path / "new", tmp_path / "old"
    bench.run(torch.device("cpu"), ["mobilenet_dw"], [2], small=True, quick=True, repeat=2, layer_repeat=2,
              dump=new, rounds=2)
    old.mkdir()
    (old / "calibration.json").write_text((new / "calibration.json").read_text())
    frame = pd.read_pickle(new / "mobilenet_dw_b2.pkl")
    frame.drop(columns=[c for c in frame.columns if str(c).startswith(bench.ROUND_PREFIX)]).to_pickle(
        old / "mobilenet_dw_b2.pkl")
    for extra, reading in (([], "the median of the rounds and passes"), (["--fastest"], "the fastest of the rounds")):
        monkeypatch.setattr(sys, "argv", ["roofline_offline.py", str(new), str(old), *extra])
        offline.main()
        out = capsys.readouterr().out
        assert f"{new}: {reading}" in out and f"{old}: as stored" in out
        assert out.count("targets met: median") == 2
    monkeypatch.setattr(sys, "argv", ["roofline_offline.py", str(new), "--flushed", "cat"])
    with pytest.raises(SystemExit):
        offline.main()
    assert "invalid choice" in capsys.readouterr().err


def test_targets_are_counted_per_row_with_the_looser_bar_at_batch_one_and_for_the_depthwise_net():
    """``targets_met``: 20% at batch 8 (30% at batch 1 and for mobilenet_dw), 2x the naive median,
    Spearman 0.95, layer sum within 10%; ``targets_line`` counts them and skips failed rows."""
    bench = load_bench("roofline_accuracy")
    good = {"median_abs_error": 0.25, "naive_median_abs_error": 0.5, "spearman": 0.95, "predicted_sum_ratio": 1.09}
    assert bench.targets_met({**good, "model": "resnet50", "batch": 8}) == {
        "median": False, "2x naive": True, "Spearman": True, "layer sum": True}
    assert bench.targets_met({**good, "model": "resnet50", "batch": 1})["median"]
    assert bench.targets_met({**good, "model": "mobilenet_dw", "batch": 8})["median"]
    worse = {"median_abs_error": 0.1, "naive_median_abs_error": 0.19, "spearman": 0.949, "predicted_sum_ratio": 0.89}
    assert bench.targets_met({**worse, "model": "vgg16", "batch": 8}) == {
        "median": True, "2x naive": False, "Spearman": False, "layer sum": False}
    rows = [{**good, "model": "resnet50", "batch": 8}, {**worse, "model": "vgg16", "batch": 1},
            {"model": "googlenet", "batch": 8, "error": "out of memory"}]
    assert bench.targets_line(rows) == ("targets met: median 1/2, 2x naive 1/2, Spearman 1/2, layer sum 1/2; "
                                        "mean of the medians 17.5%")


def test_offline_pace_is_the_rounds_median_per_probe_or_the_fastest_rounds(monkeypatch):
    """``rounds_pace``: per probe the median of the rounds that have a reading (rounds without one and probes
    some round lacks are left out); with ``fastest`` the reading of the fastest round."""
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    offline = load_bench("roofline_offline")
    paces = [{"matmul": 1.0, "copy": 4.0, "dispatch": 1.0}, None, {"matmul": 3.0, "copy": 2.0},
             {"matmul": 2.0, "copy": 9.0}]
    assert offline.rounds_pace(paces) == {"matmul": 2.0, "copy": 4.0}
    assert offline.rounds_pace(paces, fastest=True) == paces[0]  # the least geometric mean: 1.59 (2.45, 4.24)
    assert offline.rounds_pace([None, {}]) is None and offline.rounds_pace([]) is None
