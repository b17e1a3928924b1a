"""Empirical receptive fields: backpropagate from one output unit and see which input pixels move.

Check mode makes every path count, so that the non-zero input gradient covers exactly the field
the formula claims: weights are positive constants (``1/fan_in``, biases 0), batch norm is in
eval mode with identity statistics, max pooling becomes average pooling with the same window,
stride, padding and ceil mode (adaptive max becomes adaptive average), activations, LRN and
dropout are bypassed, and everything runs in float64.  Then the network is linear with positive
coefficients: no ReLU, no zero-initialised residual branch and no max can hide a pixel.

For each row, the gradient of the sum over channels at the centre unit is taken with respect to
the input; its extent (first and last non-zero index per dimension, height and width separately)
must equal ``exact_interval`` (``ok``).  ``formula_ok`` compares it with the textbook interval
``[i*J - P, i*J - P + R - 1]`` clipped to the input: equal unless an intermediate layer dropped
edge units (then the textbook field is larger than what any unit really sees).
"""
from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

import pandas as pd
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from archstat.engine.rows import Rows
from archstat.analyses.receptive_field import exact_interval, expected_interval, fields
from archstat.engine.trace import training_mode

BYPASS = ("activation", "lrn", "dropout")


def check_mode_copy(model: nn.Module) -> nn.Module:
    """A float64 copy with positive constant weights and identity batch norms (eval)."""
    work = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for m in work.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.running_mean is not None:
                    m.running_mean.zero_()
                    m.running_var.fill_(1.0)
            for name, p in m.named_parameters(recurse=False):
                if name == "bias" or "bias" in name:
                    p.zero_()
                elif p.dim() > 1:
                    p.fill_(1.0 / max(1, p[0].numel()))
                else:
                    p.fill_(1.0)
    return work


def _first_tensor(args: Any) -> torch.Tensor:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a
    raise ValueError("no tensor argument")


class _CheckRun(fx.Interpreter):
    """Runs the analysis graph with the check-mode substitutions, keeping each row's output."""

    def __init__(self, gm: fx.GraphModule, rows: list[dict], nodes: list) -> None:
        super().__init__(gm)
        self.row_of = {n: i for i, n in enumerate(nodes)}
        self.rows = rows
        self.outputs: dict[int, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        index = self.row_of.get(n)
        if index is None:
            return super().run_node(n)
        r = self.rows[index]
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        if r["kind"] in BYPASS or (r["kind"] == "identity" and "p" in r["hparams"]):
            out = _first_tensor(args)
        elif r["kind"] == "pool" and r["hparams"]["mode"] == "max":
            out = _avg_pool(_first_tensor(args), r)
        elif r["kind"] == "adaptive_pool" and r["hparams"]["mode"] == "max":
            dims = len(r["hparams"]["output_size"])
            out = getattr(F, f"adaptive_avg_pool{dims}d")(_first_tensor(args), r["hparams"]["output_size"])
        else:
            out = super().run_node(n)
        self.outputs[index] = out
        return out


def _avg_pool(x: torch.Tensor, r: dict) -> torch.Tensor:
    """Max pooling's window as an average (a depthwise conv of ones where the window is dilated)."""
    k, s, p = r["kernel"], r["stride"], r["padding"]
    dims = len(k)
    if any(d != 1 for d in r["hparams"]["dilation"]):
        c = x.shape[-dims - 1]
        w = torch.ones(c, 1, *k, dtype=x.dtype, device=x.device)
        conv = getattr(F, f"conv{dims}d")
        padded = F.pad(x, [q for pp in reversed(p) for q in (pp, pp)])
        return conv(padded, w, stride=s, dilation=r["hparams"]["dilation"], groups=c)
    return getattr(F, f"avg_pool{dims}d")(x, k, s, p, ceil_mode=r["hparams"]["ceil_mode"])


def measure(rows: Rows, rows_to_check: Optional[Sequence[int]] = None) -> pd.DataFrame:
    """Per checked row of the eval-mode ``rows``: the formula's clipped interval and the measured
    extent, per spatial dim.

    The rows' own graph runs on a check-mode copy of ``rows.model`` (float64, batch 1): the fields
    depend only on per-sample geometry, which the rows' batch and dtype do not change."""
    if rows.engine != "fx":
        raise ValueError("the empirical receptive-field check needs a model torch.fx can trace")
    if rows.mode != "eval":
        raise ValueError("the empirical receptive-field check runs the eval graph: give it eval-mode rows")
    if len(rows.inputs.all) > 1:
        raise ValueError("the empirical receptive-field check backpropagates to one image input; this model takes "
                         f"{len(rows.inputs.all)}")
    input_shape = rows.input_shape
    work = check_mode_copy(rows.model)
    df = rows.df
    fs = fields(df)
    records = df.to_dict("records")
    x = torch.ones(1, *input_shape, dtype=torch.float64, requires_grad=True)
    runner = _CheckRun(fx.GraphModule(work, rows.graph), records, rows.nodes)
    with training_mode(work, False), torch.enable_grad():
        runner.run(x)
    in_sizes = list(input_shape[1:])
    wanted = range(len(records)) if rows_to_check is None else rows_to_check
    out = []
    for i in wanted:
        r, f = records[i], fs[i]
        y = runner.outputs.get(i)
        y = y[0] if isinstance(y, (tuple, list)) else y
        if not isinstance(y, torch.Tensor) or not y.requires_grad or not y.is_floating_point():
            continue
        k = len(in_sizes)  # the trailing k dims are spatial; the rest (channels, groups) are summed
        spatial = list(y.shape[-k:]) if not f.whole and y.dim() >= k + 2 else []
        unit = [(n - 1) // 2 for n in spatial]
        picked = y[0][(Ellipsis, *unit)] if spatial else y[0]
        (g,) = torch.autograd.grad(picked.sum(), x, retain_graph=True)
        nz = g[0].abs().sum(0) > 0  # over input channels
        measured = []
        for d in range(len(in_sizes)):
            other = tuple(e for e in range(len(in_sizes)) if e != d)
            hit = nz.any(dim=other) if other else nz
            idx = hit.nonzero().flatten()
            measured.append((int(idx.min()), int(idx.max())) if len(idx) else None)
        exact = exact_interval(records, i, unit, len(in_sizes))
        formula = expected_interval(f, unit, in_sizes) if f.regular else None
        out.append({"row": i, "name": r["name"], "op": r["op"], "call": r["call"], "unit": unit,
                    "regular": f.regular, "global": f.whole, "rf": list(f.r), "expected": exact,
                    "measured": measured, "formula": formula, "ok": (exact == measured) if exact is not None else None,
                    "formula_ok": (formula == measured) if formula is not None else None})
    return pd.DataFrame(out)
