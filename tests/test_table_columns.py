"""`archstat table --training / --receptive-field`: the extra columns, checked against real PyTorch."""
import json

import pytest
import torch
from torch import nn

from archstat.engine.analyze import analyze_rows
from archstat.cli import main
from archstat.models import get_model
from archstat.analyses.table_columns import with_receptive_field, with_training
from archstat.validation.backward_check import measured_backward
from archstat.validation.memory_check import measured_saved
from archstat.validation.receptive_field_check import measure


def small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.2), nn.Flatten(), nn.Linear(8 * 8 * 8, 5))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_training_columns_equal_what_autograd_saves_and_flopcounter_counts(mode):
    net, shape = small_net(), (3, 16, 16)
    rows = analyze_rows(net, shape, batch=2, mode=mode, convention="flopcounter")
    df = with_training(rows)
    saved = measured_saved(rows)
    bwd = measured_backward(rows)
    assert list(df["saved_bytes"]) == saved["per_row"]
    assert list(df["bwd_flops"]) == bwd["per_row"] and df.attrs["training"]["bwd_flops"] == bwd["total"]
    params = sum(p.numel() for p in net.parameters()) * 4
    buffers = sum(b.numel() * b.element_size() for b in net.buffers())
    t = df.attrs["training"]
    assert (t["params"], t["grads"], t["optimizer"], t["buffers"]) == (params, params, params, buffers)
    assert t["total"] == saved["saved"] + 3 * params + buffers and not t["partial"]


def test_lecture_convention_counts_backward_in_multiply_adds():
    net, shape = small_net(), (3, 16, 16)
    df = with_training(analyze_rows(net, shape, batch=2, mode="train"), optimizer="adam")
    assert list(df["bwd_flops"]) == list(df["bwd_macs"])
    conv2 = df[(df["name"] == "4")].iloc[0]
    assert conv2["bwd_macs"] == 2 * conv2["macs"]  # grad-input and grad-weight, each the forward product
    assert df.iloc[0]["bwd_macs"] == df.iloc[0]["macs"]  # the first conv: no grad for the data
    assert df.attrs["training"]["optimizer"] == 2 * df.attrs["training"]["grads"]


def test_receptive_field_columns_match_the_gradient():
    stack = nn.Sequential(*(nn.Conv2d(1, 1, 3, padding=1) for _ in range(3)))  # the lecture's 3 x 3x3 = 7x7
    rows = analyze_rows(stack, (1, 15, 15))
    df = with_receptive_field(rows)
    assert [r[0] for r in df["rf"]] == [3, 5, 7]
    measured = measure(rows)  # backpropagate one output unit to the input
    assert all(measured["ok"]) and [m[0][1] - m[0][0] + 1 for m in measured["measured"]] == [3, 5, 7]


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_training_implies_the_training_graph_and_folds_sums(capsys):
    code, out, _ = run(capsys, "table", "alexnet", "--training", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["mode"] == "train"
    dropout_masks = [r for r in data["layers"] if r["op"] == "Dropout"]
    assert dropout_masks and all(r["saved_bytes"] == 4096 * 4 for r in dropout_masks[1:])  # float mask on the CPU
    assert data["training"]["saved"] == sum(r["saved_bytes"] for r in data["layers"])
    code, text, _ = run(capsys, "table", "alexnet", "--training")
    total_row = next(line for line in text.splitlines() if line.startswith("total"))
    assert f"{data['training']['saved'] / 1024:,}".rstrip("0").rstrip(".") in total_row
    assert "training step on cpu (train graph)" in text and "SGD with momentum" in text
    code, out, err = run(capsys, "table", "alexnet", "--training", "--mode", "eval", "--device", "cuda", "--format", "json")
    if not torch.cuda.is_available():  # as the README promises for every --device cuda: one line, exit 2
        assert code == 2 and out == "" and "CUDA is not available" in err and len(err.strip().splitlines()) == 1
    else:
        assert json.loads(out)["mode"] == "eval" and json.loads(out)["training"]["device"] == "cuda"


def test_cli_upto_keeps_the_prefix_and_says_the_step_total_is_not_whole(capsys):
    _, full, _ = run(capsys, "table", "resnet18", "--training", "--format", "json")
    _, cut, _ = run(capsys, "table", "resnet18", "--training", "--upto", "layer1", "--format", "json")
    full_rows, cut_rows = json.loads(full)["layers"], json.loads(cut)["layers"]
    assert cut_rows == full_rows[: len(cut_rows)] and json.loads(cut)["training"]["total"] is None


def test_cli_extra_columns_leave_the_default_contract_alone(capsys):
    _, plain, _ = run(capsys, "table", "alexnet", "--format", "json")
    _, extra, _ = run(capsys, "table", "alexnet", "--receptive-field", "--format", "json")
    plain_rows, extra_rows = json.loads(plain)["layers"], json.loads(extra)["layers"]
    assert set(extra_rows[0]) - set(plain_rows[0]) == {"rf", "jump", "rf_regular", "rf_global"}
    assert "training" not in json.loads(plain)
    conv5 = next(r for r in extra_rows if r["name"] == "features.10")
    assert conv5["rf"] == [163, 163] and conv5["jump"] == [16, 16]
    _, csv_text, _ = run(capsys, "table", "alexnet", "--receptive-field", "--training", "--format", "csv")
    assert csv_text.splitlines()[0].endswith("saved_bytes,bwd_macs,bwd_flops,rf,jump,rf_regular,rf_global")


def test_cli_symbolic_extra_columns_are_a_one_line_error(capsys):
    code, _, err = run(capsys, "table", "alexnet", "--training", "--symbolic")
    assert code == 2 and "--training needs numbers" in err and err.strip().count("\n") == 0


@pytest.mark.parametrize("argv, message", [
    (["--optimizer", "adam"], "add --training"),
    (["--device", "cuda"], "add --training"),
    (["--reconcile", "--training"], "drop --training"),
    (["--reconcile", "--upto", "features.5"], "drop --training, --receptive-field and --upto"),
])
def test_cli_flags_that_would_be_ignored_are_refused(capsys, argv, message):
    code, _, err = run(capsys, "table", "alexnet", *argv)
    assert code == 2 and message in err and err.strip().count("\n") == 0
