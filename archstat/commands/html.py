"""`archstat html MODEL [MODEL ...] --out FILE.html`: one self-contained page per call (graph, table, totals)."""
from __future__ import annotations

import argparse

from archstat.commands._common import add_convention_arg, add_model_args, model_inputs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("html", help="one self-contained HTML page: the graph, the per-layer table, totals, "
                                    "and a side-by-side comparison for several models")
    add_model_args(p, many=True)
    p.add_argument("--out", required=True, metavar="FILE.html", help="the page to write (its folder must exist)")
    p.add_argument("--mode", choices=("eval", "train"), default="eval",
                   help="draw the eval or the training graph (train: auxiliary heads, dropout masks)")
    add_convention_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from archstat.models import resolve_model
    from archstat.reporting.html_data import model_page
    from archstat.reporting.html_page import render, write_page

    pages = []
    for spec in args.models:
        model, default_input = resolve_model(spec)
        pages.append(model_page(spec, model, batch=args.batch, mode=args.mode, convention=args.convention,
                                **model_inputs(args, default_input)))
    path = write_page(Path(args.out), render(pages))
    print(f"wrote {path} ({path.stat().st_size / 1024:,.0f} KB, {len(pages)} model{'s' if len(pages) > 1 else ''})")
    return 0
