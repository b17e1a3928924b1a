"""The committed reports/ are fresh: regenerating the CPU-side files (CSV, JSON, Markdown) gives the
same bytes.  A subset of the per-model pages keeps the test fast (`archstat report` does them all);
the index, the zoo table and published.md are always regenerated whole.  If this fails after a
change to the zoo or the calculator, run `archstat report` and commit reports/."""
import shutil
from pathlib import Path

import pytest

from archstat.models import list_models
from archstat.reporting import report_published
from archstat.reporting.report import Writer, generate

REPORTS = Path(__file__).resolve().parents[1] / "reports"
# one per family of layouts: sequential, grouped + LRN, short VGG, branching, residual
SUBSET = ["alexnet", "alexnet_2012", "vgg16_lecture", "googlenet", "resnet50"]
HINT = "reports/ is stale: run `archstat report` and commit reports/"


@pytest.fixture(scope="module")
def sections(published_sections):
    return published_sections  # the session's one run of the checks (conftest.py)


def _same(fresh: Path, committed: Path) -> None:
    assert committed.is_file(), f"{committed} missing; {HINT}"
    assert fresh.read_bytes() == committed.read_bytes(), f"{committed.relative_to(REPORTS)} differs; {HINT}"


def test_index_zoo_and_pages_are_fresh(tmp_path):
    """The subset regenerated over a copy of the committed pages (the index links only to pages it finds)."""
    models = [m for m in SUBSET if m in list_models()]
    for folder in ("models", "html", "figures"):
        shutil.copytree(REPORTS / folder, tmp_path / folder)
    shutil.copy(REPORTS / "published.md", tmp_path / "published.md")
    written = generate(tmp_path, models, figures=False, published=False, gpu_dir=REPORTS / "gpu")
    rels = {p.relative_to(tmp_path).as_posix() for p in written}
    assert {"README.md", "data/zoo.csv", "data/zoo.json", "data/bubble.csv", "data/ilsvrc.json"} <= rels
    assert {f"models/{m}.md" for m in models} <= rels
    assert {f"html/{m}.html" for m in models} <= rels  # the interactive pages, byte for byte too
    for path in written:
        _same(path, REPORTS / path.relative_to(tmp_path))


def test_every_model_has_a_page():
    for name in list_models():
        assert (REPORTS / "models" / f"{name}.md").is_file(), f"no page for {name}; {HINT}"
        assert (REPORTS / "figures" / f"{name}_layers.png").is_file(), f"no figure for {name}; {HINT}"
        assert (REPORTS / "html" / f"{name}.html").is_file(), f"no HTML page for {name}; {HINT}"
    index = (REPORTS / "html" / "index.html").read_text(encoding="utf-8")
    assert all(f'href="{name}.html"' in index for name in list_models()), f"html/index.html is stale; {HINT}"


def test_published_is_fresh(sections, tmp_path):
    for rel, text in (("published.md", report_published.to_markdown(sections)),
                      ("data/published.csv", report_published.to_csv(sections)),
                      ("data/published.json", report_published.to_json(sections))):
        _same(Writer(tmp_path).text(rel, text), REPORTS / rel)


def test_the_index_of_a_new_folder_links_only_to_the_pages_in_it(tmp_path):
    """``archstat report --models alexnet --out NEW``: the index lists the whole zoo but links only to
    alexnet's page, and has no sections for an HTML index or a published.md it did not write."""
    generate(tmp_path, ["alexnet"], figures=False, published=False, gpu_dir=REPORTS / "gpu")
    index = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "[alexnet](models/alexnet.md)" in index and "models/vgg16.md" not in index and "| vgg16 |" in index
    assert "html/index.html" not in index and "published.md" not in index and "figures/" not in index
