"""Published vs computed: the framework shared by the lecture, paper and torchvision checks.

A check is a ``Row``: the published number as printed, archstat's value under the same
convention, a verdict and, where they differ, an explanation built from computed numbers.  Rows
come in ``Section``s, one per published table.  ``Analyses`` caches ``analyze`` results so that
every section can ask for any zoo model without re-tracing it.

Verdicts: ``match`` (equal as the source rounds), ``match (weights only)`` (the source omits
biases), ``typo in source`` (its own arithmetic disagrees), ``different model`` (the number
belongs to another network than the one named; the one it belongs to is computed), ``differs``
(explained), ``approx`` (a figure reading, within its error), ``quoted`` (nothing to compute).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import pandas as pd
from torch import nn

from archstat.engine.analyze import analyze, analyze_rows, cut_rows
from archstat.engine.rows import Rows
from archstat.errors import ArchstatError

MATCH, WEIGHTS_ONLY, TYPO, OTHER_MODEL, DIFFERS, APPROX, QUOTED = (
    "match", "match (weights only)", "typo in source", "different model", "differs", "approx", "quoted")


@dataclass
class Row:
    item: str
    published: str
    archstat: str
    convention: str
    verdict: str
    explanation: str = ""


@dataclass
class Section:
    key: str
    title: str
    source: str
    status: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args, **kwargs) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row

    def to_dict(self) -> dict:
        return asdict(self)


class Analyses:
    """Zoo models and their ``analyze`` tables, built once (meta device, nothing allocated)."""

    def __init__(self) -> None:
        self._models: dict[str, nn.Module] = {}
        self._tables: dict[tuple, pd.DataFrame] = {}
        self._rows: dict[tuple, Rows] = {}

    def available(self, name: str) -> bool:
        from archstat.models import list_models

        return name in list_models()

    def model(self, name: str, **kwargs) -> nn.Module:
        from archstat.models import get_model

        key = name + repr(sorted(kwargs.items()))
        if key not in self._models:
            self._models[key] = get_model(name, device="meta", **kwargs)
        return self._models[key]

    def table(self, name: str, input_shape: Optional[Sequence[int]] = None, upto: Optional[str] = None,
              **kwargs) -> pd.DataFrame:
        from archstat.models import model_info

        shape = tuple(input_shape or model_info(name).default_input)
        key = (name, shape, upto, repr(sorted(kwargs.items())))
        if key not in self._tables:
            rows = self.rows(name, shape, **kwargs)
            self._tables[key] = rows.df if upto is None else cut_rows(rows, upto).df
        return self._tables[key]

    def rows(self, name: str, input_shape: Optional[Sequence[int]] = None, **kwargs) -> Rows:
        """The eval-mode product of ``name`` (its table, nodes, modules), traced once and kept."""
        from archstat.models import model_info

        shape = tuple(input_shape or model_info(name).default_input)
        key = (name, shape, repr(sorted(kwargs.items())))
        if key not in self._rows:
            self._rows[key] = analyze_rows(self.model(name, **kwargs), shape)
        return self._rows[key]

    def of(self, module: nn.Module, input_shape: Sequence[int], symbolic: bool = False) -> pd.DataFrame:
        return analyze(module, tuple(input_shape), symbolic=symbolic)


def weights_only(df: pd.DataFrame) -> int:
    """Parameters without biases (the slides' FC rows and GoogLeNet Table 1 count these)."""
    total = 0
    for kind, params, hp in zip(df["kind"], df["params"], df["hparams"]):
        bias = hp.get("c_out", hp.get("out_features", 0)) if hp.get("bias") and kind in ("conv", "conv_transpose", "linear") else 0
        total += int(params) - int(bias)
    return total


def rounded(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def check_rounding(value: float, printed: float, digits: int = 0, *, truncate_ok: bool = False) -> bool:
    """``printed`` equals ``value`` rounded to ``digits`` (half up), or truncated if allowed."""
    scale = 10 ** digits
    half_up = int(value * scale + 0.5 + 1e-9) / scale
    if abs(half_up - printed) < 1e-9:
        return True
    return truncate_ok and abs(int(value * scale + 1e-9) / scale - printed) < 1e-9


def first_row_at(df: pd.DataFrame, side: int, kinds: Sequence[str] = ("pool",)) -> str:
    """Name of the first row of ``kinds`` whose output is side x side (where a '224 -> 28' cut ends)."""
    for name, kind, out in zip(df["name"], df["kind"], df["out_shape"]):
        if kind in kinds and len(out) == 3 and out[1] == side and out[2] == side:
            return name
    raise ArchstatError(f"no {'/'.join(kinds)} layer outputs {side}x{side}")


def kind_sum(df: pd.DataFrame, column: str, kinds: Sequence[str]) -> int:
    return int(df.loc[df["kind"].isin(list(kinds)), column].sum())
