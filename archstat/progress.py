"""The one progress bar: tqdm on stderr, quiet when stderr is not a terminal or when asked.

Every command that can run for more than a few seconds (``report``, ``validate``, ``compare`` of many
models, ``table --training/--receptive-field``, ``train``, ``search``) wraps its loop in
:func:`progress`.  tqdm is imported on first use, so ``archstat --help`` stays light.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")

QUIET = {"on": False}  # set by the CLI's --quiet for the whole process


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no bar anywhere in this process."""
    QUIET["on"] = bool(quiet)


def enabled(disable: bool = False) -> bool:
    """A bar is drawn only on an interactive stderr, without --quiet, unless the caller disables it."""
    return not (disable or QUIET["on"] or not sys.stderr.isatty())


def progress(items: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, disable: bool = False, leave: bool = False, **kwargs: Any):
    """``tqdm(items)`` on stderr, or a bar to ``update()`` by hand when ``items`` is None.

    Disabled bars are real tqdm objects too (tqdm's ``disable=True``), so callers never branch.
    """
    from tqdm import tqdm

    return tqdm(items, total=total, desc=desc, unit=unit, initial=initial, disable=not enabled(disable),
                file=sys.stderr, dynamic_ncols=True, leave=leave, **kwargs)


def stepper(bar: Any) -> Callable[[str], None]:
    """``step(name)`` as each stage starts: the bar counts the stages done and shows the current one."""
    started = {"any": False}

    def step(name: str) -> None:
        if started["any"]:
            bar.update()
        started["any"] = True
        bar.set_postfix_str(name)

    return step
