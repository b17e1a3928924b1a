"""archstat: architecture analysis and profiling for convolutional networks.

``analyze(model, input_shape)`` returns the lecture's per-layer table (output size, memory,
params, FLOPs) for any ``nn.Module``, computed from formulas without running the model.
``analyze_rows`` returns the same table with each row's fx node, module and weights: the one
product every analysis and check takes.
"""
from archstat.engine.analyze import analyze, analyze_rows
from archstat.errors import ArchstatError
from archstat.formulas import Cost, ShapeError, register_function, register_module
from archstat.profiling.profile import profile
from archstat.spec import TensorSpec
from archstat.validation.validate import validate

__all__ = ["analyze", "analyze_rows", "profile", "validate", "ArchstatError",
           # the extension point for a user's own layers and functions (README: "Your own ops")
           "register_module", "register_function", "Cost", "TensorSpec", "ShapeError"]
__version__ = "0.1.0"
