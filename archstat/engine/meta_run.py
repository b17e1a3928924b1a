"""Fallback engine for models torch.fx cannot trace (data-dependent Python control flow).

A deep copy of the model moves to the meta device (the user's module is never touched) and runs
once on a meta tensor: shapes are real, storage is not.  Module hooks name each call and cost
the modules that have a formula; a TorchFunctionMode sees every functional op in between
(``torch.cat``, ``+``, ``F.relu`` ...).  The records are the same as the fx engine's, so
``analyze`` treats both alike.  Only numeric shapes are possible here: symbolic mode is fx-only.
Control flow that depends on tensor *values* sees meta tensors, which have none; such a model
gets a clear error.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Optional

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from archstat.engine.inputs import call_args
from archstat.errors import ArchstatError, message_line
from archstat.formulas import FUNCTION_FORMULAS, Cost, module_formula, tensors_in
from archstat.engine.records import OpRecord, ParamCounter, ParamSpec, aliasing, apply_formula
from archstat.spec import TensorSpec, leaves, rebuilt
from archstat.engine.trace import ALIASES

# Tensor methods that read metadata: not ops, never rows.
NOT_OPS = {"size", "dim", "numel", "shape", "dtype", "device", "is_contiguous", "stride", "data_ptr",
            "element_size", "requires_grad", "is_floating_point", "__get__", "__set__", "__len__", "__bool__",
            "__format__", "__repr__", "item", "tolist", "__getstate__", "__reduce_ex__", "grad_fn", "_is_view"}


def _spec(value: Any, memo: Optional[dict] = None) -> Any:
    """Tensors -> TensorSpecs (parameters -> ParamSpecs); with ``memo``, one spec per tensor, so
    that a tensor passed twice (``mha(x, x, x)``) is the same spec twice, as in the fx engine."""
    if memo is not None and isinstance(value, torch.Tensor) and id(value) in memo:
        return memo[id(value)]
    if isinstance(value, nn.Parameter):
        spec: Any = ParamSpec(tuple(value.shape), value.dtype, tensor=value)
    elif isinstance(value, torch.Tensor):
        spec = TensorSpec.of(value)
    elif isinstance(value, (list, tuple)):
        return rebuilt(value, (_spec(v, memo) for v in value))
    elif isinstance(value, dict):
        return {k: _spec(v, memo) for k, v in value.items()}
    else:
        return value
    if memo is not None:
        memo[id(value)] = spec
    return spec


def _tensors(value: Any) -> list[torch.Tensor]:
    return leaves(value, torch.Tensor)


def function_name(func: Any) -> tuple[str, bool]:
    raw = getattr(func, "__name__", str(func))
    if raw.startswith("__i") and raw.endswith("__"):  # __iadd__: in place
        return ALIASES.get(raw[3:-2], raw[3:-2]), True
    if raw.startswith("__r") and raw.endswith("__") and raw not in ("__repr__",):  # __radd__
        raw = raw[3:-2]
    raw = raw.strip("_") if raw.startswith("__") else raw
    inplace = raw.endswith("_")
    name = raw.rstrip("_")
    return ALIASES.get(name, name), inplace


class Recorder(TorchFunctionMode):
    """Sees every torch function call of a forward pass; records the functional ops between module
    calls (``validation.real_run`` subclasses it to replay the same instrumentation on real tensors)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = [""]
        self.inside_leaf = 0
        self.records: list[OpRecord] = []
        self.params = ParamCounter()
        self.producer: dict[int, int] = {}
        self.failed_at = ""

    def sources(self, tensors: list[torch.Tensor]) -> list[int]:
        return [self.producer.get(id(t), -1) for t in tensors if not isinstance(t, nn.Parameter)]

    def add(self, rec: OpRecord, outputs: Any) -> None:
        self.records.append(rec)
        for t in _tensors(outputs):
            self.producer[id(t)] = len(self.records) - 1

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name, inplace = function_name(func)
        try:
            out = func(*args, **kwargs)
        except Exception:
            # for the error message: `if x.sum() > 0` fails in Tensor.__bool__ on a meta tensor
            what = "Tensor.__bool__ (a Python branch on a tensor's value)" if name == "bool" else name
            self.failed_at = f"{what} in layer {self.stack[-1] or '<root>'}"
            raise
        if self.inside_leaf or name in NOT_OPS or not _tensors(out):
            return out
        spec_args, spec_kwargs = _spec(args), _spec(kwargs)
        inputs = [t for t in tensors_in((spec_args, spec_kwargs)) if not isinstance(t, ParamSpec)]
        formula = FUNCTION_FORMULAS.get(name)
        extra = {"_fn": name, **({"inplace": True} if inplace else {})}
        try:
            if formula is None:
                raise NotImplementedError(name)
            cost, ok = apply_formula(formula, None, inputs, spec_args, {**spec_kwargs, **extra}, self.stack[-1], name), True
        except NotImplementedError:  # no formula (for these arguments): the real output gives the shape
            alloc, new_bytes = aliasing(out, _tensors((args, kwargs)))
            cost, ok = Cost(out=_spec(out), kind="unsupported", alloc=alloc, new_bytes=new_bytes), False
        params = self.params.count(None, spec_args, spec_kwargs)
        state = [t for t in tensors_in((spec_args, spec_kwargs)) if isinstance(t, ParamSpec)]
        self.add(OpRecord(self.stack[-1], name, inputs, self.sources(_tensors((args, kwargs))), cost, params, ok,
                          state_inputs=state), out)
        return out


def meta_records(model: nn.Module, specs: list[TensorSpec], kwargs: Optional[dict[str, TensorSpec]] = None,
                 why: str = "") -> list[OpRecord]:
    """Records of one meta-device forward pass of a copy of ``model`` (in its current mode) on inputs
    ``specs`` (positional) and ``kwargs`` (by name).

    ``why`` is fx's reason, quoted in the error when this engine cannot help either."""
    kwargs = kwargs or {}
    call_args(model, specs, kwargs)  # a missing or unknown input is one line before the copy is made
    if any(not isinstance(s, int) for spec in [*specs, *kwargs.values()] for s in spec.shape):
        raise ArchstatError(f"{type(model).__name__} cannot be traced with torch.fx ({why}), and symbolic mode needs fx")
    clone = copy.deepcopy(model).to("meta")
    names = {id(m): n for n, m in clone.named_modules()}
    rec = Recorder()
    handles = []

    def pre(module: nn.Module, args: tuple, kwargs: dict) -> None:
        rec.stack.append(names[id(module)])
        formula = module_formula(module)
        if formula is not None and not rec.inside_leaf and module is not clone:
            memo: dict = {}
            spec_args, spec_kwargs = _spec(args, memo), _spec(kwargs, memo)
            inputs = [t for t in tensors_in((spec_args, spec_kwargs)) if not isinstance(t, ParamSpec)]
            module._archstat_pending = (apply_formula(formula, module, inputs, spec_args, spec_kwargs,
                                                      names[id(module)], type(module).__name__), inputs,
                                        rec.sources(_tensors((args, kwargs))))
            rec.inside_leaf += 1

    def post(module: nn.Module, args: tuple, output: Any) -> None:
        rec.stack.pop()
        pending = getattr(module, "_archstat_pending", None)
        if pending is not None:
            rec.inside_leaf -= 1
            del module._archstat_pending
            cost, inputs, sources = pending
            rec.add(OpRecord(names[id(module)], type(module).__name__, inputs, sources, cost,
                             rec.params.count(module), True, module), output)

    for m in clone.modules():  # hooks on our copy only; the user's model never sees them
        handles += [m.register_forward_pre_hook(pre, with_kwargs=True), m.register_forward_hook(post)]

    def meta(spec: TensorSpec) -> torch.Tensor:
        return torch.empty(spec.shape, dtype=spec.dtype, device="meta")

    # made before the recorder starts: it would record their torch.empty as ops
    args, named = [meta(s) for s in specs], {k: meta(v) for k, v in kwargs.items()}
    try:
        with rec, torch.no_grad():
            clone(*args, **named)
    except ArchstatError:
        raise
    except Exception as exc:
        first = message_line(exc)
        where = f" at op {rec.failed_at}" if rec.failed_at else ""
        raise ArchstatError(f"cannot trace {type(model).__name__}: torch.fx fails ({why}) and so does a meta-device "
                            f"run{where} ({first})") from None
    finally:
        for h in handles:
            h.remove()
    # a functional call's weights are the copy's: name the caller's own, so that the rows' weights
    # (gradients, parameter counts) are the model's, as the fx engine's are
    own = {id(c): p for c, p in zip(clone.parameters(), model.parameters())}
    for r in rec.records:
        r.state_inputs = [replace(s, tensor=own.get(id(s.tensor), s.tensor)) for s in r.state_inputs]
    return rec.records
