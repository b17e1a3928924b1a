"""What the interpreter records per op call, and the helpers it shares with the meta-device engine.

:class:`OpRecord` is one op call (who owns it, what went in, what it cost); :class:`ParamSpec` a
parameter or buffer read with ``get_attr``; :func:`apply_formula` runs a formula and checks what it
returns; :class:`ParamCounter` counts each parameter once; ``as_meta`` / ``as_spec`` / ``aliasing``
serve the fallback that runs an op without a formula on meta tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
import torch.fx as fx
from torch import nn

from archstat.errors import ArchstatError, first_line
from archstat.formulas import CallInputs, Cost, ShapeError, checked_cost, tensors_in
from archstat.spec import TensorSpec, is_symbolic, leaves, rebuilt


@dataclass(frozen=True)
class ParamSpec(TensorSpec):
    """A parameter or buffer read with ``get_attr``; ``tensor`` lets us count it once."""

    tensor: Optional[torch.Tensor] = field(default=None, compare=False)


@dataclass
class OpRecord:
    """One op call: who owns it, what went in, and what it cost."""

    name: str
    op: str
    inputs: list  # TensorSpecs fed in, in argument order
    sources: list  # record index of each tensor input's producer (-1: the model input)
    cost: Cost
    params: int
    supported: bool
    module: Optional[nn.Module] = None
    # per source: which outputs of a multi-output producer this op reads (indices into
    # leaves(producer.cost.out)), or None for all of them / a single-output producer
    source_parts: Optional[list] = None
    node: Optional[fx.Node] = None  # the fx node of this call (fx engine; None for the meta engine)
    # the model state (``get_attr`` parameters and buffers) this call reads as arguments: a functional
    # call's weights, and the bytes a kernel reads besides its activations
    state_inputs: list = field(default_factory=list)
    # per input (``inputs`` order): does it carry the batch (flows from the model input)?  A value
    # made from parameters and buffers alone (``a * b``, ``weight * scale``) does not
    inputs_batched: Optional[list] = None
    batched: bool = True  # does the output carry the batch as its first dimension (shown per sample)

    def input_batched(self, k: int) -> bool:
        """Whether input ``k`` carries the batch (True where unknown, as for the meta engine)."""
        return True if self.inputs_batched is None or k >= len(self.inputs_batched) else self.inputs_batched[k]


# What a row's ``sources`` hold besides row indices: the model input, or the model's own state
# (a parameter or buffer fed to a layer, as Swin V2's coordinate table): no activation, no gradient.
MODEL_INPUT, STATE = -1, -2


def as_meta(value: Any) -> Any:
    if isinstance(value, TensorSpec):
        if any(is_symbolic(s) for s in value.shape):
            raise ArchstatError("symbolic")
        return torch.empty(tuple(int(s) for s in value.shape), dtype=value.dtype, device="meta")
    if isinstance(value, (list, tuple)):
        return rebuilt(value, (as_meta(v) for v in value))
    if isinstance(value, dict):
        return {k: as_meta(v) for k, v in value.items()}
    return value


def aliasing(out: Any, inputs: list[torch.Tensor]) -> tuple[bool, bool]:
    """``(alloc, new_bytes)`` of an op without a formula, read off its meta-device run: returning an
    input (torchvision's stochastic_depth in eval) allocates nothing and adds no bytes; returning
    views of the inputs allocates nothing.  Anything else is taken to allocate."""
    outs = leaves(out, torch.Tensor)
    if outs and all(any(o is t for t in inputs) for o in outs):
        return False, False
    bases = {id(t) for t in inputs} | {id(t._base) for t in inputs if t._base is not None}
    if outs and all(o._base is not None and id(o._base) in bases for o in outs):
        return False, True
    return True, True


def as_spec(value: Any) -> Any:
    """``value`` (a meta run's output) with every tensor a :class:`TensorSpec`.  A named output keeps its
    field names (``torch.return_types.sort``'s ``values`` and ``indices``, a user's namedtuple), so
    that ``x.sort(-1).values`` reads the same part as on a real run."""
    if isinstance(value, torch.Tensor):
        return TensorSpec.of(value)
    if isinstance(value, (list, tuple)):
        parts = [as_spec(v) for v in value]
        # a named output (a namedtuple, a torch.return_types structseq: both list ``__match_args__``) keeps its
        # own type, which holds specs as well as tensors; any other sequence becomes a tuple
        return rebuilt(value, parts) if getattr(type(value), "__match_args__", None) else tuple(parts)
    return value


def apply_formula(formula: Any, module: Optional[nn.Module], inputs: list, args: tuple, kwargs: dict,
                  owner: str, op: str) -> Cost:
    """Run a formula and check what it returns (:func:`checked_cost`).

    A module formula gets ``inputs`` as a :class:`CallInputs` carrying the call's ``args`` and
    ``kwargs``, so that it sees how the layer was called, as a function formula does.

    A ShapeError becomes a one-line error that names the layer and its input.  A formula from
    outside archstat (``archstat.register_module``) that fails in any other way is named in a
    one-line error too; archstat's own formulas keep their traceback, which would be our bug.
    """
    where = f"layer {owner or '<root>'} ({op})"
    try:
        # a module formula sees the call too (``need_weights=False``, a mask, an initial state)
        cost = formula(module, CallInputs(inputs, args, kwargs)) if module is not None else formula(args, kwargs)
    except ShapeError as exc:
        shown = "x".join(str(s) for s in inputs[0].sample_shape) if inputs else "?"
        raise ArchstatError(f"{where}: {exc} [its input per sample: {shown}]") from None
    except (NotImplementedError, ArchstatError):
        raise
    except Exception as exc:
        if getattr(formula, "__module__", "").startswith("archstat."):
            raise
        name = getattr(formula, "__qualname__", repr(formula))
        raise ArchstatError(f"formula {name} for {where} failed: {first_line(exc)}") from None
    return checked_cost(cost, formula, where)


class ParamCounter:
    """Parameters first used by each call: a shared module or a tied weight counts once."""

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def count(self, module: Optional[nn.Module], args: tuple = (), kwargs: Optional[dict] = None) -> int:
        tensors = list(module.parameters()) if module is not None else [
            t.tensor for t in tensors_in((args, kwargs or {}))
            if isinstance(t, ParamSpec) and isinstance(t.tensor, nn.Parameter)]
        total = 0
        for p in tensors:
            if id(p) not in self._seen:
                self._seen.add(id(p))
                total += p.numel()
        return total


