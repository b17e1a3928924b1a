"""The mutation score of a run: survivors / non-equivalent mutants, from the run's ``mutants.csv``,
the reruns of its survivors against newer tests (``rerun.csv``, same columns) and the equivalent
mutants argued one per line in ``SURVIVORS.md`` (table rows ``| `path:line` | `mutation` | equivalent: why |``;
``path:line@site`` where two sites of a line share a mutation's name).

    python bench/mutation_score.py reports/mutation
"""
from __future__ import annotations

import csv
import re
import sys
from collections import Counter
from pathlib import Path

NOT_KILLED = ("survived", "uncovered")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["status"]]


def equivalents(survivors_md: Path) -> set[tuple[str, str, str]]:
    """(``path:line``, site or '', mutation) of every mutant SURVIVORS.md argues is equivalent."""
    out = set()
    for line in survivors_md.read_text().splitlines():
        m = re.match(r"\|\s*`(archstat/[^`@]+:\d+)(?:@(\d+))?`\s*\|\s*`([^`]+)`\s*\|\s*equivalent", line)
        if m:
            out.add((m.group(1), m.group(2) or "", m.group(3)))
    return out


def score(folder: Path) -> dict:
    run = _rows(folder / "mutants.csv")
    rerun = {(r["path"], r["site"], r["mutation"]): r["status"] for r in _rows(folder / "rerun.csv")} \
        if (folder / "rerun.csv").exists() else {}
    equivalent = equivalents(folder / "SURVIVORS.md")
    verdicts = Counter()
    left = []
    for r in run:
        key, where = (r["path"], r["site"], r["mutation"]), (f"{r['path']}:{r['line']}", r["mutation"])
        if r["status"] not in NOT_KILLED:
            verdicts["killed by the run"] += 1
        elif rerun.get(key) in ("killed", "timeout"):
            verdicts["killed by a new test (rerun)"] += 1
        elif (where[0], "", where[1]) in equivalent or (where[0], r["site"], where[1]) in equivalent:
            verdicts["equivalent"] += 1
        else:
            verdicts["survivor"] += 1
            left.append(f"{where[0]} {where[1]}")
    non_equivalent = len(run) - verdicts["equivalent"]
    return {"run": len(run), **verdicts, "non_equivalent": non_equivalent,
            "before": sum(r["status"] in NOT_KILLED for r in run), "left": left,
            "score": verdicts["survivor"] / non_equivalent if non_equivalent else 0.0}


def main() -> None:
    s = score(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/mutation"))
    for k, v in s.items():
        if k != "left":
            print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    print("survivors left:", *s["left"], sep="\n  ")


if __name__ == "__main__":
    main()
