"""``nn.Embedding`` and ``F.embedding``: a row of the table per index.

For integer indices of any shape S and a (num_embeddings, D) weight, the output is S x D in the
weight's dtype: ``prod(S) * D`` values copied, no MACs (kind ``copy``).  Backward
(``embedding_dense_backward``) scatters the gradient into the weight by index: it keeps the
indices, an input row when they are an activation (model state when a buffer).  No oracle prices
it: FlopCounterMode has no formula for ``aten::embedding`` (0), fvcore no handle (unsupported).
Flagged unsupported: ``max_norm`` (renormalises the weight in place, a write the model state
columns do not model), ``sparse`` gradients (the state is no longer a dense gradient per
parameter), floating-point indices.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from archstat.formulas import Cost, ShapeError, register_function, register_module
from archstat.spec import TensorSpec

NAMES = ("input", "weight", "padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse")


def embedding_cost(index: TensorSpec, weight: TensorSpec, position: int, max_norm: Any, sparse: bool) -> Cost:
    """The lookup of ``index`` (tensor input ``position``) into ``weight``."""
    if max_norm is not None or sparse:
        raise NotImplementedError("embedding with max_norm or sparse gradients")
    if index.dtype.is_floating_point or index.dtype.is_complex:
        raise ShapeError(f"embedding indices must be integers, got {str(index.dtype).replace('torch.', '')}")
    if len(weight.shape) != 2:
        raise ShapeError(f"embedding weight must be 2-d, got shape {list(weight.shape)}")
    out = TensorSpec((*index.shape, weight.shape[1]), weight.dtype)
    saved = [("in", position)] if type(index) is TensorSpec else []  # buffer indices are model state
    return Cost(out=out, kind="copy", hparams={"fn": "embedding", "num_embeddings": weight.shape[0]},
                work={"saved": saved})


@register_module(nn.Embedding)
def embedding_module(m: nn.Embedding, inputs: list) -> Cost:
    weight = TensorSpec(tuple(m.weight.shape), m.weight.dtype)
    return embedding_cost(inputs[0], weight, 0, m.max_norm, m.sparse)


@register_function("embedding")
def embedding_function(args: tuple, kwargs: dict) -> Cost:
    a = {**dict(zip(NAMES, args)), **{k: v for k, v in kwargs.items() if not k.startswith("_")}}
    index, weight = a["input"], a["weight"]
    position = [t for t in (index, weight) if isinstance(t, TensorSpec)].index(index)
    return embedding_cost(index, weight, position, a.get("max_norm"), bool(a.get("sparse", False)))
