"""Training memory per layer, without autograd: what backward keeps alive, plus the model state.

For every row whose output needs a gradient (see ``grad_flow``), the op's autograd node saves
tensors for backward.  What it saves is a property of the op (PyTorch's ``derivatives.yaml``),
listed in :func:`saved_items` and checked against ``saved_tensors_hooks`` in the tests:

=====================  ===============================================================
conv                   its input (weight is a parameter); "same" padding with an odd
                       total pad saves the padded copy instead
linear                 its input, if the weight needs a gradient
batch norm             input + mean and invstd (C each in training, empty in eval)
group / layer norm     input + mean and rstd (one per normalised group)
max pool               input + int64 indices of the output's size; avg pool: input;
                       adaptive avg pool: the input, nothing when the output is 1x1 (mean)
ReLU, sigmoid, tanh,   the output (in place: the same storage as the input)
softmax
other activations      the input (PReLU: and its weight); in place, ReLU6/Hardtanh, SiLU,
                       Hardswish, Hardsigmoid and Mish keep a copy of the input instead
dropout (training)     the mask: on CPU a float tensor of the input's size (per channel
                       for Dropout1d/2d/3d), on CUDA a bool tensor (fused kernel)
LRN                    input, the channel-padded square (N, C+n-1, ...) and two
                       tensors of the output's size
+, -, cat, views       nothing
=====================  ===============================================================

Tensors are counted once per *storage*: a ReLU's output is also the next conv's saved input, a
view saves its base.  A row is charged for the storages it is the first to save.  Parameters and
buffers are saved too (conv weight, BN running stats) but are the model's state, counted apart
with the gradients and the optimizer state: SGD with momentum keeps one buffer per parameter,
Adam two (and a scalar ``step`` per tensor, on the host unless ``capturable``).
"""
from __future__ import annotations

from typing import Optional

import pandas as pd
import torch
from torch import nn

from archstat.analyses.grad_flow import GradFlow, grad_flow
from archstat.engine.rows import Rows
from archstat.engine.interpret import MODEL_INPUT
from archstat.spec import prod

OUTPUT_SAVERS = ("relu", "sigmoid", "tanh", "softmax", "softmax2d", "logsoftmax", "log_softmax", "exp", "sqrt",
                 "rsqrt")
INPUT_SAVERS_ELEMENTWISE = ("pow", "log", "abs", "clamp")
# In-place activations whose backward needs the original input save a copy of it made before the
# overwrite (measured with saved_tensors_hooks): MobileNet's ReLU6 and Hardswish, EfficientNet's
# SiLU.  ReLU, LeakyReLU, ELU, SELU and CELU in place keep their result, the same storage.
INPLACE_CLONERS = ("relu6", "hardtanh", "silu", "hardswish", "hardsigmoid", "mish")
OPTIMIZER_STATES = {"sgd": 1, "sgd_plain": 0, "adam": 2, "adamw": 2}

Item = tuple  # ("in", j) | ("out",) | ("out", k) (output k of several) | ("new", numel, dtype)


def _acc(dtype: torch.dtype) -> torch.dtype:
    """Statistics (BN mean/invstd, norm mean/rstd) are kept in the accumulation type."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def saved_items(r: dict, need: list[bool], param_grad: bool, module: Optional[nn.Module], batch: int,
                dtype: torch.dtype, device: str) -> Optional[list[Item]]:
    """What the op of row ``r`` saves for backward (given that autograd records it); None: not known.

    A formula may say it itself in ``Cost.work["saved"]`` (a user's layer: see archstat.Cost).
    """
    kind, hp = r["kind"], r["hparams"] if isinstance(r["hparams"], dict) else {}
    declared = (r.get("work") or {}).get("saved")
    if kind == "recurrent" and device != "cpu":  # cuDNN runs every RNN fused, its reserve space not modelled
        return None
    if declared is not None:
        return [tuple(item) for item in declared]
    lead = [batch] if r.get("batched", True) else []  # a value of parameters alone has no batch
    x = [*lead, *r["in_shapes"][0]] if r["in_shapes"] else []
    out = [*lead, *r["out_shape"]]
    if kind in ("conv", "conv_transpose"):
        if r["padding"] == "same":
            extra = [hp["dilation"][i] * (k - 1) % 2 for i, k in enumerate(r["kernel"])]
            if any(extra):  # asymmetric "same": PyTorch pads a copy by the odd remainder first
                return [("new", prod(x[:2]) * prod(s + e for s, e in zip(x[2:], extra)), dtype)]
        return [("in", 0)] + [("in", 1)] * (len(need) > 1)  # a computed weight is saved as an activation
    if kind == "linear":  # d/dW needs the input; d/dx needs a computed weight (a parameter is state)
        # an input that cannot be viewed as (rows, in) is saved as the contiguous copy matmul made
        x_saved = ("new", hp["input_copy"], dtype) if hp.get("input_copy") else ("in", 0)
        computed = hp.get("computed_weight", True)  # else the second tensor input is a computed bias
        return [x_saved] * param_grad + [("in", 1)] * (computed and len(need) > 1 and need[0])
    if kind == "matmul":
        if len(need) == 3 and hp.get("added"):  # baddbmm / addmm: the product's operands are inputs 1, 2
            return [("in", 2)] * need[1] + [("in", 1)] * need[2]
        if len(need) == 2:  # an operand torch.matmul copied (see formulas.linear.bmm_copies): the copy
            saved = [("new", c, dtype) if c else ("in", k) for k, c in enumerate(hp.get("copies") or [0, 0])]
            return [saved[1]] * need[0] + [saved[0]] * need[1]
        if param_grad and hp.get("copies") and any(hp["copies"]):  # one data operand, the other a
            # parameter (einsum(x, self.w)): the parameter's gradient needs the data operand, and
            # autograd saves the copy bmm made of it where one was made
            k = data_operand(r, lead)
            return [("new", hp["copies"][k], dtype) if k is not None and hp["copies"][k] else ("in", 0)]
        return [("in", 0)] if param_grad else []
    if kind == "batch_norm":
        c = x[1] if hp.get("training") else 0
        return [("in", 0), ("new", c, _acc(dtype)), ("new", c, _acc(dtype))]
    if kind == "group_norm":
        return [("in", 0), ("new", batch * hp["groups"], _acc(dtype)), ("new", batch * hp["groups"], _acc(dtype))]
    if kind == "layer_norm":
        lead = prod(x[: len(x) - len(hp["normalized_shape"])])
        return [("in", 0), ("new", lead, _acc(dtype)), ("new", lead, _acc(dtype))]
    if kind == "instance_norm" and module is not None:
        # runs batch norm on an (1, N*C, ...) view; weight and running stats are repeat()ed copies
        nc = batch * x[1]
        copies = 2 + bool(module.affine) + 2 * bool(module.track_running_stats)
        return [("in", 0)] + [("new", nc, _acc(dtype))] * copies
    if kind == "lrn":
        spatial = prod(x[2:])
        return [("in", 0), ("new", batch * (x[1] + hp["size"] - 1) * spatial, dtype),
                ("new", prod(out), dtype), ("new", prod(out), dtype)]
    if kind in ("pool", "adaptive_pool"):
        if hp["mode"] == "avg":  # adaptive to 1x1 runs mean(), which saves nothing
            return [] if kind == "adaptive_pool" and all(o == 1 for o in hp["output_size"]) else [("in", 0)]
        return [("in", 0), ("new", prod(out), torch.int64)]
    if kind == "activation":
        if hp.get("inplace") and hp.get("fn") in INPLACE_CLONERS:  # the input is overwritten: keep a copy
            return [("new", prod(x), dtype)]
        return [("out",)] if hp.get("fn") in OUTPUT_SAVERS else [("in", 0)]
    if kind == "dropout":
        if hp["p"] >= 1:
            return [("new", 1, dtype)]  # input * zeros({})
        if hp.get("fn") == "feature_dropout":
            return [("new", prod(x[:2]), dtype)]
        fused = device == "cuda" and hp.get("fn") == "dropout"
        return [("new", prod(x), torch.bool if fused else dtype)]
    if kind == "elementwise":
        return _elementwise(hp.get("fn"), need, param_grad)
    if kind == "reduce":
        return [("in", 0), ("out",)] if hp.get("fn") in ("amax", "amin") else []
    if kind in ("view", "identity", "copy", "concat", "upsample"):
        return []
    return None


def data_operand(r: dict, lead: list[int]) -> Optional[int]:
    """Which operand of a two-operand contraction (``hparams["shapes"]``, whole tensors) is the row's
    one tensor input (``in_shapes``, per sample): None if neither or both match."""
    ins = r.get("in_shapes") or []
    shapes = (r.get("hparams") or {}).get("shapes") or []
    if len(ins) != 1 or len(shapes) != 2:
        return None
    full = lead + list(ins[0])
    hits = [k for k, s in enumerate(shapes) if list(s) == full]
    return hits[0] if len(hits) == 1 else None


def _elementwise(fn: Optional[str], need: list[bool], param_grad: bool) -> Optional[list[Item]]:
    if fn in ("add", "sub", "neg", "floordiv"):
        return []
    if fn in ("mul", "div", "truediv"):
        if len(need) == 2:  # d(a*b) needs the other factor; d(a/b)/db needs both
            if fn == "mul":
                return [("in", 1)] * need[0] + [("in", 0)] * need[1]
            return [("in", 1), ("in", 0)] if need[1] else [("in", 1)]
        return [("in", 0)] if param_grad else []  # times a scalar: nothing; times a parameter: the input
    if fn == "where":  # where(cond, x, y): backward routes the gradient by cond, saved when x or y needs one
        return [("in", 0)] if any(need[1:]) else []
    if fn == "masked_fill":  # the gradient passes where the mask is False: the mask is kept
        return [("in", 1)] if need[0] else []
    if fn in ("maximum", "minimum"):
        return [("in", 1), ("in", 0)]
    if fn in OUTPUT_SAVERS:
        return [("out",)]
    if fn in INPUT_SAVERS_ELEMENTWISE:
        return [("in", 0)]
    return None


def _storages(rows: Rows, flow: GradFlow) -> list:
    """Storage id of each row's output: its own, or (views, in-place ops, identities) its input's.

    A view with no activation input (the meta engine records ``w.t()`` on a parameter with no
    input) views model state: a parameter or buffer, counted apart, as autograd's hooks see it."""
    own: list = []
    records = rows.df.to_dict("records")
    for i, r in enumerate(records):
        src = flow.input_source[i]
        own.append(("row", i) if r["alloc"] else ("state",) if not src else part_read(records[i], src[0], own,
                                                                                         records)
                   if src[0] >= 0 else model_input_key(rows, i, 0) if src[0] == MODEL_INPUT else ("state",))
    return own


def model_input_key(rows: Rows, i: int, k: int) -> tuple:
    """``("input", j)``: the storage of model input j, which row i reads as its tensor input k.

    The interpreter hands each row the very TensorSpec of the input (identity); the meta engine's
    copies are matched by shape and dtype."""
    given = [*rows.specs[0], *rows.specs[1].values()]
    spec = rows.records[i].inputs[k] if k < len(rows.records[i].inputs) else None
    j = next((j for j, s in enumerate(given) if s is spec), None)
    if j is None:
        j = next((j for j, s in enumerate(given) if s == spec), 0)
    return ("input", j)


def part_read(r: dict, j: int, own: list, records: list) -> tuple:
    """The storage row ``r`` reads from row ``j``: one output of its own when ``j`` allocates
    several (an LSTM's output, h_n and c_n) and ``r`` picks one (``out[0]``), else ``j``'s."""
    parts, many = r.get("source_parts"), records[j].get("out_part_bytes")
    pick = parts[r["sources"].index(j)] if parts and j in r["sources"] else None
    if own[j] == ("row", j) and many and pick is not None and len(pick) == 1:
        return ("part", j, pick[0])
    return own[j]


def saved_per_row(rows: Rows, device: str = "cpu", flow: Optional[GradFlow] = None) -> pd.DataFrame:
    """Per row: ``requires_grad``, ``saved`` (what autograd keeps), ``saved_bytes`` (storages first
    saved by this row), ``saved_all_bytes`` (every saved tensor, no dedup) and ``saved_storages``
    (those storages: id -> bytes; ``("input", j)`` is model input j)."""
    df = rows.df
    flow = flow or grad_flow(rows)
    batch, dtype = int(df.attrs["batch"]), getattr(torch, df.attrs["dtype"])
    inputs = {("input", j): int(s.nbytes) for j, s in enumerate([*rows.specs[0], *rows.specs[1].values()])}
    own = _storages(rows, flow)
    # a parameter or buffer saved for backward is model state, counted apart (state_bytes)
    size = {**inputs, ("state",): 0,
            **{("row", i): int((w or {}).get("storage_bytes", b)) for i, (b, w) in enumerate(zip(df["act_bytes"],
                                                                                                 df["work"]))},
            **{("part", i, k): int(b) for i, many in enumerate(df["out_part_bytes"]) for k, b in enumerate(many or [])}}
    seen: set = set()
    saved, first, every, known, storages = [], [], [], [], []
    records = df.to_dict("records")
    for i, r in enumerate(records):
        items = saved_items(r, flow.inputs[i], flow.weights[i], rows.modules[i], batch, dtype, device) \
            if flow.out[i] else []
        known.append(items is not None)
        keys = []
        for k, item in enumerate(items or []):
            if item[0] == "in":
                src = flow.input_source[i][item[1]]
                keys.append((part_read(r, src, own, records) if src >= 0 else model_input_key(rows, i, item[1])
                             if src == MODEL_INPUT
                             else ("state",), item))
            elif item[0] == "out":  # ("out", k): output k of several (an LSTM's output, h_n, c_n)
                keys.append((("part", i, item[1]) if len(item) > 1 and r.get("out_part_bytes") else own[i], item))
            else:
                key = ("new", i, k)
                size[key] = int(item[1]) * item[2].itemsize
                keys.append((key, item))
        saved.append([_describe(item) for _, item in keys])
        every.append(sum(size[key] for key, _ in keys))
        new = {key for key, _ in keys if key not in seen}
        seen |= new
        first.append(sum(size[key] for key in new))
        storages.append({key: size[key] for key in new})
    return pd.DataFrame({"requires_grad": flow.out, "saved": saved, "saved_bytes": first, "saved_all_bytes": every,
                         "saved_known": known, "saved_storages": storages}, index=df.index)


def _describe(item: Item) -> str:
    if item[0] == "in":
        return f"input{item[1]}"
    if item[0] == "out":
        return f"output{item[1]}" if len(item) > 1 else "output"
    return f"{item[1]}x{str(item[2]).replace('torch.', '')}"


def state_bytes(rows: Rows, optimizer: str) -> dict[str, int]:
    """Parameters, buffers, gradients (of the parameters the graph uses) and optimizer state, of
    ``rows.model`` in the rows' dtype (floating-point tensors; integer buffers keep their size)."""
    model, dtype = rows.model, rows.dtype
    if optimizer not in OPTIMIZER_STATES:
        raise ValueError(f"unknown optimizer {optimizer!r}: use {', '.join(OPTIMIZER_STATES)}")

    def nbytes(t: torch.Tensor) -> int:
        return t.numel() * (dtype.itemsize if t.is_floating_point() else t.element_size())

    params = {id(p): p for p in model.parameters()}
    used = {id(p): p for ps in rows.params for p in ps if p.requires_grad}
    grads = sum(nbytes(p) for p in used.values())
    host = len(used) * 4 if optimizer in ("adam", "adamw") else 0  # float32 `step` per tensor, on the host
    return {"params": sum(nbytes(p) for p in params.values()), "buffers": sum(nbytes(b) for b in model.buffers()),
            "grads": grads, "optimizer": OPTIMIZER_STATES[optimizer] * grads, "optimizer_host": host}


def training_memory(rows: Rows, optimizer: str = "sgd", device: str = "cpu") -> pd.DataFrame:
    """The rows' table (give it the training graph's: ``analyze_rows(..., mode="train")``) with the
    bytes backward keeps per row.

    ``attrs["total"]``: ``saved`` (activations kept for backward, each storage once), ``params``,
    ``buffers``, ``grads``, ``optimizer`` (device state), ``optimizer_host`` and ``total`` (all
    device bytes a training step holds after backward: saved + params + buffers + grads + optimizer).
    """
    per_row = saved_per_row(rows, device=torch.device(device).type)
    df = pd.concat([rows.df, per_row], axis=1)
    state = state_bytes(rows, optimizer)
    saved = int(per_row["saved_bytes"].sum())
    total = saved + state["params"] + state["buffers"] + state["grads"] + state["optimizer"]
    df.attrs = dict(rows.df.attrs)
    unknown = sorted({f"{r['op']} ({r['name'] or '<root>'})" for r, ok in zip(df.to_dict("records"), per_row["saved_known"])
                      if not ok})
    df.attrs["analysis_total"] = df.attrs.get("total")
    df.attrs.update({"optimizer": optimizer, "device": str(device), "memory_partial": bool(unknown),
                     "memory_unknown": unknown,
                     "total": {"saved": saved, **state, "total": total, "total_bytes": total}})
    return df
