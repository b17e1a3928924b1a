"""archstat.profiling.profile on CPU: timing statistics, per-layer join with analyze(), bytes, roofline, OOM, cache.

Every path of the GPU code runs here with perf_counter in place of CUDA events.  Tiny models, few
repeats, one thread (a busy 2-core CI box otherwise stalls torch's thread pool).
"""
from __future__ import annotations

import json
import statistics
import sys

import numpy as np
import pytest
import torch
from torch import nn

from archstat import analyze, profile
from archstat.errors import ArchstatError
from archstat.profiling.ceilings import Ceilings, get_ceilings
from archstat.profiling.roofline import roofline, roofline_summary
from archstat.profiling.timing import stats


class Tiny(nn.Module):
    """conv-bn-relu, a residual add, a pool, flatten, linear: every kind of row the roofline prices."""

    default_input = (3, 16, 16)

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn(self.conv1(x)))
        y = y + self.conv2(y)
        return self.fc(torch.flatten(self.pool(y), 1))


def fake_ceilings(batch: int = 2) -> Ceilings:
    return Ceilings("test device", matmul={"fp32": 1e9, "tf32": 2e9, "bf16": 4e9, "fp16": 4e9}, copy_bw=1e9)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch, tmp_path):
    monkeypatch.setenv("ARCHSTAT_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_stats_match_numpy():
    xs = [3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0]
    s = stats(xs)
    q75, q25 = np.percentile(xs, [75, 25])
    assert s["median"] == pytest.approx(np.median(xs))
    assert s["iqr"] == pytest.approx(q75 - q25)
    assert s["cv"] == pytest.approx(np.std(xs) / np.mean(xs))
    assert (s["min"], s["max"], s["n"]) == (1.0, 9.0, 8)


def test_profile_rows_are_analyze_rows_with_times():
    model = Tiny()
    p = profile(model, batch=2, warmup=1, repeat=3, layer_repeat=2, ceilings=fake_ceilings(), time_model=False)
    ref = analyze(model, (3, 16, 16), batch=2)
    key = ["name", "op", "call"]
    assert p.layers[key].values.tolist() == ref[key].values.tolist()
    assert (p.layers["macs"] == ref["macs"]).all() and (p.layers["flops"] == ref["flops"]).all()
    assert (p.layers["time_s"] > 0).all()
    assert p.layers["time_share"].sum() == pytest.approx(1.0)
    fwd = p.runs.set_index("phase").loc["forward"]
    assert fwd["repeats"] == 3 and fwd["images_per_s"] == pytest.approx(2 / fwd["median_s"])
    assert fwd["flops_hardware"] == p.layers["flops_hardware"].sum()
    assert p.summary["layer_sum_s"] == pytest.approx(p.layers["time_s"].sum())
    # against the whole model timed between the instrumented passes (layer_timing.interleaved)
    assert p.summary["layer_sum_ratio"] == pytest.approx(p.summary["layer_sum_s"] / p.summary["whole_model_s"])
    assert p.context["cudnn_allow_tf32"] is False and p.context["precision"] == "fp32"
    assert p.context["device"] == "cpu" and "torch" in p.context and "date" in p.context


def test_the_layer_sum_is_judged_against_the_whole_model_calls_between_the_passes(monkeypatch):
    """summary["whole_model_s"] is the median of the whole-model calls made between the instrumented
    passes (layer_timing.interleaved), not the forward row's median of calls timed before them."""
    import archstat.profiling.profile as profile_module

    real = profile_module.interleaved
    calls = []

    def fake_interleaved(*args, **kwargs):
        calls.append(kwargs.get("whole"))
        passes, whole_s = real(*args, **kwargs)
        assert len(whole_s) == len(passes) == 3
        return passes, [1.0, 3.0, 2.0]

    monkeypatch.setattr(profile_module, "interleaved", fake_interleaved)
    p = profile(Tiny(), batch=2, warmup=1, repeat=3, layer_repeat=3, ceilings=fake_ceilings(), time_model=False)
    assert callable(calls[0])  # the whole model is timed between the passes
    assert p.summary["whole_model_s"] == 2.0 != p.runs.set_index("phase").loc["forward", "median_s"]
    assert p.summary["layer_sum_ratio"] == pytest.approx(p.layers["time_s"].sum() / 2.0)


def test_bytes_moved_and_hardware_flops_per_row():
    p = profile(Tiny(), batch=2, warmup=1, repeat=2, layers=False, ceilings=False)
    rows = {(r["name"], r["op"]): r for r in p.layers.to_dict("records")}
    n, f32 = 2, 4
    conv1 = rows[("conv1", "Conv2d")]
    assert conv1["bytes_moved"] == (n * 3 * 16 * 16 + (8 * 3 * 9 + 8) + n * 8 * 16 * 16) * f32
    assert conv1["flops_hardware"] == 2 * n * 8 * 16 * 16 * 3 * 9
    bn = rows[("bn", "BatchNorm2d")]  # weight, bias, running mean and var; not num_batches_tracked
    assert bn["bytes_moved"] == (2 * n * 8 * 16 * 16 + 4 * 8) * f32
    assert rows[("", "add")]["bytes_moved"] == 3 * n * 8 * 16 * 16 * f32
    assert rows[("", "flatten")]["bytes_moved"] == 0  # a view launches no kernel
    fc = rows[("fc", "Linear")]
    assert fc["bytes_moved"] == (n * 512 + 512 * 10 + 10 + n * 10) * f32


def test_naive_roofline_is_matmul_peak_and_copy_bandwidth():
    p = profile(Tiny(), batch=2, warmup=1, repeat=2, layer_repeat=2, ceilings=fake_ceilings(), time_model=False)
    rows = {(r["name"], r["op"]): r for r in p.layers.to_dict("records")}
    conv2 = rows[("conv2", "Conv2d")]
    naive = max(conv2["flops_hardware"] / 1e9, conv2["bytes_moved"] / 1e9)
    assert conv2["naive_predicted_s"] == pytest.approx(naive)
    assert conv2["naive_error"] == pytest.approx((naive - conv2["time_s"]) / conv2["time_s"])
    assert conv2["predicted_s"] == pytest.approx(naive)  # no time model given: the naive roofline
    assert conv2["ceiling"] == "matmul fp32" and conv2["roof"] in ("matmul fp32", "copy bandwidth")
    relu = rows[("relu", "ReLU")]
    assert relu["bound"] == "memory" and relu["intensity"] == pytest.approx(relu["flops_hardware"] / relu["bytes_moved"])
    assert rows[("", "flatten")]["bound"] == "none" and rows[("", "flatten")]["predicted_s"] == 0
    timed = (p.layers["naive_predicted_s"] > 0) & (p.layers["time_s"] >= p.summary["roofline"]["min_time_s"])
    assert p.summary["roofline"]["layers"] == int(timed.sum())  # recounted from the rows


def test_roofline_summary_statistics():
    import pandas as pd

    df = pd.DataFrame({"flops_hardware": [1] * 5, "bytes_moved": [1] * 5, "kind": ["x"] * 5, "kernel": [None] * 5,
                       "hparams": [{}] * 5, "out_shape": [[1]] * 5, "time_s": [1e-3, 2e-3, 3e-3, 4e-3, 1e-6]})
    df = roofline(df, fake_ceilings(), "fp32", 2, 4)
    df["predicted_s"] = [1.1e-3, 1.6e-3, 3.3e-3, 5e-3, 1e-6]
    df["error"] = (df["predicted_s"] - df["time_s"]) / df["time_s"]
    df["naive_error"] = [0.5, -0.5, 0.2, 0.1, 9.0]
    s = roofline_summary(df, min_time=20e-6)
    assert s["layers"] == 4  # the 1 us row is under min_time
    assert s["median_abs_error"] == pytest.approx(statistics.median([0.1, 0.2, 0.1, 0.25]))
    assert s["naive_median_abs_error"] == pytest.approx(statistics.median([0.5, 0.5, 0.2, 0.1]))
    assert s["spearman"] == pytest.approx(1.0)
    assert s["predicted_sum_s"] == pytest.approx(sum(df["predicted_s"]))


def test_train_step_and_callers_model_unchanged():
    model = Tiny().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    p = profile(model, batch=2, warmup=1, repeat=2, layers=False, train=True, ceilings=False)
    assert list(p.runs["phase"]) == ["forward", "train"]
    tr = p.runs.set_index("phase").loc["train"]
    assert tr["median_s"] > 0 and tr["flops_hardware"] == 3 * p.runs.iloc[0]["flops_hardware"]
    assert "memory_estimate_note" in p.runs.columns and p.summary["train_memory"]["note"]
    assert model.training  # mode restored
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # no SGD step on the caller's weights


def test_bf16_channels_last_copy_and_flags():
    model = Tiny()
    p = profile(model, batch=2, precision="bf16", channels_last=True, warmup=1, repeat=2, layer_repeat=1,
                ceilings=False)
    assert p.context["dtype"] == "bfloat16" and p.context["channels_last"] is True
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is not cast
    rows = {(r["name"], r["op"]): r for r in p.layers.to_dict("records")}
    assert rows[("conv1", "Conv2d")]["bytes_moved"] == (2 * 3 * 256 + 8 * 27 + 8 + 2 * 8 * 256) * 2


def test_out_of_memory_names_the_batch(monkeypatch):
    prof_mod = sys.modules["archstat.profiling.profile"]  # the module, not archstat.profile (the function)

    def boom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(prof_mod, "time_calls", boom)
    with pytest.raises(ArchstatError, match=r"out of memory at batch 4 .*--batch 2"):
        profile(Tiny(), batch=4, ceilings=False, layers=False)


def test_bad_inputs_are_one_line_errors():
    with torch.device("meta"):
        meta = Tiny()
    with pytest.raises(ArchstatError, match="meta device"):
        profile(meta, ceilings=False)
    with pytest.raises(ArchstatError, match="precision"):
        profile(Tiny(), precision="int8", ceilings=False)
    if not torch.cuda.is_available():
        with pytest.raises(ArchstatError, match="CUDA is not available"):
            profile(Tiny(), device="cuda")


def test_ceilings_measured_once_then_cached(monkeypatch, tmp_path):
    import archstat.profiling.ceilings as cmod

    import archstat.profiling.cache as cache

    monkeypatch.setattr(cache, "load_average", lambda: 0.0)  # an idle machine: nothing is measured under load
    dev = torch.device("cpu")
    first = get_ceilings(dev, ("fp32", "bf16"), quick=True)
    assert set(first.matmul) == {"fp32", "bf16"} and all(v > 0 for v in first.matmul.values())
    assert first.copy_bw > 0
    assert first.state["threads"] == torch.get_num_threads() and "load_before" in first.state and first.state["date"]
    data = json.loads((tmp_path / "cache" / "ceilings.json").read_text())
    assert len(data) == 1 and "quick" in next(iter(data))

    def no_measure(*a, **k):
        raise AssertionError("measured again despite the cache")

    monkeypatch.setattr(cmod, "measure_matmul", no_measure)
    monkeypatch.setattr(cmod, "measure_copy", no_measure)
    again = get_ceilings(dev, ("fp32",), quick=True)
    assert again.matmul == first.matmul and again.copy_bw == first.copy_bw


def test_cpu_forward_peak_is_tracked_and_matches_the_estimate():
    """CPU keeps no allocator statistics: the forward row's peak is weights + input + the live
    activations a dispatch-level tracker counts during the eager forward.  Tiny's peak is at the
    residual add (input, the block's input y, conv2's output and the sum), where the eager forward
    and the estimate's free-after-last-use schedule agree; later the eager forward keeps ``y``
    alive longer, below the peak."""
    model = Tiny()
    p = profile(model, batch=2, warmup=1, repeat=2, layers=False, ceilings=False)
    fwd = p.runs.set_index("phase").loc["forward"]
    state = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    inp, feature = 2 * 3 * 16 * 16 * 4, 2 * 8 * 16 * 16 * 4
    assert "dispatch level" in fwd["peak_mem_source"]
    assert fwd["peak_mem_bytes"] == state + inp + 3 * feature
    assert fwd["memory_estimate_bytes"] == fwd["peak_mem_bytes"]


def test_a_batch_whose_activations_cannot_fit_is_refused_before_running():
    """On CUDA, profile compares the inference peak with the free device memory first (the check is
    a pure function of the table, exercised here with made-up free memory)."""
    from archstat.analyses.live_memory import inference_peak
    from archstat.profiling.profile import check_fits

    df = analyze(Tiny(), (3, 16, 16), batch=64)
    peak = inference_peak(df)["peak_bytes"]
    check_fits(df, 64, free=peak, total=4 * peak)  # exactly enough: no error
    with pytest.raises(ArchstatError, match=r"batch 64 needs at least .* try --batch 16$"):
        check_fits(df, 64, free=peak // 3, total=4 * peak)  # room for about 21 images: the power of 2 below
    with pytest.raises(ArchstatError, match="not even batch 1 fits"):
        check_fits(df, 64, free=peak // 100, total=4 * peak)


class WithErf(nn.Module):
    """A conv, then ``torch.special.erf``, an op archstat has no formula for."""

    default_input = (3, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.erf(self.conv(x))


def test_ops_without_a_formula_are_flagged_in_every_profile_format():
    """An unsupported op's FLOPs are unknown: the text says the FLOP figures are lower bounds and shows
    "?", JSON and CSV give it ``supported: false`` and null FLOP fields, never a silent 0."""
    from archstat.profiling.profile_format import to_csv, to_json, to_text

    p = profile(WithErf(), batch=2, warmup=1, repeat=2, layer_repeat=2, ceilings=fake_ceilings(), time_model=False)
    assert p.context["unsupported"] == ["special_erf (<root>)"]
    text = to_text(p)
    assert "UNSUPPORTED ops" in text and "lower bounds" in text and "special_erf" in text
    erf_line = next(line for line in text.splitlines() if line.startswith("<root>") and "special_erf" in line)
    assert "?" in erf_line
    layers = {r["op"]: r for r in json.loads(to_json(p))["layers"]}
    assert layers["special_erf"]["supported"] is False and layers["special_erf"]["flops_hardware"] is None
    assert layers["Conv2d"]["supported"] is True and layers["Conv2d"]["flops_hardware"] > 0
    # no time predicted from unknown FLOPs either (as 0 FLOPs it read "memory-bound, 27% of the roof")
    erf = layers["special_erf"]
    assert erf["predicted_s"] is None and erf["achieved_fraction"] is None and erf["bound"] == "unknown (no formula)"
    assert layers["Conv2d"]["predicted_s"] > 0
    assert p.summary["roofline"]["without_formula"] == 1 and "left out" in text
    csv_erf = next(line for line in to_csv(p).splitlines() if "special_erf" in line)
    assert ",False," in csv_erf
    supported = profile(nn.Sequential(nn.Conv2d(3, 4, 3)), (3, 8, 8), batch=2, warmup=1, repeat=2, layers=False,
                        ceilings=False)
    assert "unsupported" not in supported.context and "UNSUPPORTED" not in to_text(supported)
