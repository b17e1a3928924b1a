"""The mutants of a source file, for ``bench/mutation.py``: a small AST mutator of our own.

Binary operators swapped (``+``/``-``, ``*`` -> ``+``, ``//`` -> ``*``...), comparisons swapped
(``<``/``<=``, ``==``/``!=``, ``in``/``not in``), integer constants +1, booleans flipped, ``and``/``or``
swapped, ``not`` dropped.  Docstrings and error messages (f-strings) are left alone.  A mutant is
the whole file unparsed with one change; ``index`` is its site's position in ``ast.walk`` order, so
the same file always gives the same mutants.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

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
    end: int = 0  # last line of the mutated node (a call or a literal may span lines)
    status: str = ""  # killed, survived, timeout, or uncovered (no test executes the node)
    seconds: float = 0.0
    tests: int = 0  # how many tests were selected for it
    runner: str = ""  # warm (the code swapped in a forked warm process) or fresh (a scratch copy, imported anew)


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


def sites(tree: ast.AST) -> list[tuple[ast.AST, str]]:
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
    return [Mutant(path, i, line, w, getattr(n, "end_lineno", line) or line) for i, (n, w) in enumerate(sites(tree))
            if first <= (line := getattr(n, "lineno", 0)) <= last]


def mutated_tree(m: Mutant) -> ast.Module:
    """The AST of ``m.path`` with ``m``'s one change; the other nodes keep their line and column numbers."""
    tree = ast.parse((ROOT / m.path).read_text())
    node, what = sites(tree)[m.index]
    new = _apply(node, what)
    if new is not node:
        tree = _Replace(node, new).visit(tree)
    return ast.fix_missing_locations(tree)


def mutated_source(m: Mutant) -> str:
    """The source of ``m.path`` with ``m``'s one change."""
    return ast.unparse(mutated_tree(m))
