"""``archstat table MODEL --format latex``: the table as a LaTeX ``tabular`` for papers.

Numeric tables print the text table's cells (KB, thousands, millions); symbolic tables print the
named sizes of ``archstat.analyses.named_sizes`` in math mode (``\\left\\lfloor ... \\right\\rfloor``,
``H_{1}``), with the definitions listed under the table.  Needs the ``booktabs`` package.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import sympy

from archstat.analyses.named_sizes import name_sizes
from archstat.reporting.table_format import display_rows, title, totals_row
from archstat.reporting.table_symbolic import symbolic_rows

SPECIALS = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "<": r"\textless{}", ">": r"\textgreater{}",
            "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}"}


def escape(text: str) -> str:
    """Plain text -> LaTeX text (``features.0`` stays, ``<root>`` and ``_`` are escaped)."""
    return "".join(SPECIALS.get(ch, ch) for ch in text)


def math(value: Any) -> str:
    """A cell of the symbolic table in math mode: ``$23{,}232 N H_{1} W_{1}$``; lists as ``H_1 x W_1``."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        parts = [math(v).strip("$") for v in value]
        return "$" + (parts[0] if len(set(parts)) == 1 and parts[0].isdigit() else r" \times ".join(parts)) + "$"
    if isinstance(value, str):
        return escape(value)
    expr = sympy.sympify(value)
    if expr.is_Integer:
        return f"${int(expr):,}$".replace(",", "{,}")
    return f"${sympy.latex(expr)}$"


def tabular(columns: list[str], rows: list[dict[str, str]], caption: str) -> list[str]:
    """A booktabs tabular (first two columns left, the rest right) inside a table float."""
    spec = "ll" + "r" * (len(columns) - 2)
    lines = [r"\begin{table}[ht]", r"\centering\small", rf"\caption{{{escape(caption)}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(escape(c) for c in columns) + r" \\", r"\midrule"]
    lines += [" & ".join(r.get(c, "") for c in columns) + r" \\" for r in rows]
    return lines + [r"\bottomrule", r"\end{tabular}", r"\end{table}"]


def to_latex(df: pd.DataFrame, folded: bool = True) -> str:
    """The numeric or symbolic table as LaTeX (symbolic: the named sizes follow in an itemize)."""
    a = df.attrs
    if not a.get("symbolic"):
        rows = [{k: escape(v) for k, v in r.items()} for r in display_rows(df, folded) + [totals_row(df)]]
        cols = list(rows[0].keys())
        caption = f"{title(a)}, input {'x'.join(map(str, a['input']))}, batch {a['batch']}, {a['dtype']}"
        return "\n".join(tabular(cols, rows, caption))
    ns = name_sizes(df)
    rows = symbolic_rows(df, ns, folded, size_text=math)
    for r in rows:
        r.update({c: escape(r[c]) for c in ("layer", "lecture", "op") if c in r})
    dims = {2: "L", 3: "HxW", 4: "DxHxW"}.get(len(a["input"]), "")
    caption = f"{title(a)}, closed forms for input {a['input'][0]}x{dims}, batch N"
    defs = [rf"\item ${sympy.latex(d.name)} = {window_latex(d) if d.window else sympy.latex(d.expr)}$"
            for d in ns.definitions]
    total = {k: sympy.latex(ns.rename(sympy.sympify(a["total"][k]))) for k in ("act_bytes", "flops")}
    defs += [rf"\item memory (B) $= {total['act_bytes']}$", rf"\item flop $= {total['flops']}$"]
    return "\n".join(tabular(list(rows[0]), rows, caption) + [r"\begin{itemize}", *defs, r"\end{itemize}"])


def window_latex(d: Any) -> str:
    """Adaptive pooling's window as the maximum over its ``o`` bins."""
    x, o = d.window
    x = sympy.latex(x)
    return (rf"\max_{{0 \le i < {o}}} \left(\left\lceil \frac{{(i+1) {x}}}{{{o}}} \right\rceil"
            rf" - \left\lfloor \frac{{i {x}}}{{{o}}} \right\rfloor\right)")
