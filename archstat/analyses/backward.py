"""Backward FLOPs per layer, without autograd.

Backward of a matrix op computes up to two products, each as large as the forward one:

    grad_input  = grad_out (*) weight^T     only if the op's input needs a gradient
    grad_weight = input^T  (*) grad_out     only if the weight needs a gradient

so a conv or linear layer costs MACs (grad-input) + MACs (grad-weight) multiply-adds; the first
layer, whose input is the data, computes no grad-input (see ``grad_flow``).  Everything else
(activations, norms, pooling) is elementwise work that the matrix-op conventions do not price.

Conventions: ``lecture`` and ``fvcore`` count one per multiply-add (fvcore itself has no backward
counter); ``flopcounter`` is what ``FlopCounterMode`` counts over a real backward pass: 2 per
multiply-add, except that its grad-weight formula for a grouped convolution uses all the input
channels, i.e. ``groups`` times the true work (torch/utils/flop_counter.py, conv_backward_flop).
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch
from torch import nn

from archstat.analyses.grad_flow import GradFlow, grad_flow
from archstat.engine.rows import GraphRows, graph_rows
from archstat.engine.trace import training_mode

MATRIX = ("conv", "conv_transpose", "linear", "matmul")


def backward_rows(rows: GraphRows, flow: GradFlow | None = None) -> pd.DataFrame:
    """Per row: ``grad_input_macs``, ``grad_weight_macs``, ``bwd_macs`` and ``bwd_flops_flopcounter``."""
    flow = flow or grad_flow(rows)
    gin, gw, fc = [], [], []
    for i, r in enumerate(rows.df.to_dict("records")):
        macs = int(r["macs"]) if r["supported"] and r["kind"] in MATRIX else 0
        need = flow.inputs[i]
        if r["kind"] == "matmul" and len(need) == 2:
            a, b = macs * need[0], macs * need[1]  # d/da needs b, d/db needs a: one product each
        else:
            a = macs if need and need[0] else 0
            b = macs if flow.weights[i] else 0
        groups = r["hparams"].get("groups", 1) if r["kind"] in ("conv", "conv_transpose") else 1
        gin.append(a)
        gw.append(b)
        fc.append(2 * a + 2 * b * groups)
    return pd.DataFrame({"needs_grad": flow.out, "grad_input_macs": gin, "grad_weight_macs": gw,
                         "bwd_macs": [x + y for x, y in zip(gin, gw)], "bwd_flops_flopcounter": fc},
                        index=rows.df.index)


def backward_flops(model: nn.Module, input_shape: Sequence[int], batch: int = 1, mode: str = "train",
                   convention: str = "flopcounter") -> pd.DataFrame:
    """analyze()'s rows with the backward pass's MACs per row and ``bwd_flops`` in ``convention``."""
    rows = graph_rows(model, input_shape, batch=batch, mode=mode)
    bwd = backward_rows(rows)
    df = pd.concat([rows.df, bwd], axis=1)
    df["bwd_flops"] = df["bwd_flops_flopcounter"] if convention == "flopcounter" else df["bwd_macs"]
    df.attrs = dict(rows.df.attrs)
    df.attrs.update({"bwd_convention": convention, "bwd_total": int(df["bwd_flops"].sum()),
                     "bwd_macs_total": int(df["bwd_macs"].sum())})
    return df


def _loss(out) -> torch.Tensor:
    from archstat.engine.rows import tensors

    return sum(t.float().sum() for t in tensors(out) if t.is_floating_point())


class _NodeRows:
    """Listener of a real forward run: which autograd nodes each row created."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self.row_of: dict = {}

    def row_done(self, index: int) -> None:
        from archstat.engine.rows import tensors

        stack = [t.grad_fn for t in tensors(self.runner.last_output) if t.grad_fn is not None]
        while stack:  # walk back to the nodes earlier rows made (or leaves)
            node = stack.pop()
            if node is None or node in self.row_of or type(node).__name__ == "AccumulateGrad":
                continue
            self.row_of[node] = index
            stack += [n for n, _ in node.next_functions]


def measured_backward(model: nn.Module, input_shape: Sequence[int], batch: int = 1, mode: str = "train",
                      seed: int = 0, dtype: torch.dtype = torch.float32,
                      device: str | torch.device = "cpu") -> dict[str, object]:
    """FlopCounterMode over a real backward pass, per row.

    FlopCounterMode counts each aten op of the backward (``convolution_backward``, ``mm`` ...)
    with its own formulas.  Each row's share is the growth of its total while the autograd nodes
    that row created run (node pre- and post-hooks; the engine runs one device's nodes one at a time).
    (FlopCounterMode's own per-module split is not used: its module tracker keeps a module
    "active" during backward until the gradient of the module's input exists, so sibling branches
    and the first layer, whose input needs no gradient, absorb each other's counts.)
    Returns ``per_row`` and ``total`` (FlopCounterMode's global count: the two must agree).
    """
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    from archstat.engine.rows import RealRun

    dev = torch.device(device)
    work = copy.deepcopy(model).to(device=dev, dtype=dtype)
    rows = graph_rows(work, input_shape, batch=batch, dtype=dtype, mode=mode)
    x = torch.randn(batch, *input_shape, device=dev, dtype=dtype, generator=torch.Generator(dev).manual_seed(seed))
    runner = RealRun(work, rows)
    nodes = _NodeRows(runner)
    runner.listeners.append(nodes)
    with training_mode(work, mode == "train"), torch.enable_grad():
        loss = _loss(runner.run(x))
    per_row = [0] * len(rows.df)
    with FlopCounterMode(display=False) as fc:
        start: dict = {}
        handles = []
        for node, row in nodes.row_of.items():
            def pre(grad_outputs, node=node):
                start[node] = fc.get_total_flops()

            def post(grad_inputs, grad_outputs, node=node, row=row):
                per_row[row] += fc.get_total_flops() - start.pop(node)

            handles += [node.register_prehook(pre), node.register_hook(post)]
        if loss.requires_grad:
            loss.backward()
        total = fc.get_total_flops()
    for h in handles:
        h.remove()
    return {"per_row": per_row, "total": int(total), "rows": rows}
