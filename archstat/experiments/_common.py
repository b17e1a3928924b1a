"""What every experiment shares: seeding, the result record, deterministic files.

Reruns on one machine must give byte-identical outputs, so:

- figures are drawn on a bare ``matplotlib.figure.Figure`` (no pyplot global state, no GUI backend)
  and saved with ``metadata={"Software": None}``, which drops the only varying PNG text chunk;
- numbers are written rounded to 6 significant digits (``%.6g``), so that the last bits of a float
  sum (which depend on thread scheduling in BLAS) do not leak into the CSV/JSON;
- every random draw comes from an explicitly seeded ``torch.Generator`` or ``numpy`` Generator.
"""
from __future__ import annotations

import json
import math
import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from archstat.files import replacing, write_text

DEFAULT_OUT = Path("reports/experiments")
FLOAT_FORMAT = "%.6g"
MAX_PRINTED_ROWS = 60


@dataclass
class ExperimentResult:
    """The numbers an experiment measured, and the files it wrote.

    ``summary`` holds the headline scalars (the claims the tests check), ``tables`` the tidy
    DataFrames behind the figures, ``files`` the paths written (empty when ``out`` was None).
    """

    name: str
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"== experiment {self.name} =="]
        lines += [f"note: {n}" for n in self.notes]
        for key, value in self.summary.items():
            lines.append(f"{key}: {_fmt(value)}")
        for key, df in self.tables.items():
            if len(df) > MAX_PRINTED_ROWS:  # curves: too long for a terminal, the CSV has them
                lines.append(f"\n-- {key}: {len(df)} rows, in {self.name}_{key}.csv --")
                continue
            lines.append(f"\n-- {key} --")
            lines.append(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        if self.files:
            lines.append("\nwrote: " + ", ".join(str(p) for p in self.files))
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch, numpy and random; return a torch Generator seeded the same way."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    return torch.Generator().manual_seed(seed)


@contextmanager
def progress_steps(name: str, total: int) -> Iterator[Callable[[str], None]]:
    """The experiment's bar on stderr: ``step(what)`` as each of ``total`` units of work starts.

    archstat.progress's bar, so it shows on a terminal and is silent with --quiet or off a terminal.
    """
    from archstat.progress import progress, stepper

    bar = progress(total=total, desc=f"experiment {name}", unit="step")
    try:
        yield stepper(bar)
        bar.update(max(0, total - bar.n))  # the last unit is done when the block ends
    finally:
        bar.close()


def new_figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] = (6.4, 4.8), **kw: Any):
    """A pyplot-free figure and its axes (squeezed as ``plt.subplots`` does)."""
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, **kw)
    return fig, axes


def save_figure(fig: Figure, out: Path | None, filename: str, result: ExperimentResult) -> None:
    """Write ``fig`` as a reproducible PNG under ``out`` (nothing when ``out`` is None)."""
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    path = out / filename
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=100, metadata={"Software": None})
    result.files.append(path)


def _round(value: Any) -> Any:
    """Floats to 6 significant digits, recursively; NaN/inf to None (JSON has neither)."""
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return None if not math.isfinite(v) else float(f"{v:.6g}")
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, dict):
        return {str(k): _round(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    return value


def save_numbers(result: ExperimentResult, out: Path | None) -> None:
    """``<name>.json`` with the summary, and one ``<name>_<table>.csv`` per table."""
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{result.name}.json"
    payload = {"experiment": result.name, "notes": result.notes, "summary": _round(result.summary)}
    write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")
    result.files.append(path)
    for key, df in result.tables.items():
        csv = out / f"{result.name}_{key}.csv"
        write_text(csv, df.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n"))
        result.files.append(csv)
