"""`archstat experiment NAME`: run one of the lecture's experiments, print its numbers, write figures."""
from __future__ import annotations

import argparse

from archstat.commands._common import nonneg_int

# kept in sync with archstat.experiments.EXPERIMENTS (a test checks), without importing torch here
NAMES = ("dropout", "activations", "init", "preprocess", "augment", "degradation")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="reproduce one of the lecture's experiments (figures + numbers)")
    p.add_argument("name", choices=NAMES + ("all",), metavar="NAME",
                   help=f"one of: {', '.join(NAMES)}, or all")
    p.add_argument("--out", default="reports/experiments", metavar="DIR",
                   help="directory for the PNG figures and the JSON/CSV numbers (default reports/experiments)")
    p.add_argument("--quick", action="store_true", help="reduced sizes (seconds), as the default tests run")
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from archstat.errors import ArchstatError
    from archstat.experiments import run_experiment

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ArchstatError(f"--out {args.out!r} exists and is not a directory")
    for name in NAMES if args.name == "all" else (args.name,):
        print(run_experiment(name, out, quick=args.quick, seed=args.seed), flush=True)
    return 0
