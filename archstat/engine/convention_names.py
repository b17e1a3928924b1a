"""The names of the counting conventions, torch-free so that the command line can offer them.

``engine/conventions.py`` defines what each one counts; this module only names them, so that
``archstat --help`` (and argparse's ``choices``) need not import torch to list them.
"""
from __future__ import annotations

CONVENTIONS: tuple[str, ...] = ("lecture", "fvcore", "flopcounter")
DEFAULT_CONVENTION = "lecture"  # the seed's AlexNet table: MACs plus pooling windows
