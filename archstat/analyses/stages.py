"""Roll-ups of the per-op table: stages (by resolution) and bar units (by module), as groupbys.

A **stage** is a maximal run of rows working at one spatial resolution, as the lecture groups VGG
("conv1 ... conv5" = 224, 112, 56, 28, 14): a row belongs to the resolution of its output, except
a pooling row, which closes the stage of its input (VGG's stage = its convs + the pool after them).
Rows without a spatial output (flatten, fc) form the ``head``.

A **bar unit** is what one bar of the lecture's per-layer figure shows: single layers for short
networks (AlexNet's conv1, pool1, ..., fc8, named as the lecture names them), whole blocks
(``inception3a``, ``layer1.0``) for deep ones: a child of a top-level ``nn.Sequential``, else the
top-level module.
"""
from __future__ import annotations

import pandas as pd
from torch import nn

from archstat.analyses.depth import is_weight_layer

POOL_KINDS = ("pool", "adaptive_pool")
COST_COLUMNS = ["params", "macs", "flops", "act_bytes"]


def _spatial(shape: list) -> tuple:
    return tuple(shape[1:]) if shape and len(shape) >= 3 else ()


def stage_labels(df: pd.DataFrame) -> list[str]:
    """One label per row: ``"56x56"`` or ``"head"``.

    The stage is the smallest resolution reached so far (a pooling row counts at its input), so
    the parallel branches of a reduction block (one strided, one not) fall into one stage and the
    stages are monotone, as in the lecture's VGG bars.
    """
    labels: list[str] = []
    smallest: tuple = ()
    for kind, ins, out in zip(df["kind"], df["in_shapes"], df["out_shape"]):
        res = _spatial(ins[0]) if kind in POOL_KINDS and ins else _spatial(out)
        if res and (not smallest or _area(res) < _area(smallest)):
            smallest = res
        labels.append("x".join(map(str, smallest)) if res and smallest else "head")
    return labels


def _area(res: tuple) -> int:
    area = 1
    for s in res:
        area *= int(s)
    return area


def _span(names: list[str]) -> str:
    tops = list(dict.fromkeys(n.split(".")[0] if n else "(functional)" for n in names))
    return tops[0] if len(tops) == 1 else f"{tops[0]} .. {tops[-1]}"


def _group(df: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    work = df.assign(_label=labels, _run=(pd.Series(labels) != pd.Series(labels).shift()).cumsum().values)
    out = []
    for _, g in work.groupby("_run", sort=True):
        last = g.iloc[-1]
        out.append({
            "label": g["_label"].iloc[0], "modules": _span(list(g["name"])),
            "weight_layers": int(sum(is_weight_layer(k, p) for k, p in zip(g["kind"], g["params"]))),
            "output": "x".join(map(str, last["out_shape"])), "rows": len(g),
            **{c: g[c].sum() for c in COST_COLUMNS},
        })
    return pd.DataFrame(out)


def stages(df: pd.DataFrame) -> pd.DataFrame:
    """Per-stage roll-up: ``label, modules, weight_layers, output, rows, params, macs, flops, act_bytes``."""
    return _group(df, stage_labels(df))


def _costs(df: pd.DataFrame) -> pd.Series:
    return (df["params"] != 0) | (df["flops"] != 0) | (df["act_bytes"] != 0) | (df["macs"] != 0)


def _unit_key(name: str, op: str, containers: set[str]) -> str:
    """A row's bar unit: a child of a top-level ``nn.Sequential`` (``layer1.0``, ``features.3``),
    else the top-level module (``inception3a``); functional ops at the root by their op name."""
    if not name:
        return op.lower()
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] in containers else parts[0]


LECTURE_NAMES = {"conv": "conv", "conv_transpose": "deconv", "linear": "fc", "pool": "pool",
                 "adaptive_pool": "avgpool", "view": "flatten", "lrn": "norm", "batch_norm": "bn",
                 "concat": "concat", "elementwise": "add"}


def _lecture_names(kinds: list[str]) -> list[str]:
    """conv1, pool1, conv2, ..., fc6: convs and FCs numbered together, a pool after its conv."""
    names, layer = [], 0
    for kind in kinds:
        if kind in ("conv", "conv_transpose", "linear"):
            layer += 1
            names.append(f"{LECTURE_NAMES[kind]}{layer}")
        elif kind == "pool":
            names.append(f"pool{layer}")
        else:
            names.append(LECTURE_NAMES.get(kind, kind))
    return names


def bar_units(df: pd.DataFrame, model: nn.Module) -> tuple[pd.DataFrame, str]:
    """(units with ``label`` + cost columns, what one unit is: ``"layer"`` or ``"block"``).

    Rows that cost nothing (in-place ReLU, dropout) are left out.  When every unit is a single
    op, the units get the lecture's names (conv1, pool1, ..., fc8).
    """
    containers = {n for n, m in model.named_children() if isinstance(m, (nn.Sequential, nn.ModuleList))}
    costly = df[_costs(df)].reset_index(drop=True)
    keys = [_unit_key(n, o, containers) for n, o in zip(costly["name"], costly["op"])]
    units = _group(costly, keys)
    if (units["rows"] == 1).all():
        units["label"] = _lecture_names(list(costly["kind"]))
        return units, "layer"
    return units, "block"
