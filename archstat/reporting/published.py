"""The published numbers (lecture slides, papers, torchvision metadata), as one packaged record.

``archstat/data/published.json`` is a copy of ``shared/published/reference_numbers.json``: every
number with its source and status tag (CONFIRMED-IMAGE, CONFIRMED-TEXT, COMPUTED, APPROX, ...),
including the sources' known typos.  Tests, ``archstat compare`` and ``reports/published.md`` read
it through this module, so there is one source of truth.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from archstat.errors import ArchstatError

DATA_FILE = "published.json"


@lru_cache(maxsize=1)
def _text() -> str:
    return resources.files("archstat").joinpath("data", DATA_FILE).read_text(encoding="utf-8")


def load() -> dict[str, Any]:
    """The whole record (a fresh copy each call, so callers may mutate it)."""
    return json.loads(_text())


def section(*keys: str) -> Any:
    """``section("eecs498_lecture8", "alexnet_table")`` -> that part of the record."""
    node: Any = load()
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise ArchstatError(f"published record has no {'/'.join(keys[: i + 1])!r}")
        node = node[key]
    return node


def old_docs_errors() -> dict[str, tuple[float, float]]:
    """Old torchvision docs' 1-crop errors: model label -> (top-1 %, top-5 %)."""
    rows = section("torchvision_old_docs_1crop_errors", "rows")
    return {r["model"]: (float(r["top1_error"]), float(r["top5_error"])) for r in rows}
