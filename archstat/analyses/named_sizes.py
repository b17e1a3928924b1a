"""Named spatial sizes: the symbolic table rewritten as a person writes it.

``analyze(symbolic=True)`` nests PyTorch's rounding: AlexNet's conv3 input is
``floor(floor(H/4 - 7/4)/2)``.  A person names each new spatial size once and writes every row in
terms of the names::

    H1 = floor((H - 7)/4) + 1      conv1: floor((H - K + 2P)/S) + 1 with K = 11, S = 4, P = 2
    H2 = floor((H1 - 3)/2) + 1     pool1
    ...

This is common-subexpression naming.  Walking the rows in order, every spatial size (dims 1.. of a
shape with >= 2 dims) that is neither an integer nor a bare input symbol gets the next name
``Hk`` (and its mirror ``Wk``: the same form with H and W swapped), defined in terms of the
earlier names.  A size ``c + a*f(...)`` with ``f`` a floor / ceiling / Max / Piecewise registers the
rule ``f(...) -> (Hk - c)/a``, so any cell that contains ``f(...)`` (a FLOP count, a sum of sizes)
is rewritten in ``Hk`` too.  Adaptive pooling's window (the largest of ``o`` bins of a size ``x``,
``max_i ceil((i+1) x/o) - floor(i x/o)``) gets its own name ``KHk`` / ``KWk``.

Everything is exact: evaluating the definitions in order at integers H, W, N and then a renamed
cell gives the integer the numeric table prints (``evaluate``; tests/test_named_sizes.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd
import sympy

from archstat.engine.analyze import SYMBOLS
from archstat.formulas.pool import adaptive_window

ROUNDING = (sympy.floor, sympy.ceiling, sympy.Max, sympy.Min, sympy.Piecewise)
MIRROR = {"H": "W", "W": "H"}
CELL_COLUMNS = ("kernel", "stride", "padding", "macs", "flops", "act_bytes")


@dataclass(frozen=True)
class Definition:
    """``name = expr``, expr in the input symbols and earlier names.

    ``mirror`` is the H-side name when this is the W-side twin (the same form in W); ``window`` is
    ``(x, o)`` when the name is adaptive pooling's window over size ``x`` cut into ``o`` bins.
    """

    name: sympy.Symbol
    expr: sympy.Expr
    mirror: sympy.Symbol | None = None
    window: tuple[sympy.Symbol, int] | None = None


@dataclass
class NamedSizes:
    """Names for a symbolic table's sizes, and the rules that rewrite any cell in terms of them."""

    definitions: list[Definition] = field(default_factory=list)
    rules: dict[sympy.Expr, sympy.Expr] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    # rename's answers under the current rules; emptied whenever a rule is added (_register).  A
    # table repeats its sizes row after row, and xreplace rebuilds every Max it passes through
    # (sympy re-simplifies its arguments each time), so most of renaming is recomputation.
    renamed: dict[sympy.Basic, Any] = field(default_factory=dict, repr=False, compare=False)

    def rename(self, value: Any) -> Any:
        """``value`` (an expression, int or list of them) rewritten in the names."""
        if isinstance(value, (list, tuple)):
            return [self.rename(v) for v in value]
        if not isinstance(value, sympy.Basic) or value.is_Integer:
            return value
        if value not in self.renamed:
            self.renamed[value] = self._rewrite(value)
        return self.renamed[value]

    def _rewrite(self, value: sympy.Basic) -> sympy.Basic:
        for _ in range(4):  # named atoms (windows) are keyed on the already renamed form
            new = value.xreplace(self.rules)
            if new == value:
                break
            value = new
        return value

    def _new_name(self, prefix: str) -> int:
        self.counts[prefix] = self.counts.get(prefix, 0) + 1
        return self.counts[prefix]

    def _register(self, original: sympy.Expr, named: sympy.Expr, name: sympy.Symbol) -> None:
        """Rules for ``original`` (the H form) and ``named`` (its form in earlier names) -> ``name``."""
        self.renamed.clear()  # a new rule may rewrite what was renamed before it
        for form in {original, named}:
            self.rules[form] = name
            const, rest = form.as_coeff_Add()
            coef, atom = rest.as_coeff_Mul()
            if atom is not form and isinstance(atom, ROUNDING) and coef != 0:
                self.rules[atom] = (name - const) / coef

    def add_size(self, size: Any) -> None:
        """Name a spatial size unless it is an integer, an input symbol, or named already."""
        if not isinstance(size, sympy.Basic) or size.is_Integer or size.is_Symbol:
            return
        named = self.rename(size)
        if named.is_Symbol:
            return  # named already
        bases = {s.name[0] for s in size.free_symbols} - {"N"}
        if len(bases) != 1:
            return
        self._define(bases.pop(), "", size, named)

    def add_windows(self, value: Any) -> None:
        """Name the Max(...) atoms left in a renamed cell (adaptive pooling's window)."""
        named = self.rename(value)
        if not isinstance(named, sympy.Basic):
            return
        for atom in sorted(named.atoms(sympy.Max), key=sympy.default_sort_key):
            bases = {s.name.lstrip("K")[0] for s in atom.free_symbols} - {"N"}
            if len(bases) == 1 and self.rename(atom) == atom:
                self._define(bases.pop(), "K", atom, atom)

    def _define(self, base: str, kind: str, original: sympy.Expr, named: sympy.Expr) -> None:
        k = self._new_name(kind + base)
        pairs = [(base, original, named, None)]
        if base in MIRROR:
            other = MIRROR[base]
            swap = swap_names(original.free_symbols | named.free_symbols)
            pairs.append((other, original.xreplace(swap), named.xreplace(swap), sympy.Symbol(f"{kind}{base}{k}")))
            self.counts[kind + other] = max(self.counts.get(kind + other, 0), k)
        for side, orig, expr, mirror in pairs:
            name = sympy.Symbol(f"{kind}{side}{k}", positive=True, integer=True)
            if mirror is not None:
                mirror = sympy.Symbol(mirror.name, positive=True, integer=True)
            self.definitions.append(Definition(name, expr, mirror, adaptive_form(expr) if kind else None))
            self._register(orig, expr, name)


def swap_names(symbols: Iterable[sympy.Symbol]) -> dict[sympy.Symbol, sympy.Symbol]:
    """H <-> W, Hk <-> Wk, KHk <-> KWk for the given symbols (N and others stay)."""
    swap = {}
    for s in symbols:
        kind = "K" if s.name.startswith("K") else ""
        rest = s.name[len(kind):]
        if rest[:1] in MIRROR:
            swap[s] = sympy.Symbol(kind + MIRROR[rest[0]] + rest[1:], positive=True, integer=True)
    return swap


def adaptive_form(expr: sympy.Expr) -> tuple[sympy.Symbol, int] | None:
    """``(x, o)`` when ``expr`` is ``adaptive_window(x, o)``: the window of o bins over size x."""
    if not isinstance(expr, sympy.Max) or len(expr.free_symbols) != 1:
        return None
    (x,) = expr.free_symbols
    o = len(expr.args)
    return (x, o) if adaptive_window(x, o) == expr else None


def spatial_sizes(shapes: Iterable[Any]) -> Iterable[Any]:
    """Dims 1.. of every shape with at least two dims (C x H x W -> H, W)."""
    for shape in shapes:
        if isinstance(shape, (list, tuple)) and len(shape) >= 2:
            yield from shape[1:]


def plain_records(df: pd.DataFrame, columns: list[str] | None = None) -> list[dict]:
    """``df.to_dict("records")`` without copying ``attrs``: pandas deep-copies them on every access,
    and deep-copying a symbolic total re-evaluates its Max(...) terms (seconds per model)."""
    attrs, df.attrs = df.attrs, {}
    try:
        return (df if columns is None else df[columns]).to_dict("records")
    finally:
        df.attrs = attrs


def name_sizes(df: pd.DataFrame) -> NamedSizes:
    """Names for every spatial size and adaptive window of a symbolic ``analyze`` table, in row order."""
    ns = NamedSizes()
    records = plain_records(df, ["in_shapes", "out_shape", *CELL_COLUMNS])
    for r in records:
        for size in spatial_sizes([*r["in_shapes"], r["out_shape"]]):
            ns.add_size(size)
    for r in records:
        for col in CELL_COLUMNS:
            for v in (r[col] if isinstance(r[col], (list, tuple)) else [r[col]]):
                ns.add_windows(v)
    return ns


def environment(ns: NamedSizes, h: int, w: int, n: int = 1) -> dict[sympy.Symbol, sympy.Integer]:
    """Integer values of the inputs and of every name, the definitions evaluated in order."""
    env = {SYMBOLS["H"]: sympy.Integer(h), SYMBOLS["W"]: sympy.Integer(w), SYMBOLS["N"]: sympy.Integer(n)}
    for d in ns.definitions:
        env[d.name] = sympy.Integer(d.expr.xreplace(env))
    return env


def evaluate(value: Any, env: dict[sympy.Symbol, sympy.Integer]) -> Any:
    """A renamed cell (or list of them) at the sizes of ``env``: plain ints."""
    if isinstance(value, (list, tuple)):
        return [evaluate(v, env) for v in value]
    if isinstance(value, sympy.Basic):
        return int(value.xreplace(env))
    return value
