"""A model's inputs, one home: parse them, give them a batch, bind them to ``forward``, fill them.

A model may take several inputs (``forward(image, tokens)``, ``forward(x, mask=None)``).  Each is
an :class:`InputSpec`: its shape per sample (the batch is prepended), its own dtype (None: the
analysis dtype, ``--dtype``), and for integer and bool inputs the bound ``high`` of the values the
real runs draw (``randint(0, high)``; without a bound they are zeros, a valid index for any
embedding or gather).  A real example tensor given through the Python API keeps its values, and
the real runs feed it as it is.

On the command line: ``--input 3x224x224 --input 77:int64 --input 77:int64:1000`` (SHAPE[:DTYPE[:HIGH]],
read by :mod:`archstat.engine.input_text`).
In Python, each input may be a per-sample shape, an :class:`InputSpec`, a batch-first
:class:`~archstat.spec.TensorSpec` or a tensor (meta tensors are enough; a batch-first input sets
the batch).  :func:`batch_specs` gives the engine its batch-first TensorSpecs, :func:`bind` maps
inputs to ``forward``'s arguments, :func:`example_inputs` builds the real tensors every real run
(validate, the backward and memory checks, profile's timing) feeds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

import torch

from archstat.engine.input_text import read_input
from archstat.errors import ArchstatError
from archstat.spec import TensorSpec


@dataclass(frozen=True)
class InputSpec:
    """One model input: shape per sample, dtype (None: the analysis dtype), value bound for integers.

    ``batch`` is set for an input given batch-first (a tensor or a TensorSpec); ``example`` holds a
    real tensor's values for the real runs."""

    shape: tuple
    dtype: Optional[torch.dtype] = None
    high: Optional[int] = None
    batch: Optional[int] = None
    example: Optional[torch.Tensor] = field(default=None, compare=False, repr=False)


def parse_input(text: str) -> InputSpec:
    """``"3x227x227"`` -> ``InputSpec((3, 227, 227))``; ``"77:int64:1000"`` adds a dtype and a bound
    (:func:`archstat.engine.input_text.read_input` reads the text; a keyword name is refused here)."""
    read = read_input(text)
    if read.name is not None:
        raise ArchstatError(f"--input {text!r}: a keyword input (NAME=) is given by name, as kwargs")
    return InputSpec(read.shape, None if read.dtype is None else getattr(torch, read.dtype), read.high)


def as_input(value: Any, what: str = "input") -> InputSpec:
    """A per-sample shape, an InputSpec, a batch-first TensorSpec or a tensor -> an InputSpec."""
    if isinstance(value, InputSpec):
        return value
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            raise ArchstatError(f"{what}: a 0-d tensor has no batch dimension")
        example = None if value.is_meta else value.detach()
        return InputSpec(tuple(value.shape[1:]), value.dtype, batch=int(value.shape[0]), example=example)
    if isinstance(value, TensorSpec):
        if not value.shape:
            raise ArchstatError(f"{what}: a 0-d TensorSpec has no batch dimension")
        return InputSpec(tuple(value.shape[1:]), value.dtype, batch=value.shape[0])
    if isinstance(value, str):
        return parse_input(value)
    if isinstance(value, (tuple, list, torch.Size)) and all(isinstance(s, int) for s in value):
        return InputSpec(tuple(value))
    raise ArchstatError(f"{what}: expected a shape per sample, an InputSpec, a TensorSpec or a tensor, "
                        f"got {type(value).__name__}")


@dataclass(frozen=True)
class ModelInputs:
    """Every input of one model call: positional ones in order, keyword ones by name."""

    args: tuple = ()
    kwargs: Mapping[str, InputSpec] = field(default_factory=dict)

    @classmethod
    def of(cls, input_shape: Any = None, inputs: Optional[Sequence[Any]] = None,
           kwargs: Optional[Mapping[str, Any]] = None) -> "ModelInputs":
        """From ``analyze``'s arguments: one ``input_shape`` (the one-input path) or ``inputs``, plus
        ``kwargs``.  Giving both ``input_shape`` and ``inputs`` is an error."""
        if input_shape is not None and inputs is not None:
            raise ArchstatError("give input_shape (one input) or inputs (several), not both")
        given = [input_shape] if input_shape is not None else list(inputs or [])
        args = tuple(as_input(v, f"input {k}") for k, v in enumerate(given))
        named = {str(k): as_input(v, f"keyword input {k!r}") for k, v in (kwargs or {}).items()}
        if not args and not named:
            raise ArchstatError("the model needs at least one input shape")
        return cls(args, named)

    @property
    def all(self) -> list[InputSpec]:
        return [*self.args, *self.kwargs.values()]

    @property
    def first_shape(self) -> tuple:
        """The first input's shape per sample (``df.attrs["input"]``, the one-input contract)."""
        return tuple(self.all[0].shape)

    def text(self) -> str:
        """``3x224x224`` for one plain input; ``3x224x224, 77:int64:1000, mask=16:bool`` for several."""
        return several_text(self.describe()) or "x".join(map(str, self.first_shape))

    def describe(self) -> list[dict]:
        """JSON-ready: one ``{"name", "shape", "dtype", "high"}`` per input (name None when positional)."""
        named = [(None, a) for a in self.args] + list(self.kwargs.items())
        return [{"name": n, "shape": list(s.shape), "dtype": str(s.dtype or "").replace("torch.", "") or None,
                 "high": s.high} for n, s in named]


def resolve_batch(inputs: ModelInputs, batch: int) -> int:
    """The batch: that of batch-first inputs (which must agree with each other and with an explicit
    ``batch`` other than 1), else ``batch``."""
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ArchstatError(f"batch must be >= 1, got {batch}")
    fixed = {s.batch for s in inputs.all if s.batch is not None}
    if len(fixed) > 1:
        raise ArchstatError(f"the inputs disagree on the batch (first dimensions {sorted(fixed)})")
    if fixed:
        (found,) = fixed
        if batch not in (1, found):
            raise ArchstatError(f"batch={batch} but the batch-first inputs have batch {found}")
        return int(found)
    return batch


def batch_specs(inputs: ModelInputs, dtype: torch.dtype, make: Callable[[int, tuple], TensorSpec]
                ) -> tuple[list[TensorSpec], dict[str, TensorSpec]]:
    """Batch-first TensorSpecs of every input (positional ones, keyword ones by name), each in its own
    dtype or ``dtype``; ``make(k, shape)`` builds the k-th from its shape per sample (the engine's
    ``input_spec``, which checks the sizes and puts the symbols N, H, W in the first)."""
    specs = [TensorSpec(make(k, s.shape).shape, s.dtype or dtype) for k, s in enumerate(inputs.all)]
    n = len(inputs.args)
    return specs[:n], dict(zip(inputs.kwargs, specs[n:]))


def float_dtype(inputs: ModelInputs, dtype: torch.dtype) -> torch.dtype:
    """The dtype of the model's weights in the real runs: the first floating input's, else ``dtype``."""
    return next((s.dtype for s in inputs.all if s.dtype is not None and s.dtype.is_floating_point), dtype)


def bind(params: Sequence[tuple[str, bool, Any]], args: Sequence[Any], kwargs: Mapping[str, Any],
         what: str = "forward()") -> list:
    """Positional values for ``params`` (``(name, has_default, default)`` in order): ``args`` first,
    then ``kwargs`` by name, then the defaults.  Too many inputs, an unknown name or a missing
    argument is one line."""
    if len(args) > len(params):
        raise ArchstatError(f"{what} takes {len(params)} input(s), {len(args)} were given (--input per argument)")
    names = [p[0] for p in params]
    unknown = sorted(set(kwargs) - set(names[len(args):]))
    if unknown:
        raise ArchstatError(f"{what} has no argument {unknown[0]!r} to give a keyword input (it takes "
                            f"{', '.join(names) or 'nothing'})")
    out = list(args)
    for name, has_default, default in params[len(args):]:
        if name in kwargs:
            out.append(kwargs[name])
        elif has_default:
            out.append(default)
        else:
            raise ArchstatError(f"{what} needs an argument {name!r} that was not given: pass one --input per "
                                f"argument of forward ({len(args)} given)")
    return out


def signature_params(model: torch.nn.Module) -> list[tuple[str, bool, Any]]:
    """``forward``'s parameters as :func:`bind` takes them (``*args`` / ``**kwargs`` stop the list)."""
    import inspect

    out = []
    for p in inspect.signature(model.forward).parameters.values():
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            break
        out.append((p.name, p.default is not p.empty, None if p.default is p.empty else p.default))
    return out


def call_args(model: torch.nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple:
    """``args`` and ``kwargs`` as one positional tuple for ``model`` (fvcore's jit trace takes no
    keywords); checked against ``forward``'s signature."""
    if not kwargs:
        return tuple(args)
    return tuple(bind(signature_params(model), args, kwargs, f"{type(model).__name__}.forward()"))


def example_tensor(spec: InputSpec, full: TensorSpec, device: torch.device, generator: torch.Generator
                   ) -> torch.Tensor:
    """A real tensor for one input: the user's example if given, else seeded standard normals (floats),
    ``randint(0, high)`` (integers and bools with a bound) or zeros (without one)."""
    shape, dtype = tuple(int(s) for s in full.shape), full.dtype
    if spec.example is not None:
        return spec.example.to(device)
    if dtype.is_floating_point:
        return torch.randn(shape, device=device, dtype=dtype, generator=generator)
    if spec.high is None:
        return torch.zeros(shape, device=device, dtype=dtype)
    return torch.randint(0, spec.high, shape, device=device, generator=generator).to(dtype)


def example_inputs(inputs: ModelInputs, specs: tuple[list[TensorSpec], dict[str, TensorSpec]],
                   device: torch.device | str, seed: int) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Real tensors for every input (``specs``: :func:`batch_specs`'s), from one seeded generator."""
    dev = torch.device(device)
    gen = torch.Generator(dev).manual_seed(seed)
    args = [example_tensor(s, f, dev, gen) for s, f in zip(inputs.args, specs[0])]
    kwargs = {k: example_tensor(inputs.kwargs[k], f, dev, gen) for k, f in specs[1].items()}
    return args, kwargs


def several_text(described: Optional[list[dict]]) -> Optional[str]:
    """``3x224x224, 77:int64:1000, mask=16:bool`` for ``df.attrs["inputs"]`` (:meth:`ModelInputs.describe`)
    when it is more than the one plain float input (None then: the one-input output stays as it was)."""
    if not described or (len(described) == 1 and described[0]["name"] is None and described[0]["dtype"] is None):
        return None
    parts = []
    for d in described:
        text = "x".join(map(str, d["shape"])) + (f":{d['dtype']}" if d["dtype"] else "")
        text += f":{d['high']}" if d["high"] is not None else ""
        parts.append(f"{d['name']}={text}" if d["name"] else text)
    return ", ".join(parts)
