"""`archstat report [--out reports/]`: regenerate the reports (Markdown, CSV, JSON, PNG) for the zoo."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="regenerate reports/: zoo comparison, one page per model, figures, "
                                      "published vs computed")
    p.add_argument("--out", default="reports", metavar="DIR", help="output folder (default reports/)")
    p.add_argument("--models", nargs="+", metavar="MODEL", help="only these models' pages (the index covers the zoo)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNGs (CSV, JSON and Markdown only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from archstat.errors import ArchstatError
    from archstat.models import list_models
    from archstat.reporting.report import generate

    unknown = sorted(set(args.models or ()) - set(list_models()))
    if unknown:
        raise ArchstatError(f"unknown model(s) {', '.join(unknown)}; see `archstat list`")
    start, started_at = time.perf_counter(), time.time() - 1  # a file system's time stamps may be coarse
    from archstat.progress import progress, set_quiet, stepper

    set_quiet(args.quiet)
    with progress(total=len(args.models or list_models()), desc="report", unit="model") as bar:
        written = generate(Path(args.out), args.models, figures=not args.no_figures, progress=stepper(bar))
    # the figures are drawn by the plotting helpers, not listed by generate(): counted by their time stamps
    figures = [p for p in Path(args.out, "figures").glob("*.png") if p.stat().st_mtime >= started_at]
    size = sum(p.stat().st_size for p in [*written, *figures])
    print(f"wrote {len(written) + len(figures)} files ({size / 1024:,.0f} KB) under {args.out}/ in "
          f"{time.perf_counter() - start:.1f} s")
    return 0
