"""The mutation score of a run: survivors / non-equivalent mutants, from the run's ``mutants.csv``,
the reruns of its survivors against newer tests (``rerun.csv``, same columns) and the equivalent
mutants argued one per line in ``SURVIVORS.md`` (table rows ``| `path:line` | `mutation` | equivalent: why |``;
``path:line@site`` where two sites of a line share a mutation's name).

    python bench/mutation_score.py reports/mutation
    python bench/mutation_score.py --merge OUT.csv RERUN.csv ...   # reruns -> one rerun.csv: killed if any killed it
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
    """(``path:line``, site or '', mutation) of every mutant SURVIVORS.md argues is equivalent, read from
    its newest run's section only (the first ``## Run`` heading to the next): line numbers are those of
    the code that run mutated, and an edit of a target moves them, so an older section's line may now
    name another mutant.  The newest section restates each older equivalent that still holds."""
    out, section = set(), 0
    for line in survivors_md.read_text().splitlines():
        section += line.startswith("## Run")
        if section != 1:
            continue
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
            verdicts["killed in a rerun (more tests)"] += 1
        elif (where[0], "", where[1]) in equivalent or (where[0], r["site"], where[1]) in equivalent:
            verdicts["equivalent"] += 1
        else:
            verdicts["survivor"] += 1
            verdicts["survivor, not rerun against the newer tests"] += key not in rerun
            left.append(f"{where[0]} {where[1]}" + ("" if key in rerun else "  (not rerun)"))
    non_equivalent = len(run) - verdicts["equivalent"]
    return {"run": len(run), **verdicts, "non_equivalent": non_equivalent,
            "before": sum(r["status"] in NOT_KILLED for r in run), "left": left,
            "score": verdicts["survivor"] / non_equivalent if non_equivalent else 0.0}


def merge(out: Path, parts: list[Path]) -> None:
    """One row per rerun mutant: the first rerun that killed it (or timed out), else its last verdict."""
    best: dict = {}
    for part in parts:
        for r in _rows(part):
            key = (r["path"], r["site"], r["mutation"])
            if best.get(key, {}).get("status") not in ("killed", "timeout"):
                best[key] = {**r, "rerun": part.parent.name}
    fields = [*next(iter(best.values())).keys()] if best else ["path", "line", "site", "mutation", "status"]
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fields, lineterminator="\n")
        w.writeheader()
        w.writerows(best.values())
    tmp.replace(out)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--merge":
        merge(Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
        return
    s = score(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/mutation"))
    for k, v in s.items():
        if k != "left":
            print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    print("survivors left:", *s["left"], sep="\n  ")


if __name__ == "__main__":
    main()
