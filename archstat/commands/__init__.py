"""Subcommand modules, in the order `archstat --help` lists them.

Each module defines ``register(subparsers)``.  Adding a command = adding a module and a name here.
"""
from __future__ import annotations

COMMAND_MODULES: list[str] = ["list_models", "table", "compare", "html", "report", "experiment", "profile", "ceilings",
                              "train", "evaluate", "search", "validate"]


def summary(doc: str | None) -> str:
    """A module docstring's first line as ``--help`` shows it: reST ``literals`` read as plain text."""
    return (doc or "").strip().splitlines()[0].replace("``", "") if doc and doc.strip() else ""
