"""`archstat profile` on CPU, and the GPU script's --dry-run (every step's code path, on CPU)."""
from __future__ import annotations

import csv
import json
import os
import sys
import types

import pytest
import torch

from archstat import analyze
from archstat.cli import main

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
FAST = ["--warmup", "1", "--repeat", "2", "--layer-repeat", "1", "--quick"]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch, tmp_path):
    monkeypatch.setenv("ARCHSTAT_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_cli_json_joins_analyze_keys(capsys):
    assert main(["profile", "resnet18", "--input", "3x32x32", "--batch", "2", "--device", "cpu", "--format", "json",
                 *FAST]) == 0
    out = json.loads(capsys.readouterr().out)
    from archstat.models import get_model

    ref = analyze(get_model("resnet18", device="meta"), (3, 32, 32), batch=2)
    assert [(r["name"], r["op"], r["call"]) for r in out["layers"]] == list(zip(ref["name"], ref["op"], ref["call"]))
    assert out["runs"][0]["phase"] == "forward" and out["runs"][0]["median_s"] > 0
    assert out["context"]["cudnn_allow_tf32"] is False and out["context"]["matmul_allow_tf32"] is False
    roof = out["summary"]["roofline"]
    # the summary's rows: those that launch a kernel and take at least min_time_s, recounted here
    timed = [r for r in out["layers"] if r["naive_predicted_s"] > 0 and r["time_s"] >= roof["min_time_s"]]
    assert roof["layers"] == len(timed) > 0 and "ceilings" in out["context"]
    assert sum(roof[f"{b}_bound"] for b in ("compute", "memory", "overhead", "previous_op", "allocation", "weights")) == roof["layers"]
    assert all(r["time_s"] is not None and r["predicted_s"] is not None for r in out["layers"])


def test_cli_text_train_and_csv(capsys):
    assert main(["profile", "alexnet", "--input", "3x64x64", "--device", "cpu", "--precision", "tf32", "--train",
                 "--no-roofline", "--top", "5", *FAST]) == 0
    text = capsys.readouterr().out
    assert "cudnn.allow_tf32=True, matmul.allow_tf32=True" in text
    assert "forward" in text and "train" in text and "sum of per-layer times" in text
    assert main(["profile", "alexnet", "--input", "3x64x64", "--device", "cpu", "--format", "csv", "--no-layers",
                 "--no-roofline", *FAST]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert rows[0]["name"] == "features.0" and rows[0]["op"] == "Conv2d"


def test_cli_cuda_absent_is_one_line_exit_2(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["profile", "alexnet", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA is not available" in err


def _fake_torchvision(monkeypatch) -> None:
    """A stand-in torchvision whose resnet18 is our zoo's (same state_dict layout), to drive that step on CPU."""
    from archstat.models import get_model

    models = types.ModuleType("torchvision.models")
    models.resnet18 = lambda weights=None: get_model("resnet18")
    tv = types.ModuleType("torchvision")
    tv.__version__ = "fake"
    tv.models = models
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)


def test_gpu_script_dry_run(monkeypatch, tmp_path):
    _fake_torchvision(monkeypatch)
    monkeypatch.syspath_prepend(BENCH)
    import gpu_run

    out = tmp_path / "out"
    assert gpu_run.main(["--dry-run", "--models", "resnet18,alexnet", "--out", str(out)]) == 0
    files = sorted(os.listdir(out))
    assert files == ["layers.csv", "log.txt", "results.json", "roofline_accuracy.md", "runs.csv", "summary.md"]  # <= 8
    acc = res_acc = json.loads((out / "results.json").read_text())["roofline_accuracy"]
    assert [(r["model"], r["batch"]) for r in acc] == [("mobilenet_dw", 2)] and "error" not in acc[0], res_acc
    assert acc[0]["layers"] > 0 and acc[0]["overlap"] == 0  # out of sample: no calibration config is a model layer
    assert "| mobilenet_dw | 2 |" in (out / "roofline_accuracy.md").read_text()
    res = json.loads((out / "results.json").read_text())
    assert res["finished"] and res["machine"]["torch"] == torch.__version__ and res["ceilings"]["matmul"]
    steps = res["models"]["resnet18"]["steps"]
    for label in ("profile tf32 b4", "profile bf16 cl b4", "profile tf32 b1", "profile bf16 cl b1", "train tf32 b4"):
        assert steps[label]["status"] == "ok", (label, steps[label])
    assert steps["profile tf32 b4"]["context"]["matmul_allow_tf32"] is True
    assert steps["profile bf16 cl b4"]["summary"]["roofline"]["layers"] > 0
    tv = steps["torchvision"]
    assert tv["status"] == "ok" and tv["state_dict_strict"] and tv["bitwise_equal"]
    assert all(t["ratio"] > 0 for t in tv["timing"])
    assert res["models"]["alexnet"]["steps"]["torchvision"]["status"] == "error"  # the fake has no alexnet
    for label in ("validate", "validate train"):  # on CPU the dry run validates every model: nothing skipped
        assert steps[label]["status"] == "pass" and steps[label]["exit_code"] == 0, (label, steps[label])
        assert steps[label]["report"]["agree"] and not steps[label]["report"]["partial"], label
    summary = (out / "summary.md").read_text()
    assert "## Targets" in summary and "## Measured ceilings" in summary and "resnet18" in summary
    with open(out / "layers.csv") as fh:
        layers = list(csv.DictReader(fh))
    assert {r["model"] for r in layers} == {"resnet18", "alexnet"}


def test_gpu_script_refuses_without_cuda(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.syspath_prepend(BENCH)
    import gpu_run

    assert gpu_run.main(["--out", str(tmp_path / "x"), "--models", "alexnet"]) == 2
    assert "dry-run" in capsys.readouterr().err
