"""Activations: every one the lecture names (Sigmoid, Tanh, ReLU, Leaky ReLU, PReLU, ELU, SELU,
GELU) plus ReLU6, SiLU, Hardswish, Hardsigmoid, Softplus, Mish, Softmax (and Softmax2d, over
channels) and LogSoftmax.

Shape is kept; no MACs.  An in-place call (``inplace=True``, ``relu_``) writes into its input,
so it allocates nothing and adds nothing to the memory column.
"""
from __future__ import annotations

from torch import nn

from archstat.formulas import Cost, register_function, register_module

ACTIVATION_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
                      nn.Sigmoid, nn.Tanh, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh,
                      nn.Softplus, nn.Mish, nn.Softmax, nn.LogSoftmax, nn.Softmax2d)

ACTIVATION_FUNCTIONS = ("relu", "relu6", "leaky_relu", "prelu", "elu", "selu", "celu", "gelu", "sigmoid",
                        "tanh", "silu", "hardswish", "hardsigmoid", "hardtanh", "softplus", "mish",
                        "softmax", "log_softmax")


def _activation_cost(x, fn: str, inplace: bool) -> Cost:
    return Cost(out=x, kind="activation", alloc=not inplace, new_bytes=not inplace,
                hparams={"fn": fn, "inplace": inplace})


@register_module(*ACTIVATION_MODULES)
def activation_module(m: nn.Module, inputs: list) -> Cost:
    return _activation_cost(inputs[0], type(m).__name__.lower(), bool(getattr(m, "inplace", False)))


@register_function(*ACTIVATION_FUNCTIONS)
def activation_function(args: tuple, kwargs: dict) -> Cost:
    # the engine passes the normalised name in "_fn" and inplace=True for `relu_`-style calls
    return _activation_cost(args[0], kwargs.get("_fn", "activation"), bool(kwargs.get("inplace", False)))
