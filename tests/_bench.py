"""Loading a bench script as a module, for the tests of its own helpers (its runs are benchmarks, not tests)."""
from __future__ import annotations

import importlib.util
import pathlib
import sys
import types

BENCH_DIR = pathlib.Path(__file__).resolve().parents[1] / "bench"


def load_bench(name: str) -> types.ModuleType:
    """``bench/NAME.py`` as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    # registered before it runs: a dataclass under ``from __future__ import annotations`` looks its
    # module up in sys.modules while the class is built
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
