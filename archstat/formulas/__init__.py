"""One small pure function per op: (hyper-parameters, input specs) -> :class:`Cost`.

Two registries: ``MODULE_FORMULAS`` keyed by ``nn.Module`` class (looked up along the MRO, so a
subclass that keeps its parent's ``forward`` is costed as the parent) and ``FUNCTION_FORMULAS``
keyed by a normalised function name (``add`` for ``+``, ``torch.add`` and ``Tensor.add_``).
The formulas never run the op: output shapes come from arithmetic, which is why the same code
runs on sympy symbols.  Counting conventions (what a "flop" is) live in ``conventions.py``; a
formula only reports the convention-free facts: MACs, the op kind and a few work counts.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional

from torch import nn

from archstat.errors import ArchstatError
from archstat.spec import Size, TensorSpec, leaves


class ShapeError(ArchstatError):
    """An input the op cannot take (too small, wrong channel count).  The engine adds the layer."""


@dataclass
class Cost:
    """What one op call costs, convention-free.

    ``kind`` groups ops the way the counting conventions need (one of :data:`KINDS`).
    ``macs`` are multiply-accumulates (priced for the matrix kinds only).
    ``work`` holds the counts conventions price: ``window`` (pooling elements read per output
    element), ``affine`` (norm has a learnable scale/shift), and ``transient_bytes``: memory an op
    made of several kernels holds only while it runs (a Swish's sigmoid before the multiply),
    which the inference peak adds for that op; and ``saved``: what autograd keeps for backward,
    as a list of ``("in", k)`` (the k-th tensor input), ``("out",)`` (the output; ``("out", k)``:
    output k of several) and ``("new", numel, dtype)`` (a tensor the op makes), when the kind's default (see
    ``archstat.analyses.memory``) does not fit; and ``bwd_products``: for a layer made of several
    matrix products (``nn.MultiheadAttention``), the products its backward computes, as
    ``(macs, k)``: needed when tensor input ``k`` needs a gradient, or always (``k = -1``, the weights');
    ``storage_bytes``: the bytes of the storage a single output lives in when larger than its values
    (the CPU's col2im sizes its result's storage like its input).  ``alloc`` is False for views,
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


# The op kinds the counting conventions, memory and backward estimates know how to price.  A formula
# must return one of them: an unknown kind would be counted as a silent zero by every convention.
KINDS: dict[str, str] = {
    "conv": "convolution: macs = C_out*H_out*W_out*(C_in/groups)*kh*kw; set kernel/stride/padding",
    "conv_transpose": "transposed convolution (macs as for conv, over the input grid)",
    "linear": "fully connected: macs = in*out per row",
    "matmul": "matrix product; hparams['shapes'] = (left shape, right shape)",
    "recurrent": "nn.LSTM / GRU / RNN: macs = the gates' matrix products, all layers, directions and steps; "
                 "work['pointwise'] = the cells' elementwise ops; hparams['kernel'] ('mkldnn' fused or 'aten')",
    "attention": "scaled dot-product attention: macs = B*H*L*S*(E+Ev); hparams['kernel'] names the kernel",
    "pool": "max/avg pooling; work['window'] = elements read per output element",
    "adaptive_pool": "adaptive pooling; work['window'], hparams['mode'] ('avg'|'max'), hparams['output_size']",
    "batch_norm": "batch norm; work['affine'], hparams['training']",
    "group_norm": "group norm; work['affine']",
    "layer_norm": "layer norm; work['affine']",
    "instance_norm": "instance norm; work['affine']",
    "lrn": "local response norm; work['window']",
    "activation": "elementwise nonlinearity, shape kept; hparams['fn'] names it",
    "elementwise": "elementwise arithmetic (add, mul, ...); hparams['fn'] names it",
    "dropout": "dropout while training; hparams['p']",
    "reduce": "a reduction (sum, mean, max over dims); work['elements'] = elements read",
    "upsample": "interpolation; hparams['mode']",
    "concat": "torch.cat / stack: a new tensor",
    "copy": "a new tensor that moves or fills values: contiguous()/reshape copies, pad, pixel shuffle, flip, *_like",
    "view": "a view of the input (alloc=False): reshape, permute, slicing",
    "identity": "returns its input (alloc=False, new_bytes=False): eval dropout, nn.Identity",
    "unsupported": "no formula: cost unknown, flagged (set by the engine, not by formulas)",
}

class CallInputs(list):
    """What a module formula gets as ``inputs``: the TensorSpecs of the call's tensor arguments, in
    order (a plain list to the formula that only needs them), plus the call itself: ``args`` and
    ``kwargs`` as the module was called, tensors replaced by TensorSpecs (the same spec object
    where the same tensor is passed twice, ``mha(x, x, x)``), as a function formula gets them.

    Why: what a layer computes can depend on how it is called, not only on how it was built
    (``need_weights=False`` or a mask passed to ``nn.MultiheadAttention``, an initial state to
    ``nn.LSTM``).
    """

    def __init__(self, inputs: list, args: tuple = (), kwargs: Optional[dict] = None) -> None:
        super().__init__(inputs)
        self.args, self.kwargs = tuple(args), dict(kwargs or {})


ModuleFormula = Callable[[nn.Module, list], Cost]
FunctionFormula = Callable[[tuple, dict], Cost]

MODULE_FORMULAS: dict[type, ModuleFormula] = {}
FUNCTION_FORMULAS: dict[str, FunctionFormula] = {}


def register_module(*types: type) -> Callable[[ModuleFormula], ModuleFormula]:
    """Decorator: ``formula(module, inputs) -> Cost`` prices every call of a module of these types.

    ``inputs`` are the :class:`TensorSpec` s of the call's tensor arguments (shapes may be sympy
    expressions under ``symbolic=True``: use arithmetic, not ``int()``); the engine passes a
    :class:`CallInputs`, whose ``args`` / ``kwargs`` are the call's own arguments.  A registered module is a
    leaf of the trace: its insides are not costed op by op.  Also the public extension point
    (``archstat.register_module``) for a user's own layer; ``archstat validate`` then checks the
    formula's shape and count against the real module.
    """

    def deco(fn: ModuleFormula) -> ModuleFormula:
        for t in types:
            MODULE_FORMULAS[t] = fn
        return fn

    return deco


def register_function(*names: str) -> Callable[[FunctionFormula], FunctionFormula]:
    """Decorator: ``formula(args, kwargs) -> Cost`` prices calls of these functions and methods.

    ``names`` are normalised op names, as the table's op column prints them (``special_erf`` for
    ``torch.special.erf``, ``add`` for ``+`` / ``torch.add`` / ``Tensor.add_``).  ``args`` and
    ``kwargs`` are the call's own, with tensors replaced by :class:`TensorSpec` s; ``kwargs["_fn"]``
    holds the op name and ``kwargs["inplace"]`` is True for a trailing-underscore call.
    """

    def deco(fn: FunctionFormula) -> FunctionFormula:
        for n in names:
            FUNCTION_FORMULAS[n] = fn
        return fn

    return deco


@contextlib.contextmanager
def registered(modules: Optional[Mapping[type, ModuleFormula]] = None,
               functions: Optional[Mapping[str, FunctionFormula]] = None) -> Iterator[None]:
    """Formulas that hold only inside the ``with`` block (a notebook, a test), then the registries
    are exactly as before, including any formula these replaced."""
    saved = (dict(MODULE_FORMULAS), dict(FUNCTION_FORMULAS))
    try:
        MODULE_FORMULAS.update(modules or {})
        FUNCTION_FORMULAS.update(functions or {})
        yield
    finally:
        for registry, before in zip((MODULE_FORMULAS, FUNCTION_FORMULAS), saved):
            registry.clear()
            registry.update(before)


def _all_specs(value: Any) -> bool:
    """A TensorSpec, or a non-empty (nested) tuple/list of them, where a None may stand for an
    output the layer does not compute (``MultiheadAttention(need_weights=False)``'s weights)."""
    if isinstance(value, (tuple, list)):
        return bool(leaves(value, TensorSpec)) and all(v is None or _all_specs(v) for v in value)
    return isinstance(value, TensorSpec)


def checked_cost(cost: Any, formula: Callable, where: str) -> Cost:
    """``cost`` if it is a Cost the conventions can price; otherwise a one-line ArchstatError.

    Guards the user extension point: a formula returning a tuple, a tensor, or an unknown kind
    would otherwise be priced as zero by every convention without a word.
    """
    name = getattr(formula, "__qualname__", repr(formula))
    if not isinstance(cost, Cost):
        raise ArchstatError(f"formula {name} for {where} returned {type(cost).__name__}, not archstat.Cost")
    if cost.kind not in KINDS or cost.kind == "unsupported":
        raise ArchstatError(f"formula {name} for {where} returned kind {cost.kind!r}; "
                            f"use one of: {', '.join(k for k in KINDS if k != 'unsupported')}")
    if not _all_specs(cost.out):
        raise ArchstatError(f"formula {name} for {where} must give out= a TensorSpec (or a tuple of them, nested "
                            f"as the layer returns them), e.g. inputs[0].with_shape(...)")
    for item in cost.work.get("saved") or ():
        if not (isinstance(item, (tuple, list)) and item and (
                (item[0] in ("in", "out") and len(item) == 2 and isinstance(item[1], int)) or tuple(item) == ("out",)
                or (item[0] == "new" and len(item) == 3))):
            raise ArchstatError(f"formula {name} for {where}: work['saved'] item {item!r} is not "
                                f"('in', k), ('out',), ('out', k) or ('new', numel, dtype)")
    return cost


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
from archstat.formulas import (activation, attention, casts, contraction, conv, elementwise, embedding, indexing, linear,  # noqa: E402,F401,E501
                               multihead,
                               norm, pad, pool, recurrent, reduce, resize, tensor_ops, unfold)
