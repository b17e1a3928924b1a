"""Weight-layer depth: the lecture's layer count, read off analyze()'s rows.

A weight layer is a conv or linear call that has parameters (a weight-free functional conv does not
count).  ``depth`` is the number of weight layers on the longest input-to-output path, so parallel
branches count once: AlexNet 8, VGG-16 16, GoogLeNet 22, ResNet-50 50, as the lecture counts them.
"""
from __future__ import annotations

import pandas as pd

WEIGHT_KINDS = ("conv", "conv_transpose", "linear")


def is_weight_layer(kind: str, params) -> bool:
    return kind in WEIGHT_KINDS and params != 0


def depth_per_row(df: pd.DataFrame) -> list[int]:
    """Weight layers on the longest path from the input to each row (a DAG longest path).

    depth(row) = max(depth(source) for its sources) + 1 if the row is a conv/linear with weights;
    the model input (source -1) has depth 0.  Rows come in execution order, so one pass suffices.
    """
    depth: list[int] = []
    for kind, params, sources in zip(df["kind"], df["params"], df["sources"]):
        before = max((depth[s] for s in sources if 0 <= s < len(depth)), default=0)
        depth.append(before + (1 if is_weight_layer(kind, params) else 0))
    return depth


def weight_depth(df: pd.DataFrame) -> int:
    """The lecture's layer count: AlexNet 8, VGG-16 16, GoogLeNet 22, ResNet-50 50."""
    return max(depth_per_row(df), default=0)


def weight_layers(df: pd.DataFrame) -> int:
    return int(sum(is_weight_layer(k, p) for k, p in zip(df["kind"], df["params"])))
