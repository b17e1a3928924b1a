"""The committed zoo table's numbers against independent oracles, not against earlier output.

``test_reports_fresh.py`` only shows that regenerating ``reports/`` gives the same bytes: a wrong
number written once stays "fresh".  Here each committed ``reports/data/zoo.csv`` row's params,
MACs and lecture FLOPs are recomputed by running the zoo model (meta device) with hooks: the
parameters of the modules that really run (each tensor once; GoogLeNet's aux heads do not run in
eval), the conv/linear MAC counter of ``_zoo_utils`` and the lecture counter of ``oracles.lecture``.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch import nn

from _zoo_utils import count_macs
from archstat.models import get_model, list_models
from oracles.lecture import lecture_flops

ZOO_CSV = Path(__file__).resolve().parents[1] / "reports" / "data" / "zoo.csv"


def _rows() -> dict[str, dict]:
    with open(ZOO_CSV, newline="") as fh:
        return {r["model"]: r for r in csv.DictReader(fh)}


def params_that_run(model: nn.Module, input_shape: tuple) -> int:
    """Elements of the parameters owned by modules called in an eval forward, shared tensors once."""
    seen: dict[int, int] = {}
    hooks = [m.register_forward_hook(lambda m, i, o: seen.update(
        {id(p): p.numel() for p in m.parameters(recurse=False)})) for m in model.modules()]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    for h in hooks:
        h.remove()
    return sum(seen.values())


ROWS = _rows()


def test_zoo_table_lists_every_model():
    assert set(ROWS) == set(list_models())


FAMILIES = ("alexnet", "zfnet", "vgg16", "googlenet", "inception_v3", "resnet50", "preact_resnet18")


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in FAMILIES else pytest.mark.slow) for n in sorted(ROWS)])
def test_committed_zoo_numbers_match_independent_counts(name: str):
    row = ROWS[name]
    shape = tuple(int(d) for d in row["input"].split("x"))
    assert row["convention"] == "lecture" and int(row["batch"]) == 1
    model = get_model(name, device="meta")
    assert int(row["params"]) == params_that_run(model, shape)
    assert int(row["macs"]) == count_macs(model, shape)
    assert int(row["flops"]) == lecture_flops(model, shape, device="meta")
