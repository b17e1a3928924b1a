"""validate's per-module comparisons with the FLOP oracles (fvcore, FlopCounterMode).

Both oracles count per module, cumulatively (a module includes its submodules).  A row shows its
module's own count (``self``: the module minus its direct submodules), so a functional ``+`` in
``layer1.0`` is checked together with anything else ``layer1.0`` does itself.
"""
from __future__ import annotations

from collections import Counter

import pandas as pd
from torch import nn

from archstat.engine.conventions import fvcore_unsupported_inside
from archstat.validation.oracles import FVCORE_BOOKKEEPING, canonical_names, cumulative, self_counts


def module_checks(df: pd.DataFrame, ours_col: str, oracle_cum: dict[str, int], names: list[str],
                   checkable: dict[str, bool]) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Per row: our own count for the row's module, the oracle's, and whether they agree."""
    ours = self_counts(cumulative(list(zip(df["name"], (int(v) for v in df[ours_col]))), names), names)
    theirs = self_counts(oracle_cum, names)
    mine = df["name"].map(ours)
    other = df["name"].map(lambda n: theirs.get(n, 0))
    ok = [None if not checkable.get(n, True) else bool(a == b) for n, a, b in zip(df["name"], mine, other)]
    return mine, other, pd.Series(ok, index=df.index, dtype=object)


def oracle_skips(r: dict) -> bool:
    """Does fvcore report an op of this row as unsupported: one it skips, or one inside a row whose
    main op it counts (a conv's reflect padding)?  Rows without a formula are not ours to say."""
    return bool(r["supported"]) and (not r["oracle_supported"] or fvcore_unsupported_inside(r["kind"], r["hparams"]))


ORACLE_SKIP_COLUMNS = ("supported", "oracle_supported", "kind", "hparams")  # what oracle_skips reads


def oracle_flags(df: pd.DataFrame) -> pd.Series:
    """``oracle_skips`` of every row (the four columns it reads, not a dict of every column)."""
    rows = zip(*(df[c] for c in ORACLE_SKIP_COLUMNS))
    return pd.Series([oracle_skips(dict(zip(ORACLE_SKIP_COLUMNS, r))) for r in rows], index=df.index, dtype=bool)


def unsupported_presence(df: pd.DataFrame, fv: dict, names: list[str], modules: dict[str, nn.Module],
                          train: bool, checkable: dict[str, bool]) -> pd.Series:
    """Does each row's module have fvcore-unsupported ops exactly when archstat says so?"""
    cum = {n: fv.get(n, {}).get("unsupported", Counter()) for n in names}
    ours = df.assign(u=oracle_flags(df)).groupby("name")["u"].any().to_dict()
    for n in df.attrs.get("shape_ops", {}):  # `n_h * n_w` on sizes: aten::mul in fvcore's trace
        ours[n] = True
    own: dict[str, Counter] = {}
    for n in names:
        mine = Counter(cum[n])
        for c in names:
            if c != n and c.startswith(n + "." if n else "") and "." not in c[len(n) + 1 if n else 0:]:
                mine.subtract(cum[c])
        # BatchNorm's num_batches_tracked += 1: not a row when BN is a leaf (fx), a row when not (meta)
        if train and isinstance(modules.get(n), nn.modules.batchnorm._BatchNorm) and not ours.get(n, False):
            for op in FVCORE_BOOKKEEPING:
                mine.pop(op, None)
        own[n] = mine
    theirs = {n: any(v > 0 for v in c.values()) for n, c in own.items()}
    return pd.Series([None if not checkable.get(n, True) else bool(ours.get(n, False)) == theirs.get(n, False)
                      for n in df["name"]], index=df.index, dtype=object)


def oracle_columns(df: pd.DataFrame, work: nn.Module, fv: dict, fc: dict, train: bool) -> None:
    """Per module: MACs and both conventions' FLOPs against fvcore and FlopCounterMode."""
    canon = canonical_names(work)
    modules = {n: m for n, m in work.named_modules()}
    names = sorted(set(canon.values()) | set(df["name"]))
    checkable = (df.groupby("name")["supported"].all()).to_dict()
    # MACs against fvcore's matrix ops, over the ops fvcore handles (a conv with padding="same" runs
    # aten::_convolution_mode, which fvcore skips; FlopCounterMode still checks its MACs, times 2),
    # and in the rows its jit trace keeps (a dead branch is eliminated)
    df["fvcore_handled_macs"] = df["macs"].where(df["oracle_supported"] & df["traced"], 0)
    # a multi-head attention row: fvcore's matrix ops are the ones it prices (no SDPA, no baddbmm)
    # and an einsum's, which fvcore reads rounded off numpy's report (conventions.fvcore_einsum)
    mha = [isinstance(h, dict) and h.get("fn") in ("multi_head_attention", "einsum") for h in df["hparams"]]
    df.loc[mha, "fvcore_handled_macs"] = df.loc[mha, "flops_fvcore"].where(df.loc[mha, "traced"], 0)
    df["module_macs"], df["fvcore_macs"], df["macs_ok"] = module_checks(
        df, "fvcore_handled_macs", {n: c["macs"] for n, c in fv.items()}, names, checkable)
    df["module_fvcore"], df["fvcore_flops"], df["fvcore_ok"] = module_checks(
        df, "flops_fvcore", {n: c["flops"] for n, c in fv.items()}, names, checkable)
    df["module_flopcounter"], df["flopcounter_flops"], df["flopcounter_ok"] = module_checks(
        df, "flops_flopcounter", fc, names, checkable)
    df["unsupported_ok"] = unsupported_presence(df, fv, names, modules, train, checkable)
