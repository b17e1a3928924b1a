"""`archstat list`: the zoo's models with their default input; `--ops`: every op with a formula."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="zoo models with their default input (--ops: the ops archstat has formulas for)")
    p.add_argument("--ops", action="store_true",
                   help="list the layers and functions with a formula, by family (yours included, once imported)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.ops:
        print(ops_text())
        return 0
    from archstat.models import list_models, model_info

    rows = [model_info(n) for n in list_models()]
    width = max(len(r.name) for r in rows)
    for r in rows:
        shape = "x".join(map(str, r.default_input))
        print(f"{r.name:<{width}}  {shape:<11}  {r.year}  {r.paper}")
    return 0


def _family(formula: object) -> str:
    """archstat's formula file (``conv``, ``pool`` ...), or the user's module that registered it."""
    module = getattr(formula, "__module__", "") or "?"
    return module.rsplit(".", 1)[-1] if module.startswith("archstat.formulas.") else module


def _public_names(cls: type) -> list[str]:
    """A private base registered for a family (``_ReflectionPadNd``) is shown as torch.nn's public
    classes built on it (``ReflectionPad1d`` ...)."""
    if not cls.__name__.startswith("_"):
        return [cls.__name__]
    from torch import nn

    return [c.__name__ for c in vars(nn).values()
            if isinstance(c, type) and issubclass(c, cls) and not c.__name__.startswith("_")] or [cls.__name__]


def ops_text() -> str:
    """Every registered formula, grouped by family: layers by class name, functions by op name."""
    from archstat.formulas import FUNCTION_FORMULAS, MODULE_FORMULAS

    lines = []
    layers = {name: fn for cls, fn in MODULE_FORMULAS.items() for name in _public_names(cls)}
    for title, registry in (("layers (nn.Module classes; a subclass that keeps forward() counts as its base)", layers),
                            ("functions and tensor methods (as the table's op column names them)", FUNCTION_FORMULAS)):
        groups: dict[str, list[str]] = {}
        for name, fn in registry.items():
            groups.setdefault(_family(fn), []).append(name)
        lines.append(f"{title}: {len(registry)}")
        width = max(len(g) for g in groups)
        lines += [f"  {g:<{width}}  {' '.join(sorted(set(names)))}" for g, names in sorted(groups.items())]
    return "\n".join(lines)
