"""The rows of ``analyze()`` tied to what really runs: the fx node (or hooked call) behind each row.

:func:`graph_rows` gives analyze's DataFrame plus, per row, the fx node that made it and the
parameter tensors it reads (a module's own, or ``get_attr`` weights of a functional call).
:class:`RealRun` then executes the same fx graph on real tensors with ``torch.fx.Interpreter``, so
that every row (functional ops included) meets exactly one real call.  Models that fx cannot trace
were analysed by the meta-device engine (module hooks + a TorchFunctionMode); they get the same
instrumentation on the real model, in the same order.  Listeners see each row finish
(``row_done(i)``): that is how per-layer oracles (saved tensors) attribute what happened.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import pandas as pd
import torch
import torch.fx as fx
from torch import nn

from archstat.engine.analyze import analyze, input_spec
from archstat.errors import ArchstatError, first_line, is_oom
from archstat.formulas import module_formula, tensors_in
from archstat.engine.interpret import Interpreter, ParamSpec
from archstat.spec import leaves
from archstat.engine.trace import trace_graph, training_mode


@dataclass
class GraphRows:
    """analyze()'s table and, per row, where it comes from."""

    df: pd.DataFrame
    engine: str  # "fx" or "meta"
    graph: Optional[fx.Graph]
    nodes: list  # fx.Node per row (fx engine), else None
    params: list  # per row: the parameter tensors the call reads (every call, not only the first)
    modules: list  # per row: the module called, or None for a functional op


class _Mapped(Interpreter):
    """archstat's costing interpreter, remembering the node and the weights of every record."""

    def __init__(self, root: nn.Module, graph: fx.Graph) -> None:
        super().__init__(root, graph)
        self.nodes: list[fx.Node] = []
        self.row_params: list[list[torch.Tensor]] = []

    def _record(self, node: fx.Node, op: str, args: tuple, kwargs: dict, module: Optional[nn.Module]) -> Any:
        out = super()._record(node, op, args, kwargs, module)
        self.nodes.append(node)
        if module is not None:
            self.row_params.append(list(module.parameters()))
        else:
            self.row_params.append([t.tensor for t in tensors_in((args, kwargs))
                                    if isinstance(t, ParamSpec) and isinstance(t.tensor, nn.Parameter)])
        return out


def graph_rows(model: nn.Module, input_shape: Sequence[int], batch: int = 1, dtype: torch.dtype = torch.float32,
               mode: str = "eval", convention: str = "lecture") -> GraphRows:
    """analyze() and the node/weights behind each of its rows (same tracer, same order)."""
    df = analyze(model, input_shape, batch=batch, dtype=dtype, mode=mode, convention=convention)
    if df.attrs["engine"] != "fx":
        modules = [_named_module(model, r["name"], r["op"]) for r in df.to_dict("records")]
        return GraphRows(df, "meta", None, [None] * len(df), [list(m.parameters()) if m else [] for m in modules],
                         modules)
    with training_mode(model, mode == "train"):
        graph = trace_graph(model)
        mapped = _Mapped(model, graph)
        records = mapped.run([input_spec(input_shape, batch, dtype, False)])
    if [(r.name, r.op) for r in records] != list(zip(df["name"], df["op"])):
        raise ArchstatError(f"{type(model).__name__}: the traced graph changed between two traces")
    return GraphRows(df, "fx", graph, mapped.nodes, mapped.row_params, [r.module for r in records])


def _named_module(model: nn.Module, name: str, op: str) -> Optional[nn.Module]:
    try:
        module = model.get_submodule(name) if name else model
    except AttributeError:
        return None
    return module if type(module).__name__ == op and module_formula(module) is not None else None


def tensors(value: Any) -> list[torch.Tensor]:
    """The real tensors inside nested args and outputs, in order."""
    return leaves(value, torch.Tensor)


def storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


@dataclass
class RealCall:
    """What one row's real call did: output shapes (per sample), bytes, and storage sharing."""

    out_shapes: list
    out_nbytes: int
    alloc: bool  # the output lives in a storage none of the inputs uses
    new_bytes: bool  # the output is not the very same memory view as an input
    params: int = 0  # parameter elements first read by this call (shared storage once)


def describe_call(inputs: list[torch.Tensor], output: Any) -> RealCall:
    outs = tensors(output)
    in_keys = {storage_key(t) for t in inputs}
    views = {(storage_key(t), tuple(t.shape), t.stride(), t.storage_offset()) for t in inputs}
    alloc = not any(storage_key(o) in in_keys for o in outs)
    same = any((storage_key(o), tuple(o.shape), o.stride(), o.storage_offset()) in views for o in outs)
    return RealCall([list(o.shape[1:]) for o in outs], sum(o.nbytes for o in outs), alloc, not same)


@dataclass
class RealRun:
    """Runs ``model`` on ``x`` along the rows of ``rows``; ``calls[i]`` describes row i's real call."""

    model: nn.Module
    rows: GraphRows
    listeners: list = field(default_factory=list)
    calls: list = field(default_factory=list)
    output: Any = None

    def __post_init__(self) -> None:
        self._seen: set[int] = set()

    def _finish(self, index: int, inputs: list[torch.Tensor], output: Any,
                params: Optional[list[torch.Tensor]] = None) -> None:
        call = describe_call(inputs, output)
        if params is not None and not self.rows.params[index]:
            self.rows.params[index] = params  # the meta engine's functional rows: the weights seen now
        for p in self.rows.params[index]:
            key = storage_key(p)
            if key not in self._seen:
                self._seen.add(key)
                call.params += p.numel()
        self.calls.append(call)
        self.last_output = output  # listeners may look at it (autograd nodes of the row)
        for listener in self.listeners:
            listener.row_done(index)

    def run(self, x: torch.Tensor) -> Any:
        self.calls, self._seen = [], set()
        try:
            self.output = _FxRun(self).run(x) if self.rows.engine == "fx" else _hooked_run(self, x)
        except ArchstatError:
            raise
        except Exception as exc:
            if is_oom(exc):
                raise  # the caller knows the batch and what to suggest
            # the user's model refuses this input (BatchNorm in training on one value per channel,
            # a shape its own code rejects): one line naming the layer, not a traceback
            df, i = self.rows.df, len(self.calls)
            where = f"layer {df['name'].iloc[i] or '<root>'} ({df['op'].iloc[i]})" if i < len(df) else "the output"
            raise ArchstatError(f"the real model fails at {where} on a batch of {x.shape[0]} "
                                f"({'x'.join(map(str, x.shape[1:]))}): {first_line(exc)}") from None
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

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        index = self.row_of.get(n)
        if index is not None:
            # parameters and buffers count as inputs here: a view of one (ViT's class_token.expand)
            # allocates nothing, as archstat says
            inputs = [t for a in n.all_input_nodes for t in tensors(self.env[a])]
            self.owner._finish(index, inputs, out)
        return out


def _hooked_run(owner: RealRun, x: torch.Tensor) -> Any:
    """The meta engine's instrumentation (module hooks + TorchFunctionMode), on the real model."""
    from archstat.engine.meta_run import NOT_OPS as _NOT_OPS, Recorder as _Recorder, function_name

    model = owner.model
    names = {id(m): n for n, m in model.named_modules()}
    state = {"inside": 0, "row": 0}
    pending: dict[int, list[torch.Tensor]] = {}

    class _Real(_Recorder):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            name, _ = function_name(func)
            if state["inside"] or name in _NOT_OPS or not tensors(out):
                return out
            found = tensors((args, kwargs))
            inputs = [t for t in found if not isinstance(t, nn.Parameter)]
            state["row"] += 1
            owner._finish(state["row"] - 1, inputs, out, [t for t in found if isinstance(t, nn.Parameter)])
            return out

    def pre(module: nn.Module, args: tuple) -> None:
        if module_formula(module) is not None and not state["inside"] and module is not model:
            pending[id(module)] = tensors(args)
            state["inside"] += 1

    def post(module: nn.Module, args: tuple, output: Any) -> None:
        if id(module) in pending:
            state["inside"] -= 1
            state["row"] += 1
            owner._finish(state["row"] - 1, pending.pop(id(module)), output)

    handles = []
    for m in model.modules():
        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        with _Real():
            return model(x)
    finally:
        for h in handles:
            h.remove()
        del names
