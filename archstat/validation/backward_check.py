"""The oracle for the backward-FLOPs estimate: FlopCounterMode over a real backward pass, per row.

The estimate (``archstat.analyses.backward``) never runs the model; this check does, on a copy of
the rows' model with real weights, along the product's own graph (``validation.real_run``).
"""
from __future__ import annotations

import copy
from typing import Any

import torch

from archstat.engine.rows import Rows
from archstat.engine.trace import training_mode
from archstat.validation.real_run import RealRun, tensors


def scalar_loss(out: Any) -> torch.Tensor:
    """A scalar that depends on every floating-point output: the sum of all their elements."""
    return sum(t.float().sum() for t in tensors(out) if t.is_floating_point())


class NodeRows:
    """Listener of a real forward run: which autograd nodes each row created."""

    def __init__(self, runner: RealRun) -> None:
        self.runner = runner
        self.row_of: dict = {}

    def row_done(self, index: int) -> None:
        stack = [t.grad_fn for t in tensors(self.runner.last_output) if t.grad_fn is not None]
        while stack:  # walk back to the nodes earlier rows made (or leaves)
            node = stack.pop()
            if node is None or node in self.row_of or type(node).__name__ == "AccumulateGrad":
                continue
            self.row_of[node] = index
            stack += [n for n, _ in node.next_functions]


def measured_backward(rows: Rows, seed: int = 0, device: str | torch.device = "cpu") -> dict[str, Any]:
    """FlopCounterMode over a real backward pass of a copy of ``rows.model``, per row (in the rows' mode,
    batch and dtype).

    FlopCounterMode counts each aten op of the backward (``convolution_backward``, ``mm`` ...)
    with its own formulas.  Each row's share is the growth of its total while the autograd nodes
    that row created run (node pre- and post-hooks; the engine runs one device's nodes one at a time).
    (FlopCounterMode's own per-module split is not used: its module tracker keeps a module
    "active" during backward until the gradient of the module's input exists, so sibling branches
    and the first layer, whose input needs no gradient, absorb each other's counts.)
    Returns ``per_row`` and ``total`` (FlopCounterMode's global count: the two must agree).
    """
    dev = torch.device(device)
    work = copy.deepcopy(rows.model).to(device=dev, dtype=rows.dtype)
    args, kwargs = rows.example(dev, seed)
    runner = RealRun(work, rows)
    nodes = NodeRows(runner)
    runner.listeners.append(nodes)
    with training_mode(work, rows.mode == "train"), torch.enable_grad():
        loss = scalar_loss(runner.run(args, kwargs))
    return count_backward(loss, nodes, len(rows.df))


def count_backward(loss: torch.Tensor, nodes: NodeRows, n: int) -> dict[str, Any]:
    """Run ``loss.backward()`` under FlopCounterMode; each of the ``n`` rows gets the FLOPs counted
    while the autograd nodes it created run.  ``per_row`` and FlopCounterMode's ``total``."""
    from torch.utils.flop_counter import FlopCounterMode

    per_row = [0] * n
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
    return {"per_row": per_row, "total": int(total)}
