"""The symbolic table as a person writes it: named sizes listed once, every row in terms of them.

``archstat table MODEL --symbolic`` (text, Markdown, LaTeX).  The names come from
``archstat.analyses.named_sizes``; this module only prints them.  A size is printed in the
lecture's form ``floor((H1 - K + 2P)/S) + 1``: sympy keeps ``floor(H1/2 - 1/2)``, which equals
``floor((H1 - 3)/2) + 1`` because ``floor(y) + c = floor(y - (1 - c)) + 1`` for an integer c.
Counts are raw (bytes, params, flop): a per-million scale would turn 23232 into 363/15625.
"""
from __future__ import annotations

import textwrap
from typing import Any, Callable

import pandas as pd
import sympy
from sympy.printing.str import StrPrinter

from archstat.analyses.named_sizes import NamedSizes, name_sizes, plain_records
from archstat.engine.inputs import several_text
from archstat.engine.conventions import DESCRIPTIONS
from archstat.engine.analyze import grouped_unsupported
from archstat.reporting.table_format import ROOT_NOTE, fold, title

WIDTH = 160  # no line of the text table is wider (tests/test_named_sizes.py)
COLUMNS = ["layer", "op", "C_in", "H/W in", "filters", "kernel", "stride", "pad", "C_out", "H/W out",
           "memory (B)", "params", "flop"]


class SizePrinter(StrPrinter):
    """sympy's str with explicit parentheses in floor/ceiling, the ``+ 1`` form, N first in products
    and thousands separators in integers of five digits or more."""

    def _print_Integer(self, expr: sympy.Integer) -> str:
        return f"{int(expr):,}" if abs(int(expr)) >= 10_000 else str(int(expr))

    def rounded(self, fn: str, arg: sympy.Expr, shift: int = 0) -> str:
        num, den = sympy.fraction(sympy.together(arg))
        num = sympy.expand(num - shift * den)
        inner = self._print(num)
        return f"{fn}({inner})" if den == 1 else f"{fn}(({inner})/{self._print(den)})"

    def _print_floor(self, expr: sympy.Expr) -> str:
        return self.rounded("floor", expr.args[0])

    def _print_ceiling(self, expr: sympy.Expr) -> str:
        return self.rounded("ceiling", expr.args[0])

    def _print_Add(self, expr: sympy.Add, order: str | None = None) -> str:
        const, rest = expr.as_coeff_Add()
        if const.is_Integer and isinstance(rest, (sympy.floor, sympy.ceiling)) and const != 1:
            # floor(y) + c = floor(y - (1 - c)) + 1: the lecture's form
            return f"{self.rounded(type(rest).__name__, rest.args[0], 1 - int(const))} + 1"
        return super()._print_Add(expr, order)

    def _print_Mul(self, expr: sympy.Mul) -> str:
        coeff, factors = expr.as_coeff_mul()
        if not factors or coeff.is_Rational is False:
            return super()._print_Mul(expr)
        key = lambda f: (0 if f == sympy.Symbol("N", positive=True, integer=True) else 1, sympy.default_sort_key(f))
        parts = [self.parenthesize(f, 50) if f.is_Add else self._print(f) for f in sorted(factors, key=key)]
        num, den = sympy.fraction(sympy.Rational(coeff))
        sign = "-" if num < 0 else ""
        head = [] if abs(num) == 1 else [self._print(sympy.Integer(abs(num)))]
        text = sign + "*".join(head + parts)
        return text if den == 1 else f"{text}/{self._print(den)}"


def definition_text(expr: sympy.Expr) -> str:
    """A named size's form; a bare ``floor(y)`` also in the ``+ 1`` form (``floor((H1 - 3)/2) + 1``)."""
    if isinstance(expr, (sympy.floor, sympy.ceiling)):
        return f"{SizePrinter().rounded(type(expr).__name__, expr.args[0], 1)} + 1"
    return size_text(expr)


def size_text(value) -> str:
    """One cell: an int, a sympy expression or a list of them (``H1xW1``)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        texts = [size_text(v) for v in value]
        return texts[0] if len(set(texts)) == 1 and len(texts) > 1 and not any(
            c.isalpha() for c in texts[0]) else "x".join(texts)
    if isinstance(value, str):
        return value
    return SizePrinter().doprint(sympy.sympify(value))


def window_text(d) -> str:
    """Adaptive pooling's window, written as the maximum over its bins."""
    x, o = d.window
    return (f"max over i = 0..{o - 1} of ceiling((i + 1)*{x}/{o}) - floor(i*{x}/{o})"
            f"   (adaptive pool: the largest of {o} bins)")


def definition_lines(ns: NamedSizes) -> list[str]:
    """``H1 = floor((H - 7)/4) + 1`` ..., each size once (the W twin of an H form is not repeated)."""
    lines = [f"{d.name} = {window_text(d) if d.window else definition_text(d.expr)}"
             for d in ns.definitions if d.mirror is None]
    twins = [str(d.name) for d in ns.definitions if d.mirror is not None]
    if twins:
        lines.append(f"{', '.join(twins[:3])}{', ...' if len(twins) > 3 else ''}: the same forms with H and W "
                     f"swapped")
    return lines


def symbolic_rows(df: pd.DataFrame, ns: NamedSizes, folded: bool = True,
                  size_text: Callable[[Any], str] = size_text) -> list[dict[str, str]]:
    """Display rows of a symbolic table, every cell in the names (printed by ``size_text``)."""
    records = fold(pd.DataFrame(plain_records(df))) if folded else plain_records(df)
    out = []
    for r in records:
        ins = ns.rename(r["in_shapes"][0]) if r["in_shapes"] else []
        outs = ns.rename(r["out_shape"])
        out.append({
            "layer": r["name"] or "<root>", **({"lecture": r["lecture"]} if "lecture" in r else {}),
            "op": r["op"] + ("" if r["supported"] else " (unsupported)"),
            "C_in": size_text(ins[0]) if ins else "", "H/W in": size_text(ins[1:]) if len(ins) > 1 else "",
            "filters": str(r["hparams"].get("c_out", r["hparams"].get("out_features", ""))),
            "kernel": size_text(ns.rename(r["kernel"])), "stride": size_text(ns.rename(r["stride"])),
            "pad": size_text(r["padding"]), "C_out": size_text(outs[0]) if outs else "",
            "H/W out": size_text(outs[1:]) if len(outs) > 1 else "",
            "memory (B)": size_text(ns.rename(r["act_bytes"])) if r["supported"] else "?",
            "params": size_text(r["params"]), "flop": size_text(ns.rename(r["flops"])) if r["supported"] else "?",
        })
    return out


def wrapped(label: str, text: str, width: int = WIDTH) -> list[str]:
    """``label = a + b + ...`` broken before a `` + `` so that no line passes ``width``."""
    terms = text.replace(" - ", " + -").split(" + ")
    lines, line = [], f"{label} = {terms[0]}"
    for t in terms[1:]:
        piece = f" - {t[1:]}" if t.startswith("-") else f" + {t}"
        if len(line) + len(piece) > width:
            lines.append(line)
            line = " " * (len(label) + 1) + piece
        else:
            line += piece
    return lines + [line]


def header(df: pd.DataFrame) -> list[str]:
    a = df.attrs
    dims = {1: [], 2: ["L"], 3: ["H", "W"], 4: ["D", "H", "W"]}[len(a["input"])]
    shape = "x".join([str(a["input"][0]), *dims])
    several = several_text(a.get("inputs"))
    if several:  # the first input is in N, H, W; the others keep their sizes
        shape = "s " + ", ".join([shape, *several.split(", ")[1:]])
    else:
        shape = " " + shape
    return [f"{title(a)}  input{shape}  batch N  {a['dtype']}  {a['mode']} mode  closed forms (sizes named below)",
            f"convention: {DESCRIPTIONS[a['convention']]}"]


def footer(df: pd.DataFrame, ns: NamedSizes) -> list[str]:
    a, t = df.attrs, df.attrs["total"]
    lines = ["sizes (PyTorch's rounding, each in terms of the ones before it):",
             *textwrap.indent("\n".join(definition_lines(ns)), "  ").splitlines()]
    for key, label in (("act_bytes", "total memory (B)"), ("flops", "total flop"), ("macs", "total MACs")):
        lines += wrapped(label, size_text(ns.rename(sympy.sympify(t[key]))))
    lines.append(f"total params {t['params']:,}")
    if a.get("unsupported"):
        lines.append("UNSUPPORTED ops (no formula; totals are partial): " + grouped_unsupported(a["unsupported"]))
    if any(not r for r in df["name"].tolist()):
        lines.append(ROOT_NOTE)
    return lines


def to_symbolic_text(df: pd.DataFrame, folded: bool = True, ns: NamedSizes | None = None) -> str:
    """The named-size table as text: header, rows, the sizes and the totals.

    ``ns``: the names already given to ``df`` by :func:`name_sizes` (naming VGG's sizes and adaptive
    windows takes a quarter of a second; a caller that holds them need not name them again).
    """
    ns = name_sizes(df) if ns is None else ns
    rows = symbolic_rows(df, ns, folded)
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    left = ("layer", "lecture", "op")

    def line(r: dict) -> str:
        return "  ".join(r[c].ljust(widths[c]) if c in left else r[c].rjust(widths[c]) for c in cols).rstrip()

    rule = "  ".join("-" * widths[c] for c in cols)
    return "\n".join([*header(df), line({c: c for c in cols}), rule, *map(line, rows), rule, *footer(df, ns)])


def to_symbolic_markdown(df: pd.DataFrame, folded: bool = True) -> str:
    """The same as a Markdown table, sizes and totals as a list."""
    ns = name_sizes(df)
    rows = symbolic_rows(df, ns, folded)
    cols = list(rows[0])
    cell = lambda s: f"`{s}`" if s and any(ch.isalpha() for ch in s) and s not in ("?",) else s
    body = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    body += ["| " + " | ".join(r[c] if c in ("layer", "lecture", "op") else cell(r[c]) for c in cols) + " |"
             for r in rows]
    head = header(df)
    return "\n".join([f"_{head[0]}; {head[1]}_", "", *body, "", *(f"- `{x.strip()}`" if "=" in x else f"- {x}"
                                                                   for x in footer(df, ns))])
