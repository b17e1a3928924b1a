"""Trace through the functions ``torch.fx.wrap`` keeps as opaque calls.

``torch.fx.wrap`` makes a function a leaf of every fx trace: torchvision wraps Swin's
``shifted_window_attention``, ``_get_relative_position_bias`` and ``_patch_merging_pad`` because
their bodies branch on sizes (``if window_size[0] >= pad_H``), which a symbolic trace cannot
decide.  A leaf without a formula would be an unsupported row.  But the interpreter knows every
size when it reaches the call, so the body can be traced there: each tensor argument is a
placeholder carrying a meta tensor of its shape, every node of the body is evaluated on meta
tensors as it is created, and a branch on a size takes the side the sizes choose.  The body's
nodes (plain torch ops: pad, roll, linear, matmul, softmax, indexing ...) are then spliced into
the model's graph in place of the call, where their own formulas cost them and the real run
checks them row by row, as for any op the trace saw directly.

Each branch taken leaves a :func:`take_branch` node in the graph: the same graph interpreted for
other sizes (another batch, symbolic ``N, H, W``) re-checks it, and a branch that would go the other
way (or that symbolic sizes cannot decide) is a one-line error, never a number for the wrong branch.
A body that branches on tensor values, or that cannot run on meta tensors, stays an opaque call,
flagged unsupported as before.
"""
from __future__ import annotations

import inspect
import operator
from typing import Any, Optional

import torch
import torch.fx as fx
from torch import nn

from archstat.errors import ArchstatError


class _Unknown:
    """A node whose value the meta run could not give (a branch on it cannot be decided)."""


UNKNOWN = _Unknown()


def is_wrapped_call(node: fx.Node) -> bool:
    """A call that ``torch.fx.wrap`` kept opaque, to a Python function whose body can be traced."""
    return node.op == "call_function" and bool(node.meta.get("is_wrapped")) and inspect.isfunction(node.target)


def take_branch(condition: Any, taken: bool, where: str) -> None:
    """Raise unless ``condition`` (a size comparison) still goes the way the trace took it.

    Why: the spliced body holds only the side of each ``if`` that the traced sizes chose."""
    try:
        holds = bool(condition) == taken
    except TypeError:  # a sympy relation in N, H, W that no single branch fits
        raise ArchstatError(f"{where} branches on sizes ({condition}) that symbolic mode cannot decide") from None
    if not holds:
        raise ArchstatError(f"{where} takes another branch at these sizes than where it was traced: "
                            f"analyse the model again for them")


def setitem(x: torch.Tensor, key: Any, value: Any) -> torch.Tensor:
    """``x[key] = value`` as a call that returns ``x``.  Why: fx's Proxy has no item assignment, and
    the row needs an output, the written tensor itself (in place: nothing allocated)."""
    x[key] = value
    return x


class _BodyProxy(fx.Proxy):
    """A proxy that records ``x[key] = value`` (Swin builds its shifted-window mask that way)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        self.tracer.create_proxy("call_function", setitem, (self, key, value), {})


class _BodyTracer(fx.Tracer):
    """Traces one function body with every value known: each node is run on meta tensors."""

    def __init__(self, where: str) -> None:
        super().__init__(autowrap_modules=(), autowrap_functions=())
        self.graph, self.root, self.tensor_attrs, self.where = fx.Graph(), nn.Module(), {}, where

    def create_node(self, kind: str, target: Any, args: tuple, kwargs: dict, name: Optional[str] = None,
                    type_expr: Optional[Any] = None) -> fx.Node:
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        if kind in ("call_function", "call_method"):
            node.meta["value"] = _evaluate(node)
        return node

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _BodyProxy(node, self)

    def to_bool(self, obj: fx.Proxy) -> bool:
        value = obj.node.meta.get("value", UNKNOWN)
        if value is UNKNOWN or isinstance(value, torch.Tensor):  # a branch on tensor values: untraceable
            raise ArchstatError(f"{self.where} branches on a value the sizes do not determine")
        taken = bool(value)
        self.create_proxy("call_function", take_branch, (obj, taken, self.where), {})
        return taken


def _evaluate(node: fx.Node) -> Any:
    """``node``'s value from its inputs' meta values (UNKNOWN when an input is unknown or it fails)."""
    inputs = [n.meta.get("value", UNKNOWN) for n in node.all_input_nodes]
    if any(v is UNKNOWN for v in inputs):
        return UNKNOWN
    args = fx.node.map_arg(node.args, lambda n: n.meta["value"])
    kwargs = fx.node.map_arg(node.kwargs, lambda n: n.meta["value"])
    try:
        if node.op == "call_method":
            return getattr(args[0], str(node.target))(*args[1:], **kwargs)
        return node.target(*args, **kwargs)
    except Exception:  # noqa: BLE001 - unknown here; only a branch on it stops the trace
        return UNKNOWN


def splice_body(graph: fx.Graph, call: fx.Node, values: dict[fx.Node, Any]) -> bool:
    """Replace ``call`` (see :func:`is_wrapped_call`) by its traced body, right after it in ``graph``.

    ``values`` gives the meta value (a meta tensor, an int) of every node ``call`` reads.  Returns
    False, leaving the graph as it was, where the body cannot be traced or its result is used other
    than whole or by constant indices.  ``call`` itself is left without users for the caller to skip."""
    where = f"{getattr(call.target, '__name__', 'a wrapped function')} (fx.wrap)"
    tracer = _BodyTracer(where)
    placeholders: dict[fx.Node, fx.Node] = {}

    def proxy(n: fx.Node) -> fx.Proxy:
        p = tracer.create_proxy("placeholder", f"arg{len(placeholders)}", (), {})
        p.node.meta["value"] = values[n]
        placeholders[p.node] = n
        return p

    args = fx.node.map_arg(call.args, proxy)
    kwargs = fx.node.map_arg(call.kwargs, proxy)
    try:
        result = call.target(*args, **kwargs)
    except Exception:  # noqa: BLE001 - untraceable Python in the body: the call stays opaque
        return False
    outs = _result_nodes(result, call)
    if outs is None or any(n.op == "get_attr" for n in tracer.graph.nodes):  # a constant the model lacks
        return False
    mapping: dict[fx.Node, fx.Node] = dict(placeholders)
    stack = call.meta.get("nn_module_stack")
    cursor = call
    for n in tracer.graph.nodes:
        if n.op == "placeholder":
            continue
        with graph.inserting_after(cursor):
            copy = graph.node_copy(n, lambda a: mapping[a])
        copy.meta.pop("value", None)
        if stack is not None:
            copy.meta["nn_module_stack"] = dict(stack)  # rows belong to the module that made the call
        mapping[n] = cursor = copy
    for user, out in outs:
        user.replace_all_uses_with(mapping[out])
        if user is not call:
            graph.erase_node(user)
    return True


def _result_nodes(result: Any, call: fx.Node) -> Optional[list[tuple[fx.Node, fx.Node]]]:
    """(node of the main graph to replace, body node replacing it): the call itself for a single
    result, each ``call[k]`` for a tuple; None where the result cannot be mapped."""
    if isinstance(result, fx.Proxy):
        return [(call, result.node)]
    if not isinstance(result, (tuple, list)) or not all(isinstance(r, fx.Proxy) for r in result):
        return None
    pairs = []
    for user in call.users:
        if not (user.target is operator.getitem and len(user.args) == 2 and isinstance(user.args[1], int)):
            return None
        pairs.append((user, result[user.args[1]].node))
    return pairs

