"""`archstat validate` on the command line: the agreement table, JSON, exit codes, bad input."""
import json
import sys

import pytest
import torch
from torch import nn

from archstat.cli import main


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv(x)))
        return self.fc(torch.flatten(x, 1))


def build_tiny():
    return Tiny()


build_tiny.default_input = (3, 8, 8)


class WithCumsum(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, 1)


def build_cumsum():
    return WithCumsum()


def test_text_table_marks_and_totals(capsys):
    assert main(["validate", f"{__name__}:build_tiny"]) == 0
    out = capsys.readouterr().out
    assert "AGREE: every check passed" in out
    assert "conv" in out and "4x8x8 ok" in out
    assert "total flops_fvcore" in out and "fvcore's unsupported ops: aten::max_pool2d x1" in out
    assert "MaxPool2d *" in out  # oracle unsupported, marked


def test_json_has_rows_totals_and_timing(capsys):
    assert main(["validate", f"{__name__}:build_tiny", "--format", "json", "--convention", "flopcounter"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["agree"] and out["convention"] == "flopcounter"
    assert [r["op"] for r in out["layers"]] == ["Conv2d", "relu", "MaxPool2d", "flatten", "Linear"]
    assert out["totals"]["flops_flopcounter"] == {"archstat": 2 * (4 * 64 * 27 + 64 * 5),
                                                  "oracle": 2 * (4 * 64 * 27 + 64 * 5)}
    assert set(out["timing"]) >= {"total_s", "fvcore_s", "flopcounter_s"}


def test_unsupported_op_is_reported_partial(capsys):
    assert main(["validate", f"{__name__}:build_cumsum", "--input", "3x4x4"]) == 0
    out = capsys.readouterr().out
    assert "PARTIAL" in out and "cumsum" in out


def test_mismatch_exits_1_and_names_the_layer(monkeypatch, capsys):
    from archstat.formulas import MODULE_FORMULAS

    real = MODULE_FORMULAS[nn.Linear]

    def double(m, inputs):
        cost = real(m, inputs)
        cost.macs *= 2
        return cost

    monkeypatch.setitem(MODULE_FORMULAS, nn.Linear, double)
    assert main(["validate", f"{__name__}:build_tiny"]) == 1
    out = capsys.readouterr().out
    assert "DISAGREE" in out and "layer fc (Linear, call 0): MACs of module: archstat 640 vs fvcore 320" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_cuda_is_one_line_exit_2(capsys):
    assert main(["validate", "alexnet", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA is not available" in err


def test_bad_input_is_one_line_exit_2(capsys):
    assert main(["validate", f"{__name__}:build_tiny", "--input", "3x2x2"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
