"""The one progress bar: tqdm on stderr, quiet when stderr is not a terminal or when asked.

Every command that can run for more than a few seconds (``report``, ``validate``, ``compare`` of many
models, ``table --training/--receptive-field``, ``train``, ``search``) wraps its loop in
:func:`progress`.  tqdm is imported on first use, so ``archstat --help`` stays light.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, Optional, TypeVar

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


def shown(quiet: Optional[bool]) -> bool:
    """A caller's own ``quiet``: None follows :func:`enabled` (a terminal, no --quiet), True hides the
    bar, False asks for it even off a terminal (tests, logs)."""
    return enabled() if quiet is None else not quiet


def bar(items: Iterable[T], desc: str, quiet: Optional[bool] = None, total: Optional[int] = None) -> Iterable[T]:
    """``items`` in a bar described by ``desc`` (what is being measured), or ``items`` as is when hidden."""
    if not shown(quiet):
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, file=sys.stderr, leave=False, dynamic_ncols=True)


class Stages:
    """One bar over a fixed list of stages, whose description says what is being measured now."""

    def __init__(self, total: int, quiet: Optional[bool] = None) -> None:
        self.bar = None
        if shown(quiet):
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=sys.stderr, leave=False, dynamic_ncols=True, bar_format="{desc} {n}/{total}")

    def next(self, desc: str) -> None:
        if self.bar is not None:
            self.bar.set_description(desc)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
