"""Arguments shared by every subcommand (one flag, one meaning).  Models resolve in ``archstat.models``."""
from __future__ import annotations

import argparse
import math
from typing import Callable

from archstat.engine.convention_names import CONVENTIONS, DEFAULT_CONVENTION
from archstat.errors import ArchstatError


def parse_input(text: str) -> tuple[int, ...]:
    """``"3x227x227"`` -> ``(3, 227, 227)``: one float input's shape per sample (``train --input``)."""
    from archstat.engine.input_text import read_input

    read = read_input(text)
    if read.dtype is not None or read.name is not None:
        raise ArchstatError(f"--input {text!r}: this command takes one float input (CxHxW), no dtype or name")
    return read.shape


def input_arg(text: str) -> str:
    """argparse type for the analysis commands' repeatable ``--input [NAME=]SHAPE[:DTYPE[:HIGH]]``:
    checked without torch (a malformed one is a usage error: one line, exit 2), kept as text."""
    from archstat.engine.input_text import read_input

    try:
        read_input(text)
    except ArchstatError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def model_inputs(args: argparse.Namespace, default_input) -> dict:
    """``{"inputs": [...], "kwargs": {...}}`` for analyze/validate/profile from the ``--input`` flags,
    in order (positional ones in forward's order, ``NAME=...`` by name), or the model's default input."""
    from archstat.engine.input_text import read_input
    from archstat.engine.inputs import parse_input as parse_spec

    if not args.input:
        return {"inputs": [default_input], "kwargs": {}}
    given = [(read_input(t).name, t.rpartition("=")[2]) for t in args.input]
    named = {n: parse_spec(t) for n, t in given if n is not None}
    if len(named) != sum(1 for n, _ in given if n is not None):
        raise ArchstatError("--input: a keyword input is given twice")
    return {"inputs": [parse_spec(t) for n, t in given if n is None], "kwargs": named}


def int_at_least(lo: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``lo``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)  # --batch, --repeat, --epochs ...
nonneg_int = int_at_least(0)  # --warmup, --top, --workers ...


def float_in(lo: float, hi: float, *, hi_open: bool = False) -> Callable[[str], float]:
    """argparse type: a finite number in ``[lo, hi]`` (``[lo, hi)`` with ``hi_open``), e.g. a probability."""
    shown = f">= {lo:g}" if hi == math.inf else f"in [{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {shown}, got {text!r}") from None
        if not math.isfinite(value) or not (lo <= value < hi if hi_open else lo <= value <= hi):  # nan, inf too
            raise argparse.ArgumentTypeError(f"must be a finite number {shown}, got {text}")
        return value

    return parse


def add_model_args(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    """MODEL (zoo name or package.module:callable), --input, --batch."""
    if many:
        parser.add_argument("models", nargs="+", metavar="MODEL", help="zoo names or package.module:callable")
    else:
        parser.add_argument("model", metavar="MODEL", help="zoo name (see `archstat list`) or package.module:callable")
    parser.add_argument("--input", type=input_arg, action="append", default=None, metavar="SHAPE[:DTYPE[:HIGH]]",
                        help="input shape per sample, CxHxW (default: the model's default input); repeat it for a "
                             "model with several inputs, in forward's order, each with its own dtype "
                             "(--input 3x224x224 --input 77:int64:1000: integers drawn below 1000, zeros without a "
                             "bound); NAME=SHAPE gives a keyword input")
    parser.add_argument("--batch", type=positive_int, default=1, metavar="N", help="batch size (default 1)")


def add_convention_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--convention", choices=CONVENTIONS, default=DEFAULT_CONVENTION,
                        help="how FLOPs are counted (default: lecture = MACs + pooling windows)")
