"""Run the real model along the rows of the analysis: every row meets exactly one real call.

:class:`RealRun` executes the product's own fx graph (``archstat.engine.rows.Rows.graph``) on real
tensors with ``torch.fx.Interpreter``, on whatever copy of the model a check needs
(``fx.GraphModule(copy, graph)``: the graph names submodules by qualified name, so nothing is
traced again).  Models that fx cannot trace were analysed by the meta-device engine (module
hooks + a TorchFunctionMode); they get the same instrumentation on the real model, in the same
order.  Listeners see each row finish (``row_done(i)``): that is how per-layer oracles (saved
tensors, autograd nodes) attribute what happened.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
import torch.fx as fx
from torch import nn

from archstat.engine.inputs import bind
from archstat.engine.interpret import placeholder_params
from archstat.engine.meta_run import NOT_OPS, Recorder, function_name
from archstat.engine.rows import Rows
from archstat.errors import ArchstatError, first_line, is_oom
from archstat.formulas import module_formula
from archstat.spec import leaves


def tensors(value: Any) -> list[torch.Tensor]:
    """The real tensors inside nested args and outputs, in order."""
    return leaves(value, torch.Tensor)


def storage_key(t: torch.Tensor) -> int:
    """Identity of a tensor's storage: views and in-place results share their base's key."""
    return t.untyped_storage().data_ptr()


@dataclass
class RealCall:
    """What one row's real call did: output shapes (whole, batch included), bytes, and storage sharing."""

    out_shapes: list
    out_nbytes: int
    alloc: bool  # the output lives in a storage none of the inputs uses
    new_bytes: bool  # the output is not the very same memory view as an input
    params: int = 0  # parameter elements first read by this call (shared storage once)


def describe_call(inputs: list[torch.Tensor], output: Any) -> RealCall:
    """Shapes, bytes and aliasing of one real call's output(s) relative to its inputs."""
    outs = tensors(output)
    in_keys = {storage_key(t) for t in inputs}
    views = {(storage_key(t), tuple(t.shape), t.stride(), t.storage_offset()) for t in inputs}
    alloc = not any(storage_key(o) in in_keys for o in outs)
    same = any((storage_key(o), tuple(o.shape), o.stride(), o.storage_offset()) in views for o in outs)
    return RealCall([list(o.shape) for o in outs], sum(o.nbytes for o in outs), alloc, not same)


@dataclass
class RealRun:
    """Runs ``model`` (the rows' model or a copy of it) on ``x`` along ``rows``; ``calls[i]``
    describes row i's real call."""

    model: nn.Module
    rows: Rows
    listeners: list = field(default_factory=list)
    calls: list = field(default_factory=list)
    output: Any = None

    def __post_init__(self) -> None:
        self._seen: set[int] = set()
        self.params = list(self.rows.params)  # ours: the meta engine's functional rows fill in as they run

    def finish(self, index: int, inputs: list[torch.Tensor], output: Any,
               params: Optional[list[torch.Tensor]] = None) -> None:
        """Row ``index``'s real call returned ``output``: describe it and tell the listeners."""
        call = describe_call(inputs, output)
        if params is not None and not self.params[index]:
            self.params[index] = params  # the meta engine's functional rows: the weights seen now
        for p in self.params[index]:
            key = storage_key(p)
            if key not in self._seen:
                self._seen.add(key)
                call.params += p.numel()
        self.calls.append(call)
        self.last_output = output  # listeners may look at it (autograd nodes of the row)
        for listener in self.listeners:
            listener.row_done(index)

    def run(self, args: Any, kwargs: Optional[dict] = None) -> Any:
        """Run on ``args`` (one tensor, or the positional inputs) and ``kwargs`` (keyword inputs), as
        :meth:`archstat.engine.rows.Rows.example` makes them."""
        args, kwargs = ([args] if isinstance(args, torch.Tensor) else list(args)), dict(kwargs or {})
        self.calls, self._seen = [], set()
        try:
            self.output = _FxRun(self).run(*args, **kwargs) if self.rows.engine == "fx" else \
                _hooked_run(self, args, kwargs)
        except ArchstatError:
            raise
        except Exception as exc:
            if is_oom(exc):
                raise  # the caller knows the batch and what to suggest
            # the user's model refuses this input (BatchNorm in training on one value per channel,
            # a shape its own code rejects): one line naming the layer, not a traceback
            df, i = self.rows.df, len(self.calls)
            where = f"layer {df['name'].iloc[i] or '<root>'} ({df['op'].iloc[i]})" if i < len(df) else "the output"
            raise ArchstatError(f"the real model fails at {where} on a batch of {self.rows.batch} "
                                f"({self.rows.inputs.text()}): {first_line(exc)}") from None
        if len(self.calls) != len(self.rows.df):
            raise ArchstatError(f"the real run made {len(self.calls)} op calls where the analysis has "
                                f"{len(self.rows.df)} rows")
        return self.output


class _FxRun(fx.Interpreter):
    def __init__(self, owner: RealRun) -> None:
        gm = fx.GraphModule(owner.model, owner.rows.graph)
        super().__init__(gm)
        self.owner = owner
        self.row_of = {n: i for i, n in enumerate(owner.rows.nodes)}

    def run(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """fx.Interpreter takes positional inputs only: keyword ones are bound to their placeholders."""
        placeholders = [n for n in self.graph.nodes if n.op == "placeholder"]
        return super().run(*bind(placeholder_params(placeholders), args, kwargs))

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        index = self.row_of.get(n)
        if index is not None:
            # parameters and buffers count as inputs here: a view of one (ViT's class_token.expand)
            # allocates nothing, as archstat says
            inputs = [t for a in n.all_input_nodes for t in tensors(self.env[a])]
            self.owner.finish(index, inputs, out)
        return out


def _hooked_run(owner: RealRun, args: list, kwargs: dict) -> Any:
    """The meta engine's instrumentation (module hooks + TorchFunctionMode), on the real model."""
    model = owner.model
    state = {"inside": 0, "row": 0}
    pending: dict[int, list[torch.Tensor]] = {}

    class _Real(Recorder):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            name, _ = function_name(func)
            if state["inside"] or name in NOT_OPS or not tensors(out):
                return out
            found = tensors((args, kwargs))
            inputs = [t for t in found if not isinstance(t, nn.Parameter)]
            state["row"] += 1
            owner.finish(state["row"] - 1, inputs, out, [t for t in found if isinstance(t, nn.Parameter)])
            return out

    def pre(module: nn.Module, args: tuple) -> None:
        if module_formula(module) is not None and not state["inside"] and module is not model:
            pending[id(module)] = tensors(args)
            state["inside"] += 1

    def post(module: nn.Module, args: tuple, output: Any) -> None:
        if id(module) in pending:
            state["inside"] -= 1
            state["row"] += 1
            owner.finish(state["row"] - 1, pending.pop(id(module)), output)

    handles = []
    for m in model.modules():
        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        with _Real():
            return model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
