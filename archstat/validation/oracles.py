"""The independent oracles archstat is checked against, each reduced to per-module counts.

* fvcore's ``FlopCountAnalysis`` (a TorchScript trace, per-aten-op handles; one flop per
  multiply-add).  ``by_module_and_operator()`` gives, for every module, the flops of the ops run
  inside its ``__call__``, descendants included; ``unsupported_ops(name)`` the ops it skipped.
* ``torch.utils.flop_counter.FlopCounterMode`` (a dispatch mode on aten ops; 2 flops per
  multiply-add, matrix products and convolutions only).  Its module names are
  ``RootType.child.grandchild``; they are mapped back to archstat's ``child.grandchild``.

Both give *cumulative* counts (a module includes its descendants).  :func:`self_counts` turns a
cumulative map into what each module does itself, which is what a row-level table can show, and
is equivalent (over the whole module tree) to comparing the cumulative numbers.
"""
from __future__ import annotations

import logging
import warnings
from collections import Counter
from typing import Any, Sequence

import pandas as pd
import torch
from torch import nn

# fvcore op names of the matrix products: their flops are the MACs.
FVCORE_MATRIX_OPS = ("conv", "linear", "addmm", "matmul", "mm", "bmm", "einsum")
# Bookkeeping that fvcore reports as unsupported but that costs no flops in any convention:
# BatchNorm's ``num_batches_tracked += 1`` in training.
FVCORE_BOOKKEEPING = {"aten::add_"}


def canonical_names(model: nn.Module) -> dict[int, str]:
    """id(module) -> its first qualified name (as fx and fvcore name shared modules)."""
    names: dict[int, str] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        names.setdefault(id(module), name)
    return names


def fvcore_counts(model: nn.Module, x: Any) -> dict[str, dict[str, Any]]:
    """fvcore on ``model(x)`` (one tensor, or a tuple of positional inputs), per module name:
    ``flops`` (fvcore total), ``macs`` (its matrix ops), ``unsupported`` (Counter)."""
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fca = FlopCountAnalysis(model, x)
        fca.unsupported_ops_warnings(False)
        fca.uncalled_modules_warnings(False)
        fca.tracer_warnings("none")
        by_op = fca.by_module_and_operator()
    out: dict[str, dict[str, Any]] = {}
    for name, ops in by_op.items():
        out[name] = {"flops": int(sum(ops.values())),
                     "macs": int(sum(v for k, v in ops.items() if k in FVCORE_MATRIX_OPS)),
                     "unsupported": Counter(fca.unsupported_ops(name))}
    return out


def flopcounter_counts(model: nn.Module, run: Any) -> tuple[dict[str, int], Any]:
    """Per module name: FlopCounterMode's flops while ``run()`` executes (forward, or forward+backward).

    Returns the counts and ``run()``'s result.  Names are archstat's (root = ``""``)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        result = run()
    known = getattr(fc.mod_tracker, "_known_modules", {})
    canon = canonical_names(model)
    rename = {}
    for module, tracked in known.items():  # the tracker's names may pick a later alias of a shared module
        if id(module) in canon:
            rename[tracked] = canon[id(module)]
    counts: dict[str, int] = {}
    for name, ops in fc.get_flop_counts().items():
        if name == "Global":
            continue
        key = rename.get(name, name.split(".", 1)[1] if "." in name else "")
        counts[key] = int(sum(ops.values()))
    counts[""] = int(fc.get_total_flops())
    # Modules that are never called (ModuleList, ModuleDict) have no entry, and neither do called
    # modules without flops: give each missing module the sum of its children, deepest first.
    for name in sorted(set(canon.values()) - {""}, key=lambda n: -n.count(".")):
        if name not in counts:
            counts[name] = sum(v for c, v in counts.items() if "." in c and c.rsplit(".", 1)[0] == name)
    return counts, result


def self_counts(cumulative: dict[str, int], names: list[str]) -> dict[str, int]:
    """Cumulative per-module counts -> per-module own counts (minus the direct children's totals).

    ``names`` lists every module name; a name absent from ``cumulative`` counts 0."""
    children: dict[str, list[str]] = {n: [] for n in names}
    for n in names:
        if n:
            parent = n.rsplit(".", 1)[0] if "." in n else ""
            while parent not in children and parent:
                parent = parent.rsplit(".", 1)[0] if "." in parent else ""
            children.setdefault(parent, []).append(n)
    return {n: cumulative.get(n, 0) - sum(cumulative.get(c, 0) for c in children.get(n, [])) for n in names}


def cumulative(per_row: list[tuple[str, int]], names: list[str]) -> dict[str, int]:
    """Rows' (owner name, value) -> per-module totals including descendants (root ``""`` = all)."""
    out = {n: 0 for n in names}
    for owner, value in per_row:
        parts = owner.split(".") if owner else []
        for k in range(len(parts) + 1):
            key = ".".join(parts[:k])
            if key in out:
                out[key] += value
    return out


def row_checks(ours: Sequence[Any], theirs: Sequence[Any], checkable: Sequence[bool], index: Any) -> pd.Series:
    """Per row: ``ours == theirs`` where the row can be checked, None where it cannot (no formula)."""
    return pd.Series([bool(a == b) if ok else None for a, b, ok in zip(ours, theirs, checkable)], index=index,
                     dtype=object)
