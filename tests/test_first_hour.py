"""A new user's first hour: names in the title, lecture row names, ResNet v1 from the zoo, LaTeX, one-line errors."""
import pytest

import archstat
from archstat.cli import main
from archstat.errors import ArchstatError
from archstat.models import get_model, list_models, model_info

SLIDE_ORDER = ["conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5", "flatten", "fc6", "fc7", "fc8"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_lecture_names_in_the_slides_order(capsys):
    code, out, _ = run_cli(capsys, "table", "alexnet", "--names", "lecture")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("alexnet (AlexNet)  input 3x227x227")
    rows = lines[3:lines.index(lines[2], 3)]  # between the two rules
    names = [r.split()[1] for r in rows if not r.startswith("avgpool")]
    assert names == SLIDE_ORDER


@pytest.mark.parametrize("argv", [("table", "resnet50", "--names", "lecture"),
                                  ("table", "alexnet", "--reconcile", "--format", "latex")])
def test_bad_input_is_one_line_exit_2(capsys, argv):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1


def test_latex_table(capsys):
    code, out, _ = run_cli(capsys, "table", "alexnet", "--format", "latex", "--symbolic")
    assert code == 0 and r"\begin{tabular}" in out and r"\left\lfloor" in out and "H_{1}" in out
    code, out, _ = run_cli(capsys, "table", "vgg16", "--format", "latex", "--names", "lecture")
    assert code == 0 and "conv5\\_3" in out and out.count(r"\\") == 25  # header + 23 rows (avgpool too) + total


# He et al. 2016, Table 1 (multiply-adds at 224x224), and what v1 computes
PAPER_V1 = {"resnet50_v1": (3.8, 3_857_973_248), "resnet101_v1": (7.6, 7_570_194_432),
            "resnet152_v1": (11.3, 11_282_415_616)}


@pytest.mark.parametrize("name", sorted(PAPER_V1))
def test_resnet_v1_is_a_zoo_model(name):
    printed, exact = PAPER_V1[name]
    assert name in list_models()
    df = archstat.analyze(get_model(name, device="meta"), (3, 224, 224))
    assert df.attrs["total"]["macs"] == exact
    assert model_info(name).published["macs"].value == printed * 1e9
    assert round(exact / 1e9, 3) == {"resnet50_v1": 3.858, "resnet101_v1": 7.570, "resnet152_v1": 11.282}[name]
    default = archstat.analyze(get_model(name.removesuffix("_v1"), device="meta"), (3, 224, 224))
    assert default.attrs["total"]["params"] == df.attrs["total"]["params"]  # same weights, moved strides


def test_torchinfo_shape_gets_a_batch_hint():
    with pytest.raises(ArchstatError, match=r"pass batch=1 and the per-sample shape \(3, 224, 224\)"):
        archstat.analyze(get_model("alexnet", device="meta"), (1, 3, 224, 224))


def test_googlenet_stem_names_its_lrn_layers(capsys):
    code, out, _ = run_cli(capsys, "table", "googlenet", "--upto", "maxpool2")
    assert code == 0 and "LocalResponseNorm outputs: 3,136 KB" in out and "without it: 7,644 KB" in out


def test_data_naming_a_file_says_it_is_a_file(tmp_path):
    from archstat.train.folder import folder_splits

    f = tmp_path / "images.zip"
    f.write_bytes(b"")
    with pytest.raises(ArchstatError, match="is a file"):
        folder_splits(f, (3, 32, 32))


def test_progress_is_quiet_off_a_terminal_and_with_quiet(monkeypatch):
    from archstat import progress as P

    monkeypatch.setattr(P.sys.stderr, "isatty", lambda: True, raising=False)
    P.set_quiet(False)
    assert P.enabled() and not P.enabled(disable=True)
    P.set_quiet(True)
    assert not P.enabled()
    P.set_quiet(False)
    monkeypatch.setattr(P.sys.stderr, "isatty", lambda: False, raising=False)
    assert not P.enabled() and P.progress(range(3)).disable
