"""archstat compare: depth on the longest path, published errors, sorting, formats, CLI errors."""
import json

import pandas as pd
import pytest

from archstat.cli import main
from archstat.analyses.depth import depth_per_row, weight_depth
from archstat.errors import ArchstatError
from archstat.reporting import published
from archstat.reporting.compare import compare
from archstat.reporting.compare_format import to_csv, to_json, to_text


@pytest.fixture(scope="module")
def table():
    return compare(["alexnet", "vgg16", "googlenet", "resnet50"])


def test_depth_is_the_lectures_layer_count(table):
    depth = dict(zip(table["model"], table["depth"]))
    assert depth == {"alexnet": 8, "vgg16": 16, "googlenet": 22, "resnet50": 50}
    layers = dict(zip(table["model"], table["weight_layers"]))
    assert layers["googlenet"] > 22 and layers["vgg16"] == 16  # branches add layers, not depth
    assert layers["resnet50"] == 54  # 53 convs (4 projection shortcuts) + fc


def test_depth_takes_the_longest_branch():
    # conv -> (conv -> conv | conv) -> cat -> linear: the longest path has 4 weight layers
    df = pd.DataFrame({"kind": ["conv", "conv", "conv", "conv", "concat", "linear"],
                       "params": [1, 1, 1, 1, 0, 1], "sources": [[-1], [0], [1], [0], [2, 3], [4]]})
    assert depth_per_row(df) == [1, 2, 3, 2, 3, 4]
    assert weight_depth(df) == 4


def test_row_numbers_and_published_errors(table):
    vgg = table.set_index("model").loc["vgg16"]
    assert (vgg["params"], vgg["macs"]) == (138_357_544, 15_470_264_320)
    assert vgg["top5_err"] == published.old_docs_errors()["VGG-16"][1]
    assert "torchvision docs" in vgg["top5_err_source"]
    assert "not yet available" in vgg["notes"] or vgg["train_bytes_1"] is not None


def test_sort_and_formats(table):
    sorted_ = compare(["vgg16", "alexnet", "resnet50"], sort="macs", descending=True)
    assert list(sorted_["model"]) == ["vgg16", "resnet50", "alexnet"]
    text = to_text(table)
    assert "22" in text and "[1]" in text and "depth" in text
    rows = json.loads(to_json(table))["models"]
    assert rows[0]["model"] == "alexnet" and isinstance(rows[0]["params"], int)
    assert to_csv(table).splitlines()[0].startswith("model,input,params,macs")
    with pytest.raises(ArchstatError, match="cannot sort"):
        compare(["alexnet"], sort="nope")


def test_cli(tmp_path, capsys):
    png = tmp_path / "cmp.png"
    assert main(["compare", "alexnet", "vgg16_lecture", "--format", "markdown", "--plot", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "| alexnet |" in capsys.readouterr().out
    assert main(["compare", "alexnet", "--plot", "x.jpg"]) == 2
    assert main(["compare", "no_such_model"]) == 2
    # a folder that does not exist is refused, not created; so is a --gpu-results folder that is not there
    assert main(["compare", "alexnet", "--plot", str(tmp_path / "no" / "cmp.png")]) == 2
    assert not (tmp_path / "no").exists()
    assert main(["compare", "alexnet", "--gpu-results", str(tmp_path / "nothere")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "--gpu-results" in err
