"""Every subpackage ships: a plain (non-editable) install only contains what pyproject lists."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    text = (ROOT / "pyproject.toml").read_text()  # no tomllib: it is Python 3.11+, we support 3.10
    listed = set(ast.literal_eval(re.search(r"^packages = (\[.*?\])", text, re.M | re.S).group(1)))
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "archstat").rglob("__init__.py")}
    found |= {"archstat.models." + ".".join(p.parent.relative_to(ROOT / "models").parts)
              for p in (ROOT / "models").rglob("__init__.py") if p.parent != ROOT / "models"}
    found.add("archstat.models")
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert '"archstat.models" = "models"' in text


def test_ci_runs_the_readme_test_command_and_the_extra_has_its_plugins():
    """.ci/run runs the README's quick-start test command verbatim; `-n` needs pytest-xdist in the test extra."""
    def command(text: str) -> str:
        line = next(l for l in text.splitlines() if '".[test]"' in l and "python3 -m pytest" in l)
        return line[line.index("python3 -m pytest"):].strip()

    readme, ci = command((ROOT / "README.md").read_text()), command((ROOT / ".ci" / "run").read_text())
    assert readme == ci, f"README runs {readme!r}, .ci/run runs {ci!r}"
    if " -n " in f"{readme} ":
        extra = re.search(r"^test = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.M | re.S).group(1)
        assert '"pytest-xdist' in extra, "the README's -n needs pytest-xdist in the test extra"
