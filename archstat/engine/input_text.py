"""The text form of one model input, ``[NAME=]SHAPE[:DTYPE[:HIGH]]`` (``--input``), read without torch.

The command line checks ``--input`` while it parses its arguments, before torch is imported (a usage
error costs no torch start-up); :func:`archstat.engine.inputs.parse_input` turns the result into an
:class:`~archstat.engine.inputs.InputSpec`.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

from archstat.errors import ArchstatError

FLOAT_NAMES = ("float32", "float16", "bfloat16", "float64")
# the dtypes an input may have: the floats the formulas price, integer indices and boolean masks
DTYPE_NAMES = (*FLOAT_NAMES, "int64", "int32", "int16", "int8", "uint8", "bool")
SYNTAX = "SHAPE[:DTYPE[:HIGH]] such as 3x224x224 or 77:int64:1000"


class InputText(NamedTuple):
    """One parsed ``--input``: keyword name (None: positional), shape per sample, dtype name, bound."""

    name: Optional[str]
    shape: tuple
    dtype: Optional[str]
    high: Optional[int]


def read_input(text: str) -> InputText:
    """``"77:int64:1000"`` -> ``InputText(None, (77,), "int64", 1000)``; ``"mask=16:bool"`` names a
    keyword input.  A bad shape, an unknown dtype or a bound on a float input is one ArchstatError line."""
    name, equals, body = text.rpartition("=")
    if equals and not name.isidentifier():  # "=16:bool": a keyword input without its name
        raise ArchstatError(f"malformed --input {text!r}: a keyword input is NAME=SHAPE, such as mask=16x16:bool")
    parts = body.split(":")
    if len(parts) > 3 or not parts[0]:
        raise ArchstatError(f"malformed --input {text!r}: expected {SYNTAX}")
    try:
        shape = tuple(int(p) for p in parts[0].lower().replace("×", "x").split("x"))
    except ValueError:
        raise ArchstatError(f"malformed --input {text!r}: expected CxHxW such as 3x224x224 ({SYNTAX})") from None
    if len(shape) not in (1, 2, 3):
        raise ArchstatError(f"malformed --input {text!r}: expected CxHxW (or CxL, or F), got {len(shape)} numbers")
    if any(d <= 0 for d in shape):
        raise ArchstatError(f"--input {text!r} has a zero or negative size; every size must be >= 1")
    dtype = parts[1].strip().lower().replace("torch.", "") if len(parts) > 1 else None
    if dtype is not None and dtype not in DTYPE_NAMES:
        raise ArchstatError(f"--input {text!r}: unknown dtype {parts[1]!r}; use one of {', '.join(DTYPE_NAMES)}")
    high = None
    if len(parts) > 2:
        if dtype is None or dtype in FLOAT_NAMES:
            raise ArchstatError(f"--input {text!r}: a bound (:HIGH) is for integer and bool inputs only")
        try:
            high = int(parts[2])
        except ValueError:
            raise ArchstatError(f"--input {text!r}: the bound {parts[2]!r} is not an integer") from None
        if high < 1 or (dtype == "bool" and high > 2):
            raise ArchstatError(f"--input {text!r}: the bound must be >= 1 (bool: 1 or 2), got {high}")
    return InputText(name or None, shape, dtype, high)
