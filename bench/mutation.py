"""Mutation testing (a bench, not CI): plant small bugs in the formulas, the conventions and some
analyses, and see whether the fast relevant tests catch each one.

A small AST mutator of our own (no extra dependency): binary operators swapped (``+``/``-``,
``*`` -> ``+``, ``//`` -> ``*``...), comparisons swapped (``<``/``<=``, ``==``/``!=``, ``in``/``not in``),
integer constants +1, booleans flipped, ``and``/``or`` swapped, ``not`` dropped.  Docstrings and
error messages (f-strings) are left alone.  Each mutant is the whole file unparsed with one
change, written into a scratch copy of ``archstat/``; a forked child (torch already imported by
the parent, so a mutant costs the tests, not the start-up) puts the copy first on ``sys.path`` and
runs the file's tests with ``pytest -x``.  Exit 0 means the mutant survived.

    nice -n 19 python bench/mutation.py --sample 60 --seed 0 --out reports/mutation
    python bench/mutation.py --list            # count the mutants per file, run nothing

Prints the date, versions and machine first; writes ``survivors.csv`` and ``summary.md``.
"""
from __future__ import annotations

import argparse
import ast
import copy
import csv
import datetime
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# file -> the fast tests that should catch a bug in it (the default profile, -x)
TESTS = {
    "archstat/formulas/": ["tests/test_formulas_table.py", "tests/test_formula_coverage.py",
                           "tests/test_lecture_oracle.py", "tests/test_formulas_views.py", "tests/test_symbolic.py",
                           "tests/test_validate_ops.py"],
    "archstat/engine/conventions.py": ["tests/test_lecture_oracle.py", "tests/test_validate_ops.py",
                                       "tests/test_formula_coverage.py"],
    "archstat/analyses/receptive_field.py": ["tests/test_receptive_field_gradient.py"],
}
DEFAULT_TARGETS = ["archstat/formulas/conv.py", "archstat/formulas/pool.py", "archstat/formulas/linear.py",
                   "archstat/formulas/elementwise.py", "archstat/formulas/norm.py", "archstat/formulas/resize.py",
                   "archstat/formulas/pad.py", "archstat/formulas/reduce.py", "archstat/engine/conventions.py",
                   "archstat/analyses/receptive_field.py:1-213"]  # the columns' formulas (not the check's walk)

BINOPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mult, ast.Div: ast.Mult,
          ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}
CMPOPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
          ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}


@dataclass
class Mutant:
    path: str
    index: int  # the index-th mutable site of the file, in ast.walk order
    line: int
    what: str
    status: str = ""
    seconds: float = 0.0


def _skipped(tree: ast.AST) -> set[int]:
    """ids of nodes inside docstrings and f-strings (messages): mutating them proves nothing."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out |= {id(n) for n in ast.walk(node)}
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body and isinstance(
                node.body[0], ast.Expr) and isinstance(getattr(node.body[0], "value", None), ast.Constant):
            out.add(id(node.body[0].value))
    return out


def _sites(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    """Mutable nodes with a description of their mutation, in a deterministic order."""
    skip, sites = _skipped(tree), []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in BINOPS:
            sites.append((node, f"{type(node.op).__name__} -> {BINOPS[type(node.op)].__name__}"))
        elif isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in CMPOPS:
                    sites.append((node, f"cmp{i}: {type(op).__name__} -> {CMPOPS[type(op)].__name__}"))
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            sites.append((node, f"{node.value} -> {node.value + 1}"))
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            sites.append((node, f"{node.value} -> {not node.value}"))
        elif isinstance(node, ast.BoolOp):
            sites.append((node, f"{type(node.op).__name__} -> {'Or' if isinstance(node.op, ast.And) else 'And'}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            sites.append((node, "not x -> x"))
    return sites


def _apply(node: ast.AST, what: str) -> ast.AST:
    """Mutate ``node`` in place (or return its replacement, for ``not x``)."""
    if isinstance(node, (ast.BinOp, ast.AugAssign)):
        node.op = BINOPS[type(node.op)]()
    elif isinstance(node, ast.Compare):
        i = int(what[3:what.index(":")])
        node.ops[i] = CMPOPS[type(node.ops[i])]()
    elif isinstance(node, ast.Constant):
        node.value = (not node.value) if type(node.value) is bool else node.value + 1
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.UnaryOp):
        return node.operand
    return node


class _Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST, new: ast.AST) -> None:
        self.target, self.new = target, new

    def generic_visit(self, node: ast.AST) -> ast.AST:
        return self.new if node is self.target else super().generic_visit(node)


def mutants(target: str) -> list[Mutant]:
    """The mutants of ``path`` or ``path:first-last`` (only the sites on those lines)."""
    path, _, lines = target.partition(":")
    first, last = (int(v) for v in lines.split("-")) if lines else (0, 10**9)
    tree = ast.parse((ROOT / path).read_text())
    return [Mutant(path, i, line, w) for i, (n, w) in enumerate(_sites(tree))
            if first <= (line := getattr(n, "lineno", 0)) <= last]


def mutated_source(m: Mutant) -> str:
    tree = ast.parse((ROOT / m.path).read_text())
    node, what = _sites(tree)[m.index]
    new = _apply(node, what)
    if new is not node:
        tree = _Replace(node, new).visit(tree)
    return ast.unparse(ast.fix_missing_locations(tree))


def tests_for(path: str) -> list[str]:
    return next(t for prefix, t in TESTS.items() if path.startswith(prefix))


def run_tests(src: Path, tests: list[str], timeout: float) -> str:
    """Fork, run pytest on ``tests`` with ``src`` first on sys.path; 'killed', 'survived' or 'timeout'."""
    pid = os.fork()
    if pid == 0:  # child
        os.chdir(ROOT)
        sys.path.insert(0, str(src))
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        import pytest
        code = pytest.main([*tests, "-x", "-q", "-p", "no:cacheprovider", "-p", "no:warnings"])
        os._exit(int(code))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "timeout"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", nargs="*", default=DEFAULT_TARGETS)
    ap.add_argument("--sample", type=int, default=60, help="mutants to run, drawn uniformly over all targets")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant (a hang counts as killed)")
    ap.add_argument("--out", default=str(ROOT / "reports" / "mutation"))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--only", nargs="*", default=[], help="run the mutants whose 'path:line what' contains one of these")
    ap.add_argument("--tests", nargs="*", default=[], help="run these tests instead of the file's fast set")
    args = ap.parse_args()
    import torch
    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M}  python {platform.python_version()}  torch {torch.__version__}"
          f"  {platform.machine()} {os.cpu_count()} cores  load {os.getloadavg()[0]:.1f}", flush=True)
    everything = [m for t in args.targets for m in mutants(t)]
    if args.list:
        for t in args.targets:
            print(t, len(mutants(t)))
        print("total", len(everything))
        return
    import hypothesis, pandas, sympy, torch.fx  # noqa: F401,E401  (shared by every forked child)
    if args.only:
        chosen = [m for m in everything if any(o in f"{m.path}:{m.line} {m.what}" for o in args.only)]
    else:
        chosen = sorted(random.Random(args.seed).sample(everything, min(args.sample, len(everything))),
                        key=lambda m: (m.path, m.index))
    if args.tests:
        TESTS.clear()
        TESTS[""] = args.tests
    scratch = Path(tempfile.mkdtemp(prefix="archstat-mut-"))
    shutil.copytree(ROOT / "archstat", scratch / "archstat")
    baseline = run_tests(scratch, sorted({t for m in chosen for t in tests_for(m.path)}), args.timeout * 3)
    assert baseline == "survived", f"the unmutated tests fail ({baseline}): fix them first"
    for n, m in enumerate(chosen, 1):
        target = scratch / m.path
        original = target.read_text()
        target.write_text(mutated_source(m))
        start = time.monotonic()
        m.status = run_tests(scratch, tests_for(m.path), args.timeout)
        m.seconds = time.monotonic() - start
        target.write_text(original)
        print(f"[{n}/{len(chosen)}] {m.status:8s} {m.path}:{m.line} {m.what} ({m.seconds:.0f} s)", flush=True)
    shutil.rmtree(scratch)
    write_report(Path(args.out), chosen, len(everything), args)


def write_report(out: Path, chosen: list[Mutant], total: int, args: argparse.Namespace) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "mutants.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "line", "mutation", "status", "seconds", "source_line"])
        for m in chosen:
            line = (ROOT / m.path).read_text().splitlines()[m.line - 1].strip() if m.line else ""
            w.writerow([m.path, m.line, m.what, m.status, f"{m.seconds:.0f}", line])
    survived = [m for m in chosen if m.status == "survived"]
    lines = [f"# Mutation testing: {len(chosen)} of {total} mutants (seed {args.seed})", "",
             f"killed {sum(m.status == 'killed' for m in chosen)}, timeout {sum(m.status == 'timeout' for m in chosen)}, "
             f"survived {len(survived)}", "", "Survivors (see mutants.csv; each is explained in SURVIVORS.md):", ""]
    lines += [f"- `{m.path}:{m.line}` {m.what}" for m in survived]
    (out / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
