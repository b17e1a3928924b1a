"""The lecture's experiments, one module each (``archstat experiment NAME``).

Every module exposes ``run(out=None, *, quick=False, seed=0) -> ExperimentResult``: it measures,
returns the numbers (``summary`` scalars and ``tables`` DataFrames, which the tests check), and, when
``out`` is a directory, writes its figures (PNG) and numbers (JSON + CSV) there.  ``quick`` shrinks
the sizes for the default test run; the committed ``reports/experiments/`` come from full runs.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from archstat.experiments._common import DEFAULT_OUT, ExperimentResult

# CLI name -> module, in the lecture's order of topics
EXPERIMENTS: dict[str, str] = {
    "dropout": "dropout",
    "activations": "activations",
    "init": "init",
    "preprocess": "preprocess",
    "augment": "augment_gallery",
    "degradation": "degradation",
}


def get_experiment(name: str) -> Callable[..., ExperimentResult]:
    """The ``run`` function of experiment ``name``."""
    return importlib.import_module(f"archstat.experiments.{EXPERIMENTS[name]}").run


def run_experiment(name: str, out: str | Path | None = DEFAULT_OUT, *, quick: bool = False,
                   seed: int = 0) -> ExperimentResult:
    """Run one experiment by its CLI name, on one CPU thread.

    One thread makes the numbers independent of the machine's core count (float reductions
    are ordered differently with more threads), and the experiments' small ops gain little
    from more.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return get_experiment(name)(None if out is None else Path(out), quick=quick, seed=seed)
    finally:
        torch.set_num_threads(threads)


__all__ = ["EXPERIMENTS", "ExperimentResult", "get_experiment", "run_experiment", "DEFAULT_OUT"]
