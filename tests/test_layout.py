"""The layout is a contract (DESIGN.md, README "Layout"): each folder is one floor and imports only the
floors below it, the analysis core never imports the zoo, and no module imports another module's
private name.  Read from the source with ``ast``, so that a wrong-way import fails here, not in review.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# floor of each top-level part of the package; a module may import its own folder and lower floors
FLOORS = {
    "spec": 0, "errors": 0, "files": 0, "device": 0, "progress": 0, "data": 0,  # the ground
    "formulas": 1, "models": 1,
    "engine": 2,
    "analyses": 3,
    "validation": 4,
    "profiling": 5,
    "reporting": 6, "train": 6,
    "experiments": 7,
    "commands": 8,
    "cli": 9, "__init__": 9, "__main__": 10,
}
GROUND = {p for p, f in FLOORS.items() if f == 0}
# the analysis core takes any nn.Module: it never reaches for the zoo
NO_ZOO = {"formulas", "engine", "analyses", "validation", "profiling"}


def _modules() -> list[tuple[str, Path]]:
    """(dotted module name, path) of every module of the installed package, models/ included."""
    found = []
    for folder, prefix in ((ROOT / "archstat", "archstat"), (ROOT / "models", "archstat.models")):
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":  # a package's own module is named by the package
                parts = parts[:-1]
            found.append((".".join([prefix, *parts]) if parts or prefix != "archstat" else "archstat.__init__", path))
    return found


def _imports(module: str, path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) of every ``from ... import`` and ``import`` in the file,
    function-level (lazy) imports included."""
    package = _package(module, path)
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            out.append((base, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return [(m, names) for m, names in out if m == "archstat" or m.startswith("archstat.")]


def _package(module: str, path: Path) -> str:
    """The package a module lives in (a package's ``__init__`` lives in the package itself)."""
    if path.name == "__init__.py":
        return "archstat" if module == "archstat.__init__" else module
    return module.rsplit(".", 1)[0]


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


MODULES = _modules()


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_imports_go_down_the_floors(module: str, path: Path) -> None:
    mine = _part(module)
    assert mine in FLOORS, f"{module}: new top-level part {mine!r}; give it a floor in this test and in the README"
    for target, _ in _imports(module, path):
        theirs = _part(target)
        if target == "archstat" or theirs == mine:
            continue
        assert theirs in FLOORS, f"{module} imports unknown part {target}"
        same_ground = mine in GROUND and theirs in GROUND
        assert FLOORS[theirs] < FLOORS[mine] or same_ground, (
            f"{module} (floor {FLOORS[mine]}, {mine}/) imports {target} (floor {FLOORS[theirs]}, {theirs}/)")
        assert not (mine in NO_ZOO and theirs == "models"), f"{module} imports the zoo ({target})"


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_no_private_name_crosses_a_package(module: str, path: Path) -> None:
    package = _package(module, path)
    for target, names in _imports(module, path):
        parts = target.split(".")
        for i, p in enumerate(parts):  # a private module is its package's own business
            if _private(p):
                assert package == ".".join(parts[:i]), f"{module} imports the private module {target}"
        for name in names:
            if _private(name):  # a private name may only come from a private module of one's own package
                assert target == package, f"{module} imports the private name {target}.{name}"


def test_the_floor_check_can_fail(tmp_path: Path) -> None:
    """A wrong-way import and a private name planted in a copy are both seen."""
    bad = tmp_path / "bad.py"
    bad.write_text("from archstat.reporting.table_format import to_text\nfrom archstat.engine.meta_run import _x\n")
    found = _imports("archstat.engine.bad", bad)
    assert ("archstat.reporting.table_format", ["to_text"]) in found
    assert FLOORS[_part(found[0][0])] > FLOORS["engine"]
    assert any(_private(n) for _, names in found for n in names)
