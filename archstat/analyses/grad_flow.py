"""Which tensors need a gradient, row by row, without running autograd.

The model input needs none.  A row's output needs one when any of its tensor inputs does or when
it reads a parameter that requires grad (``detach`` cuts the flow).  Autograd records (saves
tensors for, and later differentiates) exactly the rows whose output needs a gradient: this is why
the first conv computes no grad-input, and why a max-pool on the raw input saves nothing.

Inputs are tied to their producers through ``sources``.  fx lists each producer once, so an op
that reads the same tensor twice (``x * x``) has fewer sources than inputs: every input then comes
from that one producer.
"""
from __future__ import annotations

from dataclasses import dataclass

from archstat.engine.rows import Rows
from archstat.engine.interpret import MODEL_INPUT, OpRecord, ParamSpec

# ops whose output never needs a gradient: cut from the graph, integer or bool results, fresh fills
NO_GRAD_FNS = ("detach", "floordiv", "lt", "le", "gt", "ge", "eq", "ne", "argmax", "argmin",
               "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like",
               "new_zeros", "new_ones", "new_full", "new_empty")

# ops whose second tensor input, when there is one, is the weight (a functional call on a weight
# the forward computes: weight standardisation, a scaled or low-rank weight)
WEIGHTED_KINDS = ("conv", "conv_transpose", "linear")


@dataclass
class GradFlow:
    out: list  # per row: does the output require grad
    inputs: list  # per row: per tensor input (in_shapes order), does it require grad
    params: list  # per row: does it read a parameter that requires grad
    weights: list  # per row: does its weight (a parameter of rank >= 2; else any parameter) require grad
    input_source: list  # per row: per tensor input, the producing row (-1: the model input, -2: state)
    reached: list = None  # per row: does backward send a gradient into its output (it reaches the loss)


def input_sources(sources: list, n_inputs: int) -> list[int]:
    if len(sources) == n_inputs:
        return list(sources)
    if len(sources) == 1:
        return sources * n_inputs
    return (list(sources) + [sources[-1] if sources else -1] * n_inputs)[:n_inputs]


def state_grad(record: OpRecord, k: int) -> bool:
    """Does input ``k`` of a call fed model state (a parameter, or a buffer) require grad?  A
    function of parameters alone (``a * b``, ``weight * scale``) is a subgraph autograd records."""
    t = record.inputs[k] if k < len(record.inputs) else None
    return isinstance(t, ParamSpec) and t.tensor is not None and t.tensor.requires_grad


def _reached(out: list, ins: list, srcs: list, outputs) -> list:
    """Rows backward sends a gradient to: an output that requires grad, or a row feeding, through an
    input that requires grad, a reached row.  A row recorded by autograd whose value gets to the loss
    only through ``detach`` is never reached: it saves its tensors, but its backward never runs.
    Unknown outputs (meta engine): every row that requires grad."""
    if outputs is None:
        return list(out)
    reached = [False] * len(out)
    for i in outputs:
        if 0 <= i < len(out):
            reached[i] = out[i]
    for j in range(len(out) - 1, -1, -1):  # rows are in execution order: consumers come later
        if reached[j]:
            for s, n in zip(srcs[j], ins[j]):
                if s >= 0 and n and out[s]:
                    reached[s] = True
    return reached


def grad_flow(rows: Rows, input_requires_grad: bool = False) -> GradFlow:
    out, ins, params, weights, srcs = [], [], [], [], []
    detached: dict = {}  # row -> the ``detach_`` row after which its value requires no grad
    for i, r in enumerate(rows.df.to_dict("records")):
        src = input_sources(list(r["sources"]), len(r["in_shapes"]))
        need = [False if s in detached else out[s] if s >= 0 else input_requires_grad if s == MODEL_INPUT else state_grad(rows.records[i], k)
                for k, s in enumerate(src)]
        p = any(t.requires_grad for t in rows.params[i])
        matrices = [t for t in rows.params[i] if t.dim() >= 2]
        # a weight computed in forward (``F.linear(x, w * s)``) is the second tensor input
        computed = r["kind"] in WEIGHTED_KINDS and len(need) > 1 and need[1]
        weights.append(computed or (any(t.requires_grad for t in matrices) if matrices else p))
        fn = r["hparams"].get("fn") if isinstance(r["hparams"], dict) else None
        out.append((any(need) or p) and fn not in NO_GRAD_FNS)
        if fn == "detach" and r["hparams"].get("inplace") and src and src[0] >= 0:  # detach_  # in place: later readers of the tensor see no grad
            detached[src[0]] = i
        ins.append(need)
        params.append(p)
        srcs.append(src)
    return GradFlow(out, ins, params, weights, srcs, _reached(out, ins, srcs, rows.df.attrs.get("output_rows")))
