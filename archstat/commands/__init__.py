"""Subcommand modules, in the order `archstat --help` lists them.

Each module defines ``register(subparsers)``.  Adding a command = adding a module and a name here.
"""
COMMAND_MODULES: list[str] = ["list_models", "table", "compare", "html", "report", "experiment", "profile", "ceilings",
                              "train", "evaluate", "search", "validate"]
