"""Figures are byte-identical on rerun; roll-ups and closed forms are exact."""
import pandas as pd
import sympy

import archstat
from archstat.engine.analyze import analyze_rows
from archstat.analyses import closed_forms as cf
from archstat.models import get_model
from archstat.reporting import plots
from archstat.reporting.gpu_results import gpu_latencies, gpu_layers
from archstat.analyses.stages import bar_units, stage_labels, stages


def test_png_is_deterministic(tmp_path):
    units = pd.DataFrame({"label": ["conv1", "pool1", "fc2"], "act_bytes": [802816, 186624, 16384],
                          "params": [23296, 0, 4097000], "flops": [72855552, 419904, 4096000]})
    a = plots.layer_bars(units, "t", tmp_path / "a.png")
    b = plots.layer_bars(units, "t", tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes()
    assert b"Creation" not in a.read_bytes() and b"Software" not in a.read_bytes()


def test_vgg_stages_and_lecture_names():
    model = get_model("vgg16_lecture", device="meta")
    df = archstat.analyze(model, (3, 224, 224))
    st = stages(df)
    convs = df.assign(stage=stage_labels(df))
    convs = convs[convs["kind"] == "conv"]
    per_stage = convs.groupby("stage", sort=False)["macs"].sum() / 1e6
    assert [round(v) for v in per_stage] == [1936, 2775, 2775, 4624, 1387]  # the slide's bars
    assert list(st["label"][:5]) == ["224x224", "112x112", "56x56", "28x28", "14x14"]
    units, kind = bar_units(archstat.analyze(get_model("alexnet", device="meta"), (3, 227, 227)),
                            get_model("alexnet", device="meta"))
    assert kind == "layer" and list(units["label"][:3]) == ["conv1", "pool1", "conv2"]
    assert list(units["label"][-3:]) == ["fc6", "fc7", "fc8"]


def test_closed_forms_match_numeric_analysis():
    model = get_model("vgg16", device="meta")
    _, totals = cf.symbolic_table(analyze_rows(model, (3, 224, 224), symbolic=True))
    assert cf.pretty(cf.smooth(totals["macs"])) == "305,856 HW + 123,633,664"
    alex = get_model("alexnet", device="meta")
    _, t = cf.symbolic_table(analyze_rows(alex, (3, 227, 227), symbolic=True))
    for side in (131, 255):  # away from the default input: the floors must be PyTorch's
        num = archstat.analyze(alex, (3, side, side)).attrs["total"]
        assert cf.evaluator(t["macs"])(side, side) == num["macs"]
        assert cf.evaluator(t["act_bytes"])(side, side) == num["act_bytes"]
    assert cf.pretty(sympy.Rational(8523, 16) * cf.H * cf.W) == "532.6875 HW"


def test_gpu_readers(tmp_path):
    card = tmp_path / "h100"
    card.mkdir()
    pd.DataFrame({"model": ["alexnet", "alexnet", "vgg16"], "step": ["fwd", "fwd", "fwd"],
                  "precision": ["bf16", "tf32", "tf32"], "phase": ["forward", "forward", "forward"],
                  "batch": [1, 1, 64], "median_s": [0.002, 0.003, 0.05]}).to_csv(card / "runs.csv", index=False)
    lat = gpu_latencies(tmp_path)
    assert lat["alexnet"]["latency_ms"] == 3.0 and lat["alexnet"]["precision"] == "tf32"
    assert lat["vgg16"]["batch"] == 64
    assert gpu_layers(tmp_path) == (None, {})
    assert gpu_latencies(tmp_path / "absent") == {}


def test_model_page_memory_rows_and_receptive_fields_come_from_the_estimators():
    from archstat.analyses.live_memory import inference_peak
    from archstat.analyses.memory import training_memory
    from archstat.analyses.receptive_field import receptive_field
    from archstat.reporting.report_pages import build, page_markdown

    model = get_model("resnet18", device="meta")
    rep = build("resnet18", model=model)
    page = page_markdown(rep)
    peak = inference_peak(archstat.analyze(model, (3, 224, 224)))["peak_bytes"]
    step = training_memory(analyze_rows(model, (3, 224, 224), mode="train")).attrs["total"]
    assert f"| inference peak (activations alive at once, fp32) | {peak:,} B" in page
    assert rep.training["total"] == step["total"] and rep.training["saved"] == step["saved"]
    assert f"| training step memory (batch 1, SGD with momentum) | {step['total'] / 2**20:,.2f} MB" in page
    rf = receptive_field(analyze_rows(model, (3, 224, 224)))
    assert [r[0] for r in rep.df["rf"]] == [r[0] for r in rf["rf"]] and "| RF | jump |" in page
