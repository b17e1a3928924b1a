"""The engine's product: analyze()'s rows together with what makes each of them.

One interpreter pass over one trace yields both the table and, per row, the fx node that made it,
the module it calls and the parameter tensors it reads (a module's own, or the ``get_attr``
weights of a functional call).  Every analysis (training memory, backward FLOPs, receptive field,
live memory ...) and every real-run check (``archstat.validation``) takes this product instead of
``(model, input_shape)``, so a command traces each model once per mode.  A check that needs a
different copy of the model (real weights, float64, constant weights) runs the same ``graph`` on
it with ``torch.fx.GraphModule(copy, rows.graph)``: a graph names submodules by qualified name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import pandas as pd
import torch
import torch.fx as fx
from torch import nn

from archstat.engine.inputs import ModelInputs, example_inputs
from archstat.engine.interpret import OpRecord
from archstat.formulas import module_formula
from archstat.spec import TensorSpec


@dataclass
class Rows:
    """analyze()'s table and, per row, where it comes from (lists are parallel to ``df``'s rows)."""

    df: pd.DataFrame
    engine: str  # "fx" or "meta"
    graph: Optional[fx.Graph]  # the traced graph (fx engine), else None
    nodes: list  # fx.Node per row (fx engine), else None
    params: list  # per row: the parameter tensors the call reads (every call, not only the first)
    modules: list  # per row: the module called, or None for a functional op
    records: list  # per row: the interpreter's OpRecord (specs in and out, the Cost)
    model: nn.Module  # the module that was traced (the graph's root)
    spec: TensorSpec  # the (first) input it was interpreted for (batch first)
    inputs: ModelInputs = field(default_factory=ModelInputs)  # every input as given (per sample)
    specs: tuple = ((), {})  # every input batch first: (positional TensorSpecs, keyword name -> TensorSpec)

    @property
    def input_shape(self) -> tuple:
        """The (first) input's shape per sample, as given to :func:`archstat.engine.analyze.analyze_rows`."""
        return tuple(self.df.attrs["input"])

    @property
    def given(self) -> dict:
        """The inputs as :func:`archstat.engine.analyze.analyze_rows` takes them again (another mode):
        ``analyze_rows(rows.model, batch=rows.batch, **rows.given)``."""
        return {"inputs": list(self.inputs.args), "kwargs": dict(self.inputs.kwargs)}

    def example(self, device: torch.device | str, seed: int) -> tuple[list[torch.Tensor], dict[str, Any]]:
        """Real tensors for every input, seeded (:func:`archstat.engine.inputs.example_inputs`): what
        every real run along these rows feeds, as ``model(*args, **kwargs)``."""
        return example_inputs(self.inputs, self.specs, device, seed)

    @property
    def batch(self) -> int:
        return int(self.spec.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the analysis (of the weights in a real run; integer inputs keep theirs)."""
        return getattr(torch, str(self.df.attrs["dtype"]))

    @property
    def mode(self) -> str:
        return str(self.df.attrs["mode"])


def row_weights(record: OpRecord) -> list[torch.Tensor]:
    """The parameters a call reads: its module's, or the ``nn.Parameter`` arguments of a functional op."""
    if record.module is not None:
        return list(record.module.parameters())
    return [s.tensor for s in record.state_inputs if isinstance(s.tensor, nn.Parameter)]


def named_module(model: nn.Module, name: str, op: str) -> Optional[nn.Module]:
    """The module a row of the meta engine calls (``name`` owns a call of class ``op``), else None."""
    try:
        module = model.get_submodule(name) if name else model
    except AttributeError:
        return None
    return module if type(module).__name__ == op and module_formula(module) is not None else None
