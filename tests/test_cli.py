"""The command line: formats, and every bad input as one line on stderr with exit code 2."""
import json
import subprocess
import sys

import pytest

from archstat.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_table_text_has_lecture_columns(capsys):
    code, out, _ = run_cli(capsys, "table", "alexnet")
    assert code == 0
    for col in ("C_in", "H/W in", "filters", "kernel", "stride", "pad", "C_out", "H/W out", "memory (KB)",
                "params (k)", "flop (M)"):
        assert col in out
    lines = out.splitlines()
    assert "72.855552" in out and "37,752.832" in out and lines[-4].startswith("total")  # footer: 3 lines
    assert lines[-1].startswith("inference peak: ")


def test_table_json_contract(capsys):
    code, out, _ = run_cli(capsys, "table", "alexnet", "--format", "json", "--batch", "2")
    doc = json.loads(out)
    assert code == 0 and doc["input"] == [3, 227, 227] and doc["batch"] == 2
    first = doc["layers"][0]
    assert set(first) >= {"name", "op", "call", "in_shapes", "out_shape", "kernel", "stride", "padding", "params",
                          "macs", "flops", "act_bytes", "alloc", "supported"}
    assert first["macs"] == 2 * 72_855_552 and first["params"] == 23_296
    assert doc["total"]["params"] == 61_100_840


def test_table_csv_and_markdown(capsys):
    code, out, _ = run_cli(capsys, "table", "alexnet", "--format", "csv")
    assert code == 0 and out.splitlines()[0].startswith("name,op,call,in_shapes")
    code, out, _ = run_cli(capsys, "table", "alexnet", "--format", "markdown", "--upto", "features.5")
    assert code == 0 and "| features.5 |" in out and "features.6" not in out


def test_symbolic_table(capsys):
    code, out, _ = run_cli(capsys, "table", "alexnet", "--symbolic", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["layers"][0]["out_shape"][1] == "floor(H/4 - 7/4) + 1"


def test_reconcile(capsys):
    code, out, _ = run_cli(capsys, "table", "alexnet", "--reconcile")
    assert code == 0 and "flopcounter" in out and "conv" in out


def test_any_importable_model(tmp_path, monkeypatch, capsys):
    # in process (the CLI's main, as the console script calls it): the import path, not the process, is tested
    (tmp_path / "mynet.py").write_text(
        "import torch\ndef build():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = run_cli(capsys, "table", "mynet:build", "--input", "3x8x8", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["total"]["macs"] == 4 * 6 * 6 * 27
    code, out, err = run_cli(capsys, "table", "mynet:nothing")
    assert code == 2 and "has no attribute" in err and err.count("\n") == 1


def test_a_model_file_in_the_current_folder_is_found(tmp_path, monkeypatch, capsys):
    """The console script does not put the current folder on sys.path (``python -m`` does): a
    ``mynet_here.py`` beside the user is found anyway, searched after everything else."""
    (tmp_path / "mynet_here.py").write_text(
        "import torch\ndef build():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "mynet_here", raising=False)
    code, out, err = run_cli(capsys, "table", "mynet_nowhere:build")  # not here either: the first error, once
    assert code == 2 and "No module named 'mynet_nowhere'" in err and err.count("\n") == 1
    assert str(tmp_path) not in sys.path  # the folder is searched for the import only when it has the module
    code, out, err = run_cli(capsys, "table", "mynet_here:build", "--input", "3x8x8", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["total"]["macs"] == 4 * 6 * 6 * 27


@pytest.mark.parametrize("argv, message", [
    (["table", "alexnett"], "did you mean alexnet"),
    (["table", "alexnet", "--input", "3x224"], "expects a 3-d input"),
    (["table", "alexnet", "--input", "3x8x8"], "below 1"),
    (["table", "alexnet", "--input", "3x32x32"], "features.12"),
    (["table", "alexnet", "--input", "3by224"], "malformed --input"),
    (["table", "alexnet", "--input", "3x0x224"], "zero or negative"),
    (["table", "alexnet", "--input", "1x227x227"], "expects 3 input channels, got 1"),
    (["table", "alexnet", "--batch", "0"], "--batch"),
    (["table", "alexnet", "--convention", "thop"], "--convention"),
    (["table", "alexnet", "--upto", "nothere"], "names no layer"),
    (["table", "alexnet", "--dtype", "float33"], "unknown --dtype"),
    (["table", "no.such.module:fn"], "cannot import"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, message):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors exit through our parser, also with 2
        code = exc.code
    out = capsys.readouterr()
    assert code == 2
    assert out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archstat: error:") and message in lines[0], out.err


def test_bad_input_from_a_real_process_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "archstat", "table", "alexnet", "--input", "3x32x32"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "features.12" in proc.stderr


def test_untraceable_model_exit_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "badmodel.py").write_text(
        "import torch\nclass M(torch.nn.Module):\n    def forward(self, x):\n"
        "        return x if x.sum() > 0 else -x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = run_cli(capsys, "table", "badmodel:M")
    assert code == 2 and out == "" and "cannot trace M" in err and err.count("\n") == 1 and "Traceback" not in err


def test_list(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and "alexnet" in out and "3x227x227" in out


def test_symbolic_says_it_does_not_use_the_numbers_and_refuses_reconcile(capsys):
    code, out, err = run_cli(capsys, "table", "alexnet", "--symbolic", "--batch", "4")
    assert code == 0 and "batch N" in out and "notice: --symbolic" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "table", "alexnet", "--symbolic")
    assert code == 0 and err == ""
    code, _, err = run_cli(capsys, "table", "alexnet", "--symbolic", "--input", "3x224x224")
    assert code == 0 and "spatial sizes of --input" in err and "--batch" not in err
    code, _, err = run_cli(capsys, "table", "alexnet", "--symbolic", "--input", "1x224x224")  # channels are used
    assert code == 2 and "expects 3 input channels, got 1" in err
    code, _, err = run_cli(capsys, "table", "alexnet", "--symbolic", "--reconcile")
    assert code == 2 and "drop --symbolic" in err


def test_a_huge_batch_prints_exact_integers(capsys):
    """Text totals are exact at any size (decimal division kept 28 digits: a batch of 10^26 lost the tail)."""
    batch = 10 ** 26 + 7
    code, out, _ = run_cli(capsys, "table", "alexnet", "--batch", str(batch), "--format", "json")
    assert code == 0
    macs = json.loads(out)["total"]["macs"]
    assert macs % batch == 0
    code, out, _ = run_cli(capsys, "table", "alexnet", "--batch", str(batch))
    assert f"{macs:,}" in out
