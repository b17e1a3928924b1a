"""The HTML pages in a real browser (headless Chromium over the DevTools protocol): every row and node
rendered, sorting, the node-row link, collapsing, no network, no console errors, no script injection,
and the ResNet-152 page's render time.  Skips with the reason where chromium is absent."""
import pytest

import archstat
from archstat.models import resolve_model
from archstat.reporting.html_data import model_page
from archstat.reporting.html_page import render, write_page

from _chromium import SKIP, Browser
from test_html_page import XSS, xss_model

pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("html")
    out, rows = {}, {}
    for key, name, mode in (("googlenet", "googlenet", "train"), ("resnet152", "resnet152", "eval")):
        model, shape = resolve_model(name)
        page = model_page(name, model, shape, mode=mode)
        rows[key] = page.df
        out[key] = write_page(folder / f"{key}.html", render([page]))
    xss = model_page(XSS, xss_model(), (3, 16, 16))
    out["xss"] = write_page(folder / "xss.html", render([xss, model_page("alexnet", *resolve_model("alexnet"))]))
    return out, rows


def test_googlenet_rows_nodes_modules_and_aux_heads(browser, pages):
    paths, rows = pages
    browser.open(paths["googlenet"])
    df = rows["googlenet"]
    assert browser.eval("document.querySelectorAll('table.t tbody tr').length") == len(df)
    assert browser.eval("document.querySelectorAll('.view[data-v=ops] g.n[data-i]').length") == len(df)
    names = browser.eval("[...document.querySelectorAll('table.t tbody tr td:nth-child(2)')].map(t => t.textContent)")
    assert names == [n or "(model)" for n in df["name"]]
    frames = browser.eval("[...document.querySelectorAll('.view[data-v=ops] g.f text')].map(t => t.textContent)")
    assert sum("inception" in f for f in frames) == 9 and any("aux1" in f for f in frames) \
        and any("aux2" in f for f in frames)
    module_nodes = browser.eval("[...document.querySelectorAll('.view[data-v=m1] g.n text')].map(t => t.textContent)")
    assert sum(t.startswith("inception") for t in module_nodes) == 9
    assert sum(t.startswith("aux") for t in module_nodes) == 2
    assert browser.errors() == []


def test_sorting_and_filtering(browser, pages):
    paths, rows = pages
    browser.open(paths["googlenet"])
    df = rows["googlenet"]
    first = "document.querySelector('table.t tbody tr').dataset.i"
    browser.eval("[...document.querySelectorAll('table.t th')].find(t => t.textContent === 'MACs').click()")
    assert int(browser.eval(first)) == int(df["macs"].astype(int).idxmin())
    browser.eval("[...document.querySelectorAll('table.t th')].find(t => t.textContent.startsWith('MACs')).click()")
    assert int(browser.eval(first)) == int(df["macs"].astype(int).idxmax())
    browser.eval("const f = document.querySelector('input.filter'); f.value = 'aux1';"
                 "f.dispatchEvent(new Event('input'))")
    shown = browser.eval("[...document.querySelectorAll('table.t tbody tr')].filter(t => !t.hidden).length")
    assert shown == sum("aux1" in n for n in df["name"])


def test_node_row_link_and_collapse(browser, pages):
    paths, _ = pages
    browser.open(paths["googlenet"])
    browser.eval("document.querySelector('.view[data-v=ops] g.n[data-i=\"23\"]')"
                 ".dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))")
    assert browser.eval("document.querySelector('tbody tr[data-i=\"23\"]').classList.contains('hl')")
    browser.eval("document.querySelector('tbody tr[data-i=\"40\"] td').click()")
    assert browser.eval("document.querySelector('.view[data-v=ops] g.n[data-i=\"40\"]').classList.contains('hl')")
    assert not browser.eval("document.querySelector('tbody tr[data-i=\"23\"]').classList.contains('hl')")
    # collapse inception3a (its frame's label), then expand it again (click its module node)
    browser.eval("[...document.querySelectorAll('.view[data-v=ops] g.f')].find(f => f.textContent.includes("
                 "'inception3a')).querySelector('text').dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    assert browser.eval("document.querySelector('.view[data-v=ops]').hidden")
    assert browser.eval("!document.querySelector('.view[data-v=m1]').hidden")
    browser.eval("[...document.querySelectorAll('.view[data-v=m1] g.n')].find(g => g.textContent.startsWith("
                 "'inception3a')).dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    assert browser.eval("document.querySelector('.view[data-v=m1]').hidden")
    browser.eval("document.querySelector('button[data-q=params]').click()")
    assert browser.eval("document.querySelector('.legend').textContent.includes('params')")
    assert browser.errors() == []


def test_no_network_and_no_script_injection(browser, pages):
    paths, _ = pages
    browser.open(paths["xss"])
    url = paths["xss"].resolve().as_uri()
    assert [u for u in browser.requests() if u != url] == []
    assert browser.errors() == []  # an alert() would be a dialog here
    assert browser.eval("document.querySelectorAll('img, iframe, object, embed').length") == 0
    assert browser.eval(f"document.querySelector('table.t tbody tr td:nth-child(2)').textContent === {XSS!r}")
    assert browser.eval(f"document.querySelector('section.model h2').textContent === {XSS!r}")
    assert browser.eval("document.querySelectorAll('#compare tbody tr').length") == 2


def test_resnet152_renders_in_under_2_s(browser, pages):
    paths, rows = pages
    seconds = min(browser.open(paths["resnet152"]) for _ in range(2))
    assert browser.eval("document.querySelectorAll('table.t tbody tr').length") == len(rows["resnet152"])
    assert seconds < 2.0, f"ResNet-152 page took {seconds:.2f} s"
    assert browser.errors() == []
