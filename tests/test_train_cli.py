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
    assert summary["steps"] == 2 * (1077 // 64) and "test_acc_ema" in summary
    # test_acc: the final weights' hits on the test split, counted here
    from archstat.train.setup import load_data
    from archstat.train.tiny import tiny_cnn

    model = tiny_cnn(10, 1)
    model.load_state_dict(torch.load(full / "last.pt", weights_only=True)["model"])
    x, y = load_data("digits", (1, 8, 8), TINY).test.tensors
    with torch.no_grad():
        hits = int((model.eval()(x).argmax(1) == y).sum())
    assert summary["test_acc"] == pytest.approx(hits / len(y), abs=1e-6)  # one image is 1/360
    assert summary["time_per_step_s"] > 0
    with open(full / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["steps"] and sum(1 for r in rows if r["val_acc"]) == 2
    # interrupted after one epoch, then resumed: the same weights, bit for bit
    assert main(["train", *common, "--out", str(part), "--stop-after", "1"]) == 0
    assert torch.load(part / "last.pt", weights_only=True)["epoch"] == 1
    assert main(["train", *common, "--out", str(part), "--resume"]) == 0
    a = torch.load(full / "last.pt", weights_only=True)
    b = torch.load(part / "last.pt", weights_only=True)
    assert a["step"] == b["step"] and a["ema"]["updates"] == b["ema"]["updates"] == a["step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in a["ema"]["module"]:
        assert torch.equal(a["ema"]["module"][k], b["ema"]["module"][k]), k
    with open(part / "metrics.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    # resumed with another recipe: refused in one line, the run's files untouched (was a traceback for
    # another optimizer, and a wrong accuracy with no word for another input size or --seed)
    capsys.readouterr()
    before = (part / "last.pt").read_bytes()
    for change in (["--optimizer", "adam"], ["--seed", "7"], ["--lr", "0.3"], ["--augment", "flip"]):
        assert main(["train", *common, *change, "--out", str(part), "--resume"]) == 2, change
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "--resume" in err and change[0] in err, err
    assert (part / "last.pt").read_bytes() == before


def test_tiny_learns_digits(tmp_path):
    assert main(["train", TINY, "--input", "1x16x16", "--batch", "32", "--epochs", "2", "--quiet", "--threads", "1",
                 "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["test_acc"] > 0.85


def test_diagnose_flag(tmp_path, capsys):
    """A hand-written metrics CSV with a known reading: 40 steps of loss 2.3 at a constant LR fell by 0%
    (not learning) and by less than 1% over the last third at a constant LR (a plateau); nothing else."""
    from archstat.train.metrics import FIELDS

    with open(tmp_path / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows({"step": t + 1, "epoch": 1, "lr": 0.1, "loss": 2.3} for t in range(40))
    assert main(["train", TINY, "--diagnose", str(tmp_path / "metrics.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("]")[0] + "]" for line in lines] == ["[not-learning]", "[plateau]"], lines
    assert lines[0].startswith("[not-learning] loss 2.300 -> 2.300 (0.0% lower) over 40 iterations")


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
    capsys.readouterr()
    # a grid's values in random mode, or a random range in grid mode, were silently ignored
    assert main(["search", *FAST, "--lrs", "0.1,0.01", "--out", str(tmp_path / "x")]) == 2
    assert main(["search", *FAST, "--mode", "grid", "--lr-range", "1e-3,1e-1", "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "--lrs" in err[0] and "--mode grid" in err[0] and "--lr-range" in err[1]


@pytest.mark.parametrize("save, files", [
    ("best", {"best.pt", "last.pt"}), ("last", {"last.pt"}), ("none", set()),
    ("all", {"best.pt", "last.pt", "epoch_1.pt", "epoch_2.pt"}),
])
def test_save_policies(tmp_path, save, files):
    assert main(["train", *FAST, "--epochs", "2", "--max-steps", "20", "--save", save, "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.glob("*.pt")} == files
    assert not list(tmp_path.glob(".*.tmp*"))  # no temporary file left behind
    for name in files:
        ck = torch.load(tmp_path / name, weights_only=True)
        assert ck["config"]["save"] == save and set(ck["model"]) and ck["input"] == [1, 8, 8]


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    from archstat.train.checkpoint import atomic_save

    target = tmp_path / "best.pt"
    atomic_save({"model": {"w": torch.ones(3)}}, target)

    def interrupted(obj, f, *a, **k):
        with open(f, "wb") as fh:  # the temporary file beside the target
            fh.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"model": {"w": torch.zeros(3)}}, target)
    monkeypatch.undo()
    assert torch.equal(torch.load(target, weights_only=True)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


@pytest.mark.parametrize("schedule, optimizer", [("linear", "adam"), ("inverse-sqrt", "rmsprop")])
def test_new_schedules_and_optimizers_train(tmp_path, schedule, optimizer):
    assert main(["train", *FAST, "--epochs", "2", "--schedule", schedule, "--warmup", "5", "--optimizer", optimizer,
                 "--lr", "0.003", "--clip-grad", "1.0", "--amp", "--channels-last", "--save", "none",
                 "--out", str(tmp_path)]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["test_acc"] > 0.3  # chance is 0.1
    with open(tmp_path / "metrics.csv", newline="") as f:
        lrs = [float(r["lr"]) for r in csv.DictReader(f)]
    assert lrs[0] < lrs[4] and lrs[-1] < lrs[4]  # warm-up, then decay


def test_evaluate_a_checkpoint(tmp_path, capsys):
    assert main(["train", *FAST, "--epochs", "1", "--augment", "flip", "--out", str(tmp_path)]) == 0
    test_acc = json.loads((tmp_path / "summary.json").read_text())["test_acc"]
    capsys.readouterr()
    assert main(["evaluate", TINY, "--checkpoint", str(tmp_path / "last.pt"), "--tta"]) == 0
    out = capsys.readouterr().out
    assert f"accuracy {100 * test_acc:.2f}%" in out  # the final weights score what the run reported
    matrix = [line.split() for line in out.splitlines()[2:12]]
    assert sum(int(v) for row in matrix for v in row[1:11]) == 360 and "TTA over 2 views" in out


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "resnet18", "--checkpoint", "CK"], "checkpoint of archstat.train.tiny:tiny_cnn, not of resnet18"),
    (["evaluate", TINY, "--checkpoint", "CSV"], "not an archstat checkpoint"),
    (["evaluate", TINY, "--checkpoint", "/no/such.pt"], "no checkpoint file"),
])
def test_evaluate_bad_checkpoints(tmp_path, capsys, argv, message):
    if not (tmp_path / "run" / "last.pt").exists():
        assert main(["train", *FAST, "--epochs", "1", "--max-steps", "2", "--out", str(tmp_path / "run")]) == 0
    paths = {"CK": str(tmp_path / "run" / "last.pt"), "CSV": str(tmp_path / "run" / "metrics.csv")}
    capsys.readouterr()
    assert main([paths.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("archstat: error:") and message in err and "\n" not in err


def test_evaluate_state_dict_of_another_architecture(tmp_path, capsys):
    from archstat.train.checkpoint import atomic_save
    from archstat.train.setup import build_model

    assert main(["train", *FAST, "--epochs", "1", "--max-steps", "2", "--out", str(tmp_path)]) == 0
    ck = torch.load(tmp_path / "last.pt", weights_only=True)
    ck["model"] = build_model(TINY, 10, 1, model_kw={"width": 4}).state_dict()  # right name, other shapes
    atomic_save(ck, tmp_path / "other.pt")
    capsys.readouterr()
    assert main(["evaluate", TINY, "--checkpoint", str(tmp_path / "other.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not fit" in err and "\n" not in err


@pytest.mark.parametrize("argv, message", [
    (["train", TINY, "--optimizer", "nadam"], "unknown optimizer"),
    (["train", TINY, "--schedule", "poly"], "unknown schedule"),
    (["train", TINY, "--save", "sometimes"], "unknown --save"),
    (["train", TINY, "--lr-range", "1,1e-5"], "0 < LO < HI"),
    (["train", TINY, "--lr-range", "fast"], "expects LO,HI"),
    (["train", TINY, "--data", "/no/such/folder", "--input", "3x8x8"], "does not exist"),
    (["train", TINY, "--augment", "warp"], "unknown augmentation"),
    (["train", TINY, "--resume", "--out", "/tmp/archstat-no-such-run"], "--resume"),
    (["train", "alexnet", "--input", "1x16x16"], "does not accept input"),
    (["train", TINY, "--diagnose", "/no/such.csv"], "no file"),
    (["train", TINY, "--device", "tpu"], "unknown --device"),
    (["train", TINY, "--transfer", "--transfer-exemplar-steps", "10"], "0 or at least 20"),
])
def test_bad_input_is_one_line_exit_2(argv, message, capsys):
    assert main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("archstat: error:") and message in err and "\n" not in err


def test_negative_exemplar_steps_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:  # argparse's usage errors exit through our parser, with 2
        main(["train", TINY, "--transfer", "--transfer-exemplar-steps", "-1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err.startswith("archstat: error:") and "--transfer-exemplar-steps" in err
    assert "\n" not in err


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
                 "--optimizer", "sgd", "--lr", "0.2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PASS init-loss" in out and "PASS overfit-small" in out and "LR range test 1e-05..1 with sgd" in out
    assert "sgd lr 0.2" in out  # the check uses --optimizer/--lr and says so
    assert main(["train", *FAST[:-2], "--threads", "1", "--overfit-small", "2", "--optimizer", "adam", "--lr", "1e-6",
                 "--out", str(tmp_path)]) == 1  # far too small an LR for 300 iterations: the check fails
    assert "FAIL overfit-small" in capsys.readouterr().out
    assert (tmp_path / "lr_range.png").exists() and (tmp_path / "lr_range.json").exists()


@pytest.mark.slow
def test_recipe_flag(tmp_path, capsys):
    assert main(["train", *FAST, "--epochs", "2", "--recipe", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for step in ("step 3", "step 4", "step 5", "step 6"):
        assert step in out
    assert (tmp_path / "recipe" / "step4_grid.png").exists() and (tmp_path / "recipe" / "step5" / "curves.png").exists()
    # the tiny net's step 3 picks the range's top, 0.1; the warning names what step 4 kept after it
    res = json.loads((tmp_path / "recipe" / "recipe.json").read_text())
    assert res["best_lr"] == 0.1 and f"step 4 then kept {res['step4'][0]['lr']:g}" in res["warning"]


def test_confusion_columns_line_up_with_a_full_precision():
    """``evaluate``'s confusion matrix: the precision row's cells sit under the class columns even at
    100.0% (six characters), as the counts do."""
    import torch

    from archstat.commands.evaluate import format_confusion

    cm = torch.tensor([[9, 0], [0, 7]])
    head, *rows, prec = format_confusion(cm, ["0", "1"]).splitlines()
    assert "100.0%" in prec
    ends = [i + 1 for i, (a, b) in enumerate(zip(head, head[1:] + " ")) if a != " " and b == " "][:2]  # the class columns
    assert all(row[e - 1] != " " and (e == len(row) or row[e] == " ") for row in [*rows, prec] for e in ends)


def test_a_new_run_names_the_earlier_checkpoints_it_leaves(tmp_path, capsys):
    """``--save all`` then ``--save last`` into the same folder: the old best.pt and epoch files stay (nothing
    the user had is removed) and a notice names them; the summary line names the epoch files written."""
    assert main(["train", *FAST, "--epochs", "2", "--save", "all", "--out", str(tmp_path)]) == 0
    assert "epoch_1.pt, epoch_2.pt" in capsys.readouterr().out
    assert main(["train", *FAST, "--epochs", "1", "--save", "last", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "holds best.pt, epoch_1.pt, epoch_2.pt from an earlier run" in err and "last.pt" not in err
    assert main(["evaluate", TINY, "--checkpoint", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    (tmp_path / "epoch_1_backup.pt").write_bytes((tmp_path / "epoch_1.pt").read_bytes())  # a user's copy: not ours
    assert main(["train", *FAST, "--epochs", "1", "--save", "all", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "epoch_1.pt, summary.json" in captured.out and "epoch_2.pt" not in captured.out
    assert "holds epoch_2.pt from an earlier run" in captured.err


def test_resume_reads_settings_as_the_run_used_them(tmp_path, capsys):
    """No --input is the model's default input, and 'flip,crop' is 'flip, crop=2': resuming with either
    spelling continues the run (they were refused as changes)."""
    base = [TINY, "--quiet", "--threads", "1", "--epochs", "2", "--train-per-class", "5", "--out", str(tmp_path)]
    assert main(["train", *base, "--augment", "flip,crop", "--stop-after", "1"]) == 0
    default_input = "x".join(map(str, torch.load(tmp_path / "last.pt", weights_only=True)["input"]))
    assert main(["train", *base, "--augment", "flip, crop=2", "--input", default_input, "--resume"]) == 0, \
        capsys.readouterr().err
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 2


def test_a_new_cyclic_run_writes_its_own_snapshots(tmp_path):
    """A cyclic run keeps a snapshot at each cycle's end; a new run into the same folder writes its own
    (the files were written only when absent, so an earlier run's stayed, and --resume would load them)."""
    cyclic = [TINY, "--quiet", "--threads", "1", "--epochs", "2", "--train-per-class", "5", "--schedule", "cyclic",
              "--cycles", "2", "--out", str(tmp_path)]
    assert main(["train", *cyclic]) == 0
    assert {p.name for p in tmp_path.glob("snapshot_*.pt")} == {"snapshot_0.pt", "snapshot_1.pt"}
    torch.save({"earlier": torch.zeros(1)}, tmp_path / "snapshot_0.pt")
    assert main(["train", *cyclic, "--seed", "1"]) == 0
    fresh = torch.load(tmp_path / "snapshot_0.pt", weights_only=True)
    assert "earlier" not in fresh and fresh.keys() == torch.load(tmp_path / "snapshot_1.pt", weights_only=True).keys()
