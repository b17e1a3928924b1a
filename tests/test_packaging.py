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
