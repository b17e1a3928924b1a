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
The check against a real backward pass is ``archstat.validation.backward_check``.
"""
from __future__ import annotations

import pandas as pd

from archstat.analyses.grad_flow import GradFlow, grad_flow
from archstat.engine.conventions import MATRIX_KINDS
from archstat.engine.rows import Rows


def backward_rows(rows: Rows, flow: GradFlow | None = None) -> pd.DataFrame:
    """Per row: ``grad_input_macs``, ``grad_weight_macs``, ``bwd_macs`` and ``bwd_flops_flopcounter``."""
    flow = flow or grad_flow(rows)
    gin, gw, fc = [], [], []
    for i, r in enumerate(rows.df.to_dict("records")):
        # a row the outputs do not depend on (a dead branch) gets no gradient: no backward work
        macs = int(r["macs"]) if r["supported"] and r["kind"] in MATRIX_KINDS and r.get("used", True) else 0
        if flow.reached is not None and not flow.reached[i]:  # no gradient reaches it (``detach``)
            macs = 0
        need = flow.inputs[i]
        products = (r.get("work") or {}).get("bwd_products")
        live = r["supported"] and r.get("used", True) and (flow.reached is None or flow.reached[i])
        if products is not None:  # a composite layer lists its backward products: (MACs, input k or -1)
            a = sum(m for m, k in products if live and k >= 0 and k < len(need) and need[k])
            b = sum(m for m, k in products if live and k < 0) if flow.out[i] else 0
        elif r["kind"] == "matmul" and len(need) == 2:
            a, b = macs * need[0], macs * need[1]  # d/da needs b, d/db needs a: one product each
        elif r["kind"] == "matmul" and len(need) == 3 and r["hparams"].get("added"):  # baddbmm: input + b1 @ b2
            a, b = macs * need[1], macs * need[2]
        else:
            a = macs if need and need[0] else 0
            b = macs if flow.weights[i] else 0
        groups = r["hparams"].get("groups", 1) if r["kind"] in ("conv", "conv_transpose") else 1
        gin.append(a)
        gw.append(b)
        # a fused kernel whose backward FlopCounterMode has no formula for (oneDNN's LSTM) counts 0 there
        counted = (r.get("work") or {}).get("bwd_flopcounter", True)
        fc.append((2 * a + 2 * b * groups) * counted)
    return pd.DataFrame({"needs_grad": flow.out, "grad_input_macs": gin, "grad_weight_macs": gw,
                         "bwd_macs": [x + y for x, y in zip(gin, gw)], "bwd_flops_flopcounter": fc},
                        index=rows.df.index)


def backward_flops(rows: Rows, convention: str = "flopcounter") -> pd.DataFrame:
    """The rows' table with the backward pass's MACs per row and ``bwd_flops`` in ``convention``
    (give it the training graph's rows: ``analyze_rows(..., mode="train")``)."""
    bwd = backward_rows(rows)
    df = pd.concat([rows.df, bwd], axis=1)
    df["bwd_flops"] = df["bwd_flops_flopcounter"] if convention == "flopcounter" else df["bwd_macs"]
    df.attrs = dict(rows.df.attrs)
    df.attrs.update({"bwd_convention": convention, "bwd_total": int(df["bwd_flops"].sum()),
                     "bwd_macs_total": int(df["bwd_macs"].sum())})
    return df
