"""One small pure function per op: (hyper-parameters, input specs) -> :class:`Cost`.

Two registries: ``MODULE_FORMULAS`` keyed by ``nn.Module`` class (looked up along the MRO, so a
subclass that keeps its parent's ``forward`` is costed as the parent) and ``FUNCTION_FORMULAS``
keyed by a normalised function name (``add`` for ``+``, ``torch.add`` and ``Tensor.add_``).
The formulas never run the op: output shapes come from arithmetic, which is why the same code
runs on sympy symbols.  Counting conventions (what a "flop" is) live in ``conventions.py``; a
formula only reports the convention-free facts: MACs, the op kind and a few work counts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from torch import nn

from archstat.errors import ArchstatError
from archstat.spec import Size, TensorSpec, leaves


class ShapeError(ArchstatError):
    """An input the op cannot take (too small, wrong channel count).  The engine adds the layer."""


@dataclass
class Cost:
    """What one op call costs, convention-free.

    ``kind`` groups ops the way the counting conventions need (``conv``, ``linear``, ``matmul``,
    ``pool``, ``adaptive_pool``, ``batch_norm``, ``norm``, ``activation``, ``elementwise``,
    ``dropout``, ``view``, ``copy``, ``concat``, ``reduce``, ``identity``, ``upsample``).
    ``work`` holds the counts conventions price: ``window`` (pooling elements read per output
    element), ``affine`` (norm has a learnable scale/shift).  ``alloc`` is False for views,
    in-place ops and ops that return their input; ``new_bytes`` is False for the last two only,
    whose output is the input's memory and so adds nothing to the lecture's memory column.
    """

    out: Any  # TensorSpec, or a tuple of them (split/chunk)
    kind: str
    macs: Size = 0
    kernel: Optional[list] = None
    stride: Optional[list] = None
    padding: Any = None
    alloc: bool = True
    new_bytes: bool = True
    work: dict = field(default_factory=dict)
    hparams: dict = field(default_factory=dict)


ModuleFormula = Callable[[nn.Module, list], Cost]
FunctionFormula = Callable[[tuple, dict], Cost]

MODULE_FORMULAS: dict[type, ModuleFormula] = {}
FUNCTION_FORMULAS: dict[str, FunctionFormula] = {}


def register_module(*types: type) -> Callable[[ModuleFormula], ModuleFormula]:
    def deco(fn: ModuleFormula) -> ModuleFormula:
        for t in types:
            MODULE_FORMULAS[t] = fn
        return fn

    return deco


def register_function(*names: str) -> Callable[[FunctionFormula], FunctionFormula]:
    def deco(fn: FunctionFormula) -> FunctionFormula:
        for n in names:
            FUNCTION_FORMULAS[n] = fn
        return fn

    return deco


def module_formula(module: nn.Module) -> Optional[ModuleFormula]:
    """The formula for ``module``'s class or the nearest registered base class.

    A subclass that overrides ``forward`` computes something else, so it gets no formula and is
    traced through instead (thop's exact-type lookup misses subclasses; blind isinstance would
    mis-cost them).
    """
    for cls in type(module).__mro__:
        if cls in MODULE_FORMULAS:
            return MODULE_FORMULAS[cls] if type(module).forward is cls.forward else None
    return None


def tensors_in(values: Any) -> list[TensorSpec]:
    """The TensorSpecs inside (possibly nested) args, in order."""
    return leaves(values, TensorSpec)


# Importing the op families fills the registries.
from archstat.formulas import activation, conv, linear, norm, pool, tensor_ops  # noqa: E402,F401
