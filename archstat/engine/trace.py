"""Model -> torch.fx graph of op calls, without running the model.

The tracer stops at every module that has a formula (``Conv2d``, ``BatchNorm2d`` ...), and at any
other ``torch.nn`` module (which then shows up as an unsupported row rather than vanishing); it
traces through everything else, so functional ops (``torch.flatten``, ``+``, ``F.relu``) become
nodes of their own.  Tracing needs no tensors at all: this is why analysing VGG-16 allocates
nothing, and why shape arithmetic (``x.size(0)``) can be evaluated on sympy symbols.

The user's module is not changed: ``training`` flags are set for the requested mode and restored
afterwards, and fx's temporary patches are undone by fx itself.
"""
from __future__ import annotations

import contextlib
import operator
from typing import Any, Iterable, Iterator, Optional

import torch.fx as fx
from torch import nn

from archstat.errors import ArchstatError, message_line
from archstat.formulas import module_formula

# Python operators fx records for `+`, `+=`, `*`, `@` ...: their normalised op names.
OPERATOR_NAMES = {
    operator.add: "add", operator.iadd: "add", operator.sub: "sub", operator.isub: "sub",
    operator.mul: "mul", operator.imul: "mul", operator.truediv: "div", operator.itruediv: "div",
    operator.floordiv: "floordiv", operator.matmul: "matmul", operator.neg: "neg", operator.pow: "pow",
    operator.getitem: "getitem",
}
INPLACE_OPERATORS = {operator.iadd, operator.isub, operator.imul, operator.itruediv}
ALIASES = {"concat": "cat", "concatenate": "cat", "true_divide": "div", "divide": "div", "multiply": "mul",
           "subtract": "sub", "swapaxes": "transpose", "swapdims": "transpose"}  # MaxViT swaps axes


class TraceError(ArchstatError):
    """torch.fx cannot trace this forward (data-dependent control flow, unsupported Python)."""


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            return False
        return module_formula(m) is not None or super().is_leaf_module(m, qualname)


@contextlib.contextmanager
def training_mode(model: nn.Module, training: bool) -> Iterator[None]:
    """Set every submodule's ``training`` flag for the duration, then restore each one as it was."""
    saved = [(m, m.training) for m in model.modules()]
    try:
        for m, _ in saved:
            m.training = training
        yield
    finally:
        for m, flag in saved:
            m.training = flag


def trace_graph(model: nn.Module, defaults: Optional[dict[str, Any]] = None) -> fx.Graph:
    """The fx graph of ``model.forward`` in the model's current mode (see :func:`training_mode`).

    ``defaults``: arguments the caller leaves at their default (``mask=None``), traced as that value
    (fx's ``concrete_args``).  Traced as placeholders, a ``None`` would stand for a tensor, and ``if
    mask is not None:`` would take the branch the real call never takes (a row of ops that do not
    run, or a crash on ``None.float()``).  fx guards such a value with an assertion node; the guards
    are removed here (they are not ops of the model) and the placeholder keeps the argument's name."""
    try:
        graph = _Tracer().trace(model, concrete_args=defaults or None)
    except Exception as exc:  # fx raises many types; all mean "this forward is not traceable"
        first = message_line(exc)
        raise TraceError(f"cannot trace {type(model).__name__} with torch.fx: {first}") from None
    if defaults:
        _drop_guards(graph, set(defaults))
    return graph


def fixed_defaults(params: list[tuple[str, bool, Any]], given: int, keywords: Iterable[str]) -> dict[str, Any]:
    """Of ``forward``'s ``params`` (``inputs.signature_params``), those the call leaves at a default
    that is not a tensor (``None``, a bool, a number, a string): after the ``given`` positional inputs
    and not among the ``keywords``.  These are traced as values (``trace_graph``)."""
    named = set(keywords)
    return {name: default for name, has_default, default in params[given:]
            if has_default and name not in named and (default is None or isinstance(default, (bool, int, float, str)))}


def _drop_guards(graph: fx.Graph, names: set[str]) -> None:
    """Remove fx's checks that a fixed argument keeps its value, and only those: ``_assert_is_none(arg)``
    and ``torch._assert(arg == value)`` on the placeholders fx made for ``names`` (named ``mask_1``,
    renamed back here).  The model's own assertions stay rows, as without fixed arguments."""
    renamed = {f"{name}_1": name for name in names}  # fx's name for the one placeholder of a plain value
    for ph in [n for n in graph.nodes if n.op == "placeholder" and n.target in renamed]:
        for user in list(ph.users):
            if user.op != "call_function":
                continue
            name = getattr(user.target, "__name__", "")
            if name == "_assert_is_none" and not user.users:
                graph.erase_node(user)
            elif name == "eq" and all(getattr(u.target, "__name__", "") == "_assert" and not u.users
                                      for u in user.users):
                for check in list(user.users):
                    graph.erase_node(check)
                graph.erase_node(user)
        ph.target = renamed[ph.target]


def copy_graph(graph: fx.Graph) -> tuple[fx.Graph, dict[fx.Node, fx.Node]]:
    """A copy of ``graph`` to instrument (marks, clocks), and each original node's copy: the rows'
    own graph stays as traced, since every check of one command runs it."""
    copy = fx.Graph()
    copies: dict[fx.Node, fx.Node] = {}
    copy.output(copy.graph_copy(graph, copies))
    return copy, copies


def op_name(node: fx.Node) -> tuple[str, bool]:
    """Normalised op name of a call_function / call_method node, and whether it is in place.

    ``+``, ``+=``, ``torch.add`` and ``Tensor.add_`` are all ``add``; ``relu_`` is ``relu`` in place.
    """
    target = node.target
    if node.op == "call_function" and target in OPERATOR_NAMES:
        return OPERATOR_NAMES[target], target in INPLACE_OPERATORS
    raw = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    inplace = raw.endswith("_") and not raw.endswith("__")
    name = raw.rstrip("_") if inplace else raw.strip("_")
    return ALIASES.get(name, name), inplace


def owner_name(node: fx.Node) -> str:
    """Qualified name of the module that owns this call ('' for the root's own code)."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack")
    if stack:
        return list(stack.values())[-1][0]
    return ""
