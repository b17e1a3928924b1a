"""archstat: architecture analysis and profiling for convolutional networks.

``analyze(model, input_shape)`` returns the lecture's per-layer table (output size, memory,
params, FLOPs) for any ``nn.Module``, computed from formulas without running the model.

The names below load on first use (PEP 562), so that importing a torch-free corner of the
package (the command line's parser, ``archstat --help``) does not import torch (about 2 s).

``analyze_rows`` returns the same table with each row's fx node, module and weights: the one
product every analysis and check takes.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from archstat.errors import ArchstatError

if TYPE_CHECKING:  # what the lazy names are, for type checkers and readers
    from archstat.engine.analyze import analyze, analyze_rows
    from archstat.formulas import Cost, ShapeError, register_function, register_module
    from archstat.profiling.profile import profile
    from archstat.spec import TensorSpec
    from archstat.validation.validate import validate

# public name -> the module that defines it
_LAZY: dict[str, str] = {
    "analyze": "archstat.engine.analyze",
    "analyze_rows": "archstat.engine.analyze",
    "profile": "archstat.profiling.profile",
    "validate": "archstat.validation.validate",
    "register_module": "archstat.formulas",
    "register_function": "archstat.formulas",
    "Cost": "archstat.formulas",
    "ShapeError": "archstat.formulas",
    "TensorSpec": "archstat.spec",
}

__all__ = ["analyze", "analyze_rows", "profile", "validate", "ArchstatError",
           # the extension point for a user's own layers and functions (README: "Your own ops")
           "register_module", "register_function", "Cost", "TensorSpec", "ShapeError"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import ``name``'s module on first access and cache the name in this module."""
    if name not in _LAZY:
        raise AttributeError(f"module 'archstat' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
