"""`archstat ceilings`: the cached device ceilings and time-model calibrations, and when they were measured."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ceilings", help="cached device ceilings and time-model calibrations, and when measured")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="which device (default: cuda when available, else cpu)")
    p.add_argument("--refresh", action="store_true",
                   help="measure the ceilings (fp32) and the fp32 time-model calibration again")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from archstat.profiling.calibrate import cached_entries, get_time_model
    from archstat.profiling.ceilings import cache_path, cached_ceilings, get_ceilings
    from archstat.device import resolve_device
    from archstat.reporting.ceilings_text import ceilings_text

    device = resolve_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    quiet = True if args.quiet else None
    if args.refresh:
        get_ceilings(device, ("fp32",), refresh=True, quiet=quiet)
        get_time_model(device, "fp32", False, refresh=True, quiet=quiet)
    print(ceilings_text(device, cache_path(), cached_ceilings(device), cached_entries(device)))
    return 0
