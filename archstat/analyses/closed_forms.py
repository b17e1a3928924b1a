"""Closed forms in H and W from ``analyze(symbolic=True)``, made readable and evaluable.

The exact forms carry PyTorch's rounding (``floor((H - 11 + 4)/4) + 1`` ...).  ``smooth`` drops the
floors: when H and W are multiples of the network's total stride (32 for VGG), the smooth form is
exact, e.g. VGG-16 MACs = 305,856 HW + 123,633,664 (15,470,264,320 at 224).  Otherwise it is the
leading behaviour, off by boundary terms.  Everything is per image (N = 1).
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable, Sequence

import pandas as pd
import sympy
from sympy.printing.pycode import PythonCodePrinter

from archstat.engine.analyze import SYMBOLS
from archstat.engine.rows import Rows

H, W, N = SYMBOLS["H"], SYMBOLS["W"], SYMBOLS["N"]


def symbolic_table(rows: Rows) -> tuple[dict[str, list], dict]:
    """Symbolic ``rows`` (``analyze_rows(symbolic=True)``, or ``reinterpret(rows, symbolic=True)`` of
    numeric ones: same graph) per image (N = 1): (column -> list of expressions, totals).

    Plain lists, not the DataFrame: pandas deep-copies ``attrs`` on every column access, and
    deep-copying sympy expressions re-evaluates them (seconds per model); so the attrs are set
    aside while the columns are read, then put back.
    """
    df = rows.df
    if not df.attrs.get("symbolic"):
        raise ValueError("closed forms need symbolic rows: analyze_rows(..., symbolic=True)")
    attrs, df.attrs = df.attrs, {}
    try:
        totals = {k: sympy.sympify(v).subs(N, 1) for k, v in attrs["total"].items()}
        columns = {col: [sympy.sympify(v).subs(N, 1) for v in df[col]] for col in ("macs", "flops", "act_bytes")}
        columns["params"] = list(df["params"])
    finally:
        df.attrs = attrs
    return columns, totals


def smooth(expr) -> sympy.Expr:
    """Drop floor/ceiling (exact when H, W are multiples of the total stride); expand."""
    e = sympy.sympify(expr)
    e = e.replace(sympy.floor, lambda a: a).replace(sympy.ceiling, lambda a: a)
    return sympy.expand(e)


def pretty(expr) -> str:
    """``305856*H*W + 123633664`` -> ``305,856 HW + 123,633,664`` (rationals kept exact)."""
    e = sympy.expand(sympy.sympify(expr))
    if not e.free_symbols:
        return _number(e)
    poly = sympy.Poly(e, H, W)
    terms = []
    for (ph, pw), coeff in sorted(poly.terms(), key=lambda t: (-(t[0][0] + t[0][1]), -t[0][0])):
        mono = ("H" if ph == 1 else f"H^{ph}" if ph else "") + ("W" if pw == 1 else f"W^{pw}" if pw else "")
        text = _number(abs(coeff))
        if mono:
            text = mono if text == "1" else f"{text} {mono}"
        terms.append(("- " if coeff < 0 else "+ ") + text)
    out = " ".join(terms)
    return out[2:] if out.startswith("+ ") else "-" + out[1:]


def _number(value) -> str:
    """Integers with thousands separators; fractions with a finite decimal as that decimal."""
    value = sympy.Rational(value)
    p, q = int(value.p), int(value.q)
    if q == 1:
        return f"{p:,}"
    rest = q
    for f in (2, 5):
        while rest % f == 0:
            rest //= f
    if rest == 1:  # q = 2^a 5^b: the decimal is finite and exact
        from decimal import Decimal

        whole, _, frac = format(Decimal(p) / Decimal(q), "f").partition(".")
        return f"{int(whole):,}.{frac}" if whole not in ("-0",) else f"-0.{frac}"
    return f"{p:,}/{q:,}"


class _ExactPrinter(PythonCodePrinter):
    """Prints rationals as ``Fraction(p, q)``: ``5/2`` would be a float, and ``floor`` of a float
    sum near an integer can land one below (ZFNet's ceil-mode pools were off by 55,296 FLOPs)."""

    def _print_Rational(self, expr: sympy.Rational) -> str:
        return f"Fraction({expr.p}, {expr.q})"

    def _print_floor(self, expr: sympy.Expr) -> str:
        return f"floor({self._print(expr.args[0])})"

    def _print_ceiling(self, expr: sympy.Expr) -> str:
        return f"ceiling({self._print(expr.args[0])})"


def evaluator(expr) -> Callable[[int, int], int]:
    """A fast, exact function (H, W) -> value of the closed form (rational arithmetic throughout)."""
    e = sympy.sympify(expr)
    fn = sympy.lambdify((H, W), e, modules=[{"Fraction": Fraction, "floor": math.floor, "ceiling": math.ceil,
                                            "Max": max, "Min": min}, "math"], printer=_ExactPrinter)
    return lambda h, w: int(fn(Fraction(h), Fraction(w)))


def sweep(exprs: dict[str, object], sides: Sequence[int]) -> pd.DataFrame:
    """Evaluate closed forms at square inputs H = W = side: one row per side."""
    fns = {k: evaluator(v) for k, v in exprs.items()}
    return pd.DataFrame([{"side": s, **{k: f(s, s) for k, f in fns.items()}} for s in sides])
