"""`archstat train` / `archstat search` end to end: files written, resume exact, bad input -> exit 2."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from archstat.cli import main

TINY = "archstat.train.tiny:tiny_cnn"
FAST = [TINY, "--input", "1x8x8", "--batch", "64", "--quiet", "--threads", "1"]


@pytest.fixture(autouse=True)
def _keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_train_writes_curves_checkpoints_and_resumes_exactly(tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    common = FAST + ["--epochs", "2", "--augment", "flip,crop=1,mixup", "--ema", "0.9", "--lr", "0.1"]
    assert main(["train", *common, "--out", str(full)]) == 0
    printed = capsys.readouterr().out
    assert "test acc" in printed and "ms/step" in printed
    for name in ("metrics.csv", "curves.png", "last.pt", "best.pt", "summary.json"):
        assert (full / name).stat().st_size > 0, name
    summary = json.loads((full / "summary.json").read_text())
    assert summary["steps"] == 2 * (1077 // 64) and 0 <= summary["test_acc"] <= 1 and "test_acc_ema" in summary
    assert summary["time_per_step_s"] > 0
    with open(full / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["steps"] and sum(1 for r in rows if r["val_acc"]) == 2
    # interrupted after one epoch, then resumed: the same weights, bit for bit
    assert main(["train", *common, "--out", str(part), "--stop-after", "1"]) == 0
    assert torch.load(part / "last.pt", weights_only=False)["epoch"] == 1
    assert main(["train", *common, "--out", str(part), "--resume"]) == 0
    a = torch.load(full / "last.pt", weights_only=False)
    b = torch.load(part / "last.pt", weights_only=False)
    assert a["step"] == b["step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in a["ema"]:
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    with open(part / "metrics.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(rows)


def test_tiny_learns_digits(tmp_path):
    assert main(["train", TINY, "--input", "1x16x16", "--batch", "32", "--epochs", "2", "--quiet", "--threads", "1",
                 "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["test_acc"] > 0.85


def test_diagnose_flag(tmp_path, capsys):
    assert main(["train", *FAST, "--epochs", "1", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["train", TINY, "--diagnose", str(tmp_path / "metrics.csv")]) == 0
    assert capsys.readouterr().out.startswith("[")


def test_search_random_and_grid(tmp_path, capsys):
    assert main(["search", *FAST, "--epochs", "1", "--max-steps", "5", "--trials", "2", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "| rank | lr |" in out and (tmp_path / "r" / "search.png").exists()
    assert main(["search", *FAST, "--mode", "grid", "--lrs", "0.1,0.01", "--wds", "0,1e-4", "--epochs", "1",
                 "--max-steps", "3", "--out", str(tmp_path / "g")]) == 0
    with open(tmp_path / "g" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(float(r["lr"]), float(r["weight_decay"])) for r in rows} == {(0.1, 0), (0.1, 1e-4), (0.01, 0), (0.01, 1e-4)}
    assert [float(r["val_acc"]) for r in rows] == sorted((float(r["val_acc"]) for r in rows), reverse=True)


@pytest.mark.parametrize("argv, message", [
    (["train", TINY, "--optimizer", "adam"], "unknown optimizer"),
    (["train", TINY, "--schedule", "linear"], "unknown schedule"),
    (["train", TINY, "--data", "/no/such/folder", "--input", "3x8x8"], "does not exist"),
    (["train", TINY, "--augment", "warp"], "unknown augmentation"),
    (["train", TINY, "--resume", "--out", "/tmp/archstat-no-such-run"], "--resume"),
    (["train", "alexnet", "--input", "1x16x16"], "does not accept input"),
    (["train", TINY, "--diagnose", "/no/such.csv"], "no file"),
    (["train", TINY, "--device", "tpu"], "unknown --device"),
])
def test_bad_input_is_one_line_exit_2(argv, message, capsys):
    assert main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("archstat: error:") and message in err and "\n" not in err


def test_train_on_an_image_folder(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(("dark", "light")):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray((rng.random((9, 9, 3)) * 80 + 170 * k).astype(np.uint8)).save(tmp_path / "data" / name / f"{i}.png")
    assert main(["train", TINY, "--data", str(tmp_path / "data"), "--input", "3x8x8", "--batch", "4", "--epochs", "3",
                 "--lr", "0.1", "--quiet", "--threads", "1", "--out", str(tmp_path / "run")]) == 0
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["train/val/test"] == [12, 4, 4] and s["input"] == [3, 8, 8] and s["test_acc"] == 1.0


def test_sanity_check_flags(tmp_path, capsys):
    assert main(["train", *FAST[:-2], "--threads", "1", "--check-init-loss", "--overfit-small", "5", "--lr-range",
                 "--optimizer", "sgd", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PASS init-loss" in out and "PASS overfit-small" in out and "LR range test" in out
    assert (tmp_path / "lr_range.png").exists() and (tmp_path / "lr_range.json").exists()


@pytest.mark.slow
def test_recipe_flag(tmp_path, capsys):
    assert main(["train", *FAST, "--epochs", "2", "--recipe", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for step in ("step 3", "step 4", "step 5", "step 6"):
        assert step in out
    assert (tmp_path / "recipe" / "step4_grid.png").exists() and (tmp_path / "recipe" / "step5" / "curves.png").exists()
