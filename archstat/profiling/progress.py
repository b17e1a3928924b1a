"""Progress on stderr: a tqdm bar that says what is being measured, quiet when stderr is not a terminal."""
from __future__ import annotations

import sys
from typing import Any, Iterable, Optional


def progress_enabled(quiet: Optional[bool]) -> bool:
    """``quiet=None``: show progress only when stderr is a terminal."""
    return not quiet if quiet is not None else sys.stderr.isatty()


def bar(items: Iterable[Any], desc: str, quiet: Optional[bool] = None, total: Optional[int] = None) -> Iterable[Any]:
    """``items`` wrapped in a tqdm bar on stderr described by ``desc`` (or ``items`` as is when quiet)."""
    if not progress_enabled(quiet):
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, file=sys.stderr, leave=False, dynamic_ncols=True)


class Stages:
    """One bar over a fixed list of stages, whose description says what is being measured now."""

    def __init__(self, total: int, quiet: Optional[bool] = None) -> None:
        self.bar = None
        if progress_enabled(quiet):
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=sys.stderr, leave=False, dynamic_ncols=True, bar_format="{desc} {n}/{total}")

    def next(self, desc: str) -> None:
        if self.bar is not None:
            self.bar.set_description(desc)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
