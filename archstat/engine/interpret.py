"""Walk an fx graph with :class:`TensorSpec` values instead of tensors, costing each op call.

Every node gets a value: a TensorSpec for tensors, a plain Python (or sympy) value for shape
arithmetic (``x.size(0)``, ``getitem`` on a size tuple, ``*`` on ints), which we evaluate
ourselves.  Tensor ops are costed by their registered formula.  An op without a formula is run
once on meta tensors so that the shapes downstream stay right, and its record says
``supported=False``: it is flagged, never a silent zero.
"""
from __future__ import annotations

import copy
from typing import Any, Optional

import torch
import torch.fx as fx
from torch import nn

from archstat.engine.inputs import bind
from archstat.errors import ArchstatError, message_line
from archstat.formulas import FUNCTION_FORMULAS, Cost, module_formula, tensors_in
from archstat.engine.records import (MODEL_INPUT, STATE, OpRecord, ParamCounter, ParamSpec,  # noqa: F401
                                     aliasing, apply_formula, as_meta, as_spec)
from archstat.spec import TensorSpec, leaves, same_size
from archstat.engine.trace import op_name, owner_name
from archstat.engine.wrapped import is_wrapped_call, splice_body


# Python arithmetic on sizes that torch.jit.trace records as aten::mul/add/sub/div, ops fvcore has
# no handle for (it ignores floor_divide and Int): validate expects them among fvcore's unsupported.
TRACED_SHAPE_OPS = ("mul", "add", "sub", "div", "truediv")

_TENSOR_ATTRS = {"shape": lambda t: t.shape, "dtype": lambda t: t.dtype, "ndim": lambda t: len(t.shape),
                 "device": lambda t: torch.device("meta")}
_SHAPE_METHODS = ("size", "dim", "numel")


def placeholder_params(placeholders: list[fx.Node]) -> list[tuple[str, bool, Any]]:
    """A graph's inputs as :func:`archstat.engine.inputs.bind` takes them: name, has a default, default."""
    return [(str(n.target).lstrip("*"), bool(n.args), n.args[0] if n.args else None) for n in placeholders]


class Interpreter:
    """Costs the nodes of ``graph`` (traced from ``root``) for one input spec."""

    def __init__(self, root: nn.Module, graph: fx.Graph) -> None:
        self.root, self.graph = root, graph
        self.records: list[OpRecord] = []
        self.params = ParamCounter()
        self._source: dict[fx.Node, int] = {}  # node -> index of the record that produced its value
        self._env: dict[fx.Node, Any] = {}  # node -> its value (TensorSpec, int, sympy expression ...)
        self.outputs: Optional[list[int]] = None  # records feeding the graph output (-1: the input itself)
        self.output_parts: Optional[list] = None  # per entry of ``outputs``: the parts returned (None: all)
        self.output_rows: Optional[list[int]] = None  # every record a returned value holds (packed ones too)
        # every tensor the model returns, in the order it returns them (a dict's insertion order, as
        # ``spec.leaves`` flattens a real output): (record that made it, -1 the input; its whole shape)
        self.returned: Optional[list[tuple[int, tuple]]] = None
        # record -> the last record made before a node that reads its value without being a row
        # (``x.size(0)`` late in a forward): the real run frees the value only after that read
        self.held: dict[int, int] = {}
        # getitem node -> the leaves of its producer's tuple output that its value holds
        self._parts: dict[fx.Node, frozenset] = {}
        # module -> arithmetic on sizes it does (``h * w``), which TorchScript traces as aten ops
        self.shape_ops: dict[str, set] = {}
        self._batched: dict[fx.Node, bool] = {}  # node -> does its value depend on the model input
        self._carrying: list[bool] = []  # the last record's dataflow flag, for run() to file
        self.batch: Optional[Any] = None  # the input's batch size (an int, or N in symbolic mode)

    def run(self, inputs: list[TensorSpec], kwargs: Optional[dict[str, TensorSpec]] = None) -> list[OpRecord]:
        """Records of one pass with ``inputs`` (positional, in ``forward``'s order) and ``kwargs`` (by name)."""
        env = self._env = {}  # fresh for each run
        placeholders = [n for n in self.graph.nodes if n.op == "placeholder"]
        values = iter(bind(placeholder_params(placeholders), inputs, kwargs or {}))
        given = [*inputs, *(kwargs or {}).values()]
        self.batch = given[0].shape[0] if given and given[0].shape else None
        for node in self.graph.nodes:
            if node.op == "placeholder":
                env[node] = next(values)
                self._batched[node] = True
            elif node.op == "get_attr":
                env[node] = self._get_attr(str(node.target))
            elif node.op == "output":  # the records whose values the model returns
                self.outputs, self.output_parts = self._sources_of(node.all_input_nodes)
                self.output_rows = self._rows_behind(node.all_input_nodes)
                self.returned = [(self._source.get(n, -1), tuple(spec.shape)) for n in leaves(node.args, fx.Node)
                                 for spec in leaves(env[n], TensorSpec)]
                break
            elif is_wrapped_call(node) and op_name(node)[0] not in FUNCTION_FORMULAS and self._inline(node):
                continue  # its body's nodes follow it in the graph now, and are costed one by one
            else:
                args = fx.node.map_arg(node.args, lambda n: env[n])
                kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
                count = len(self.records)
                env[node] = self._call(node, args, kwargs)
                if len(self.records) > count:
                    self._source[node] = count
                    self._batched[node] = self._carrying.pop()
                else:  # getitem, getattr, shape arithmetic: batched when what it reads is
                    self._batched[node] = any(self._batched.get(n, False) for n in node.all_input_nodes)
                    for n in node.all_input_nodes:
                        if n in self._source and tensors_in(env[n]):  # a tensor, not sizes read off one
                            self.held[self._source[n]] = count - 1
                if len(self.records) == count and node.all_input_nodes and node.all_input_nodes[0] in self._source:
                    # getitem of a split's output, etc.: the value comes from the same record
                    self._source[node] = self._source[node.all_input_nodes[0]]
                    self._note_parts(node)
        return self.records

    def _inline(self, node: fx.Node) -> bool:
        """Splice the body of an ``fx.wrap``'d call into the graph (see ``archstat.engine.wrapped``);
        False where it stays an opaque call (symbolic sizes, an untraceable body)."""
        try:
            values = {n: as_meta(self._env[n]) for n in node.all_input_nodes}
        except ArchstatError:  # symbolic sizes: no meta run; the call stays opaque (and needs a formula)
            return False
        if not splice_body(self.graph, node, values):
            return False
        self.graph.erase_node(node)
        return True

    def _note_parts(self, node: fx.Node) -> None:
        """Which leaves of a multi-output record ``node``'s value (a getitem) holds, by identity:
        max pooling's unused indices or attention's unused weights die with the tuple, while the
        picked tensor lives on."""
        outs = tensors_in(self.records[self._source[node]].cost.out)
        mine = tensors_in(self._env[node])
        held = frozenset(k for k, o in enumerate(outs) if any(o is t for t in mine))
        if held and len(held) < len(outs):
            self._parts[node] = held

    def _rows_behind(self, nodes: list) -> list[int]:
        """The records whose values ``nodes`` hold, looking through values packed without a record
        (GoogLeNet's namedtuple of logits and aux logits)."""
        made = {rec.node: i for i, rec in enumerate(self.records)}
        found, stack, seen = set(), list(nodes), set()
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n in made:
                found.add(made[n])
            elif n.op == "placeholder":
                continue
            else:  # a getitem, a packed tuple: the values it holds
                stack.extend(n.all_input_nodes)
        return sorted(found)

    def _sources_of(self, nodes: list) -> tuple[list[int], list]:
        """Producer records of ``nodes`` (-1: the model input) and the parts of each that are read."""
        read: dict[int, Optional[set]] = {}
        for n in nodes:
            src, part = self._source.get(n, -1), self._parts.get(n)
            if part is None or (src in read and read[src] is None):  # the whole value is read
                read[src] = None
            else:
                read[src] = (read.get(src) or set()) | part
        keys = sorted(read)
        return keys, [None if read[k] is None else sorted(read[k]) for k in keys]

    def _get_attr(self, target: str) -> Any:
        value: Any = self.root
        for part in target.split("."):
            value = getattr(value, part)
        if isinstance(value, torch.Tensor):
            return ParamSpec(tuple(value.shape), value.dtype, tensor=value)
        return value

    def _call(self, node: fx.Node, args: tuple, kwargs: dict) -> Any:
        if node.op == "call_module":
            module = self.root.get_submodule(str(node.target))
            return self._record(node, type(module).__name__, args, kwargs, module)
        name, inplace = op_name(node)
        tensors = tensors_in((args, kwargs))
        if isinstance(node.target, type) and issubclass(node.target, (tuple, list, dict)):
            return node.target(*args, **kwargs)  # packing outputs (a namedtuple of logits): no op
        if not tensors:  # shape arithmetic: ints, sympy expressions, tuples of them
            if name in TRACED_SHAPE_OPS:
                self.shape_ops.setdefault(owner_name(node), set()).add(name)
            if node.op == "call_method":
                return getattr(args[0], str(node.target))(*args[1:], **kwargs)
            return node.target(*args, **kwargs)
        subject = args[0] if args else None
        if isinstance(subject, TensorSpec):
            if name == "getattr" and args[1] in _TENSOR_ATTRS:
                return _TENSOR_ATTRS[args[1]](subject)
            if name in _SHAPE_METHODS:
                dim = args[1] if len(args) > 1 else kwargs.get("dim")
                if name == "size":
                    return subject.shape if dim is None else subject.shape[dim]
                return len(subject.shape) if name == "dim" else subject.numel
        if name == "getitem" and not isinstance(subject, TensorSpec):
            return subject[args[1]]  # picking one output of split/chunk/max(return_indices)
        if name == "getattr" and not isinstance(subject, TensorSpec):
            return getattr(subject, args[1])  # a named output: max(dim).values
        kwargs = dict(kwargs, _fn=name, **({"inplace": True} if inplace else {}))
        return self._record(node, name, args, kwargs, None)

    def _record(self, node: fx.Node, op: str, args: tuple, kwargs: dict, module: Optional[nn.Module]) -> Any:
        inputs = [t for t in tensors_in((args, kwargs)) if not isinstance(t, ParamSpec)]
        # a layer applied to a buffer (Swin v2's coordinate table MLP), or a function of parameters
        # alone (``a * b``, weight standardisation): the state is its input, as autograd sees it
        state_only = not inputs
        if state_only:
            inputs = tensors_in((args, kwargs))
        formula = module_formula(module) if module is not None else FUNCTION_FORMULAS.get(op)
        owner = owner_name(node)
        try:
            if formula is None:
                raise NotImplementedError(op)
            cost, supported = apply_formula(formula, module, inputs, args, kwargs, owner, op), True
        except NotImplementedError:  # no formula, or none for these arguments (tensor indexing)
            cost, supported = self._unsupported(node, op, args, kwargs, module), False
        params = self.params.count(module, args, kwargs)
        feeding = [n for n in node.all_input_nodes
                   if any(not isinstance(t, ParamSpec) for t in tensors_in(self._env[n]))]
        sources = [self._source.get(n, MODEL_INPUT) for n in feeding]
        if state_only and inputs:  # fed parameters or buffers only
            sources = [STATE] * len(inputs)
        carried = {id(t): self._batched.get(n, False) for n in feeding for t in tensors_in(self._env[n])}
        carries = self._carries_batch(node, [carried.get(id(t), False) for t in inputs])
        self._carrying.append(carries)
        # shown per sample when it carries the batch as its first dimension (not merged, not reduced)
        inputs_batched = [carried.get(id(t), False) and self._leads_with_batch(t) for t in inputs]
        outs = tensors_in(cost.out)
        batched = carries and bool(outs) and self._leads_with_batch(outs[0])
        parts = [sorted(self._parts[n]) if n in self._parts else None for n in feeding]
        state = [t for t in tensors_in((args, kwargs)) if isinstance(t, ParamSpec)]
        self.records.append(OpRecord(owner, op, inputs, sources, cost, params, supported, module,
                                     parts if any(p is not None for p in parts) else None, node, state,
                                     inputs_batched, batched))
        return cost.out

    def _leads_with_batch(self, spec: TensorSpec) -> bool:
        return len(spec.shape) > 0 and (self.batch is None or same_size(spec.shape[0], self.batch))

    def _carries_batch(self, node: fx.Node, inputs_carry: list[bool]) -> bool:
        """A value carries the batch (depends on the model input) when a tensor input does, or when
        its sizes come from one (``class_token.expand(x.shape[0], -1, -1)``); parameters and buffers
        alone make none."""
        if any(inputs_carry):
            return True
        return any(self._batched.get(n, False) for n in node.all_input_nodes
                   if not tensors_in(self._env[n]))

    def _unsupported(self, node: fx.Node, op: str, args: tuple, kwargs: dict, module: Optional[nn.Module]) -> Cost:
        """No formula: get the output shape from a meta-device run, and cost nothing we cannot know."""
        kwargs = {k: v for k, v in kwargs.items() if k not in ("_fn", "inplace")}
        try:
            meta_args, meta_kwargs = as_meta(args), as_meta(kwargs)
            if module is not None:
                runner = module if all(p.is_meta for p in module.parameters()) else copy.deepcopy(module).to("meta")
                out = runner(*meta_args, **meta_kwargs)
            elif node.op == "call_method":
                out = getattr(meta_args[0], str(node.target))(*meta_args[1:], **meta_kwargs)
            else:
                out = node.target(*meta_args, **meta_kwargs)
        except ArchstatError:
            raise ArchstatError(f"op {op} at layer {owner_name(node) or '<root>'} has no formula, "
                                f"and symbolic mode needs one") from None
        except Exception as exc:
            raise ArchstatError(f"op {op} at layer {owner_name(node) or '<root>'} has no formula and fails "
                                f"on meta tensors: {message_line(exc)}") from None
        alloc, new_bytes = aliasing(out, leaves((meta_args, meta_kwargs), torch.Tensor))
        return Cost(out=as_spec(out), kind="unsupported", alloc=alloc, new_bytes=new_bytes)
