"""`archstat html` without a browser: layout, determinism, escaping, size, and every bad input as exit 2."""
import re
import sys

import pytest
from torch import nn

import archstat
from archstat.cli import main
from archstat.models import resolve_model
from archstat.reporting.html_data import model_page
from archstat.reporting.html_layout import group_runs, layout
from archstat.reporting.html_page import MARKER, json_for_script, render, write_page

XSS = "<img src=x onerror=alert(1)>"


def xss_model() -> nn.Module:
    m = nn.Sequential()
    m.add_module(XSS, nn.Conv2d(3, 8, 3))
    m.add_module("</script><script>alert(2)</script>", nn.ReLU())
    return m


def test_googlenet_layout_has_nine_modules_and_two_aux_heads_on_the_side():
    model, shape = resolve_model("googlenet")
    df = archstat.analyze(model, shape, mode="train")
    lay = layout(list(df["sources"]), df.attrs["outputs"][0])
    labels, members, _ = group_runs(list(df["name"]), list(df["sources"]), 1)
    assert sum(lab.startswith("inception") for lab in labels) == 9
    assert {"aux1", "aux2"} <= set(labels)
    main_lanes = {lay.lane[i] for i in range(len(df)) if not df["name"][i].startswith("aux")}
    for i in range(len(df)):
        if df["name"][i].startswith("aux"):  # side outputs sit right of every main lane
            assert lay.lane[i] > max(main_lanes)
    cats = [i for i in range(len(df)) if df["op"][i] == "cat"]
    for c in cats:  # a concatenation sits below all four branches
        assert all(lay.layer[c] > lay.layer[s] for s in df["sources"][c])


def test_resnet_layout_keeps_the_main_path_in_lane_0():
    model, shape = resolve_model("resnet50")
    df = archstat.analyze(model, shape)
    lay = layout(list(df["sources"]))
    downsample = [i for i, n in enumerate(df["name"]) if "downsample" in n]
    assert {lay.lane[i] for i in downsample} == {1}
    assert all(lay.lane[i] == 0 for i in range(len(df)) if i not in downsample)
    assert all(lay.layer[t] > lay.layer[s] for s, t in lay.edges if s >= 0)


def test_same_model_same_bytes():
    model, shape = resolve_model("alexnet")
    one = render([model_page("alexnet", model, shape)])
    two = render([model_page("alexnet", model, shape)])
    assert one == two and one.startswith("<!DOCTYPE html>\n" + MARKER)
    assert not re.search(r"(src|href)=\"?(https?:)?//", one), "the page must not reference the network"


def test_names_from_user_code_are_escaped_everywhere():
    page = render([model_page("<b>mine</b>", xss_model(), (3, 16, 16))])
    assert XSS not in page and "<b>mine</b>" not in page
    assert page.count("<script") == 2 and page.count("</script>") == 2  # ours: the data and the page script
    assert "&lt;img src=x onerror=" in page  # the SVG labels (clipped), as text
    assert json_for_script({"x": "</script>&<!--"}) == '{"x":"\\u003c/script\\u003e\\u0026\\u003c!--"}'


def test_resnet152_page_is_under_2_mb():
    model, shape = resolve_model("resnet152")
    page = render([model_page("resnet152", model, shape)])
    assert len(page.encode()) < 2 * 1024 ** 2
    assert page.count('class="n" data-i=') == len(archstat.analyze(model, shape))


def test_write_page_is_atomic_and_overwrites_only_our_pages(tmp_path):
    path = tmp_path / "p.html"
    write_page(path, MARKER + "\nfirst")
    write_page(path, MARKER + "\nsecond")
    assert path.read_text().endswith("second") and [p.name for p in tmp_path.iterdir()] == ["p.html"]


def _cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def test_cli_writes_a_comparison_of_two_models(tmp_path, capsys):
    out = tmp_path / "two.html"
    code, _ = _cli(capsys, "html", "alexnet", "vgg11", "--out", str(out))
    text = out.read_text()
    assert code == 0 and 'id="compare"' in text and text.count('<section class="model"') == 2
    assert "Multiply-accumulates per forward pass" in text and "MACs (G)" in text


def test_cli_missing_folder_exit_2(tmp_path, capsys):
    code, err = _cli(capsys, "html", "alexnet", "--out", str(tmp_path / "nope" / "a.html"))
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err


def test_cli_refuses_to_overwrite_a_foreign_file(tmp_path, capsys):
    foreign = tmp_path / "notes.html"
    foreign.write_text("<html>my notes</html>")
    code, err = _cli(capsys, "html", "alexnet", "--out", str(foreign))
    assert code == 2 and err.count("\n") == 1 and "not an archstat page" in err
    assert foreign.read_text() == "<html>my notes</html>"


def test_cli_untraceable_model_exit_2(tmp_path, capsys, monkeypatch):
    (tmp_path / "badhtmlmodel.py").write_text(
        "import torch\nclass M(torch.nn.Module):\n    def forward(self, x):\n"
        "        return x if x.sum() > 0 else -x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, err = _cli(capsys, "html", "badhtmlmodel:M", "--input", "3x8x8", "--out", str(tmp_path / "b.html"))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "b.html").exists()
    sys.modules.pop("badhtmlmodel", None)
