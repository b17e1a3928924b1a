"""`archstat list`: the zoo's models with their default input."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="zoo models with their default input")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from archstat.models import list_models, model_info

    rows = [model_info(n) for n in list_models()]
    width = max(len(r.name) for r in rows)
    for r in rows:
        shape = "x".join(map(str, r.default_input))
        print(f"{r.name:<{width}}  {shape:<11}  {r.year}  {r.paper}")
    return 0
