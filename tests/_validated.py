"""The check the formula tests share: ``validate()`` agrees with the real run and both FLOP oracles,
and every row is costed (no op left without a formula)."""
from __future__ import annotations

from typing import Any

import pandas as pd
from torch import nn

from archstat.validation.validate import validate


def validated(model: nn.Module, shape: Any, mode: str, batch: int = 2) -> pd.DataFrame:
    """``validate(model, shape, batch=batch, mode=mode)``, asserted to agree and to be fully costed."""
    df = validate(model, shape, batch=batch, mode=mode)
    assert df.attrs["agree"], df.attrs["mismatches"]
    assert not df.attrs["partial"] and df["supported"].all()
    return df
