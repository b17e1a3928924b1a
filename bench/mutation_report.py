"""The reports of ``bench/mutation.py``: ``mutants.csv`` (one row per chosen mutant) and ``summary.md``
(counts per file, the survivors), both rewritten atomically after every mutant."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from mutants import ROOT, Mutant

def read_done(path: Path) -> dict:
    """(path, site, mutation) -> (status, seconds, tests, runner) of the mutants a CSV already has a status for."""
    if not path.exists():
        return {}
    with open(path, newline="") as fh:
        return {(r["path"], int(r["site"]), r["mutation"]): (r["status"], float(r["seconds"]), int(r["tests"]),
                                                             r.get("runner", ""))
                for r in csv.DictReader(fh) if r["status"]}


def atomic_write(path: Path, text: str) -> None:
    """Write a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


SOURCES: dict[str, list[str]] = {}  # each target's lines as the run found them (the files may change during it)


def write_csv(path: Path, chosen: list[Mutant]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "line", "site", "mutation", "status", "tests", "seconds", "runner", "source_line"])
    for m in chosen:
        lines = SOURCES.setdefault(m.path, (ROOT / m.path).read_text().splitlines())
        w.writerow([m.path, m.line, m.index, m.what, m.status, m.tests, f"{m.seconds:.1f}", m.runner, lines[m.line - 1].strip()])
    atomic_write(path, buf.getvalue())


def write_summary(path: Path, chosen: list[Mutant], total: int, head: str, tail: str, argv: str) -> None:
    """Counts per file and the survivors (the verdicts on them are in SURVIVORS.md, by hand)."""
    statuses = ("killed", "timeout", "survived", "uncovered", "")
    ran = sum(bool(m.status) for m in chosen)
    lines = [f"# Mutation testing: {ran} of {total} mutants run ({len(chosen)} chosen)", "",
             f"`nice -n 19 python bench/mutation.py {argv}`".replace("  ", " "), "",
             f"Started {head}; {tail}.", "",
             "| file | mutants | " + " | ".join(statuses[:-1]) + " | not run | test time (s) |", "|---|" + "---:|" * (len(statuses) + 2)]
    for p in dict.fromkeys(m.path for m in chosen):
        mine = [m for m in chosen if m.path == p]
        counts = [sum(m.status == s for m in mine) for s in statuses]
        lines.append(f"| `{p}` | {len(mine)} | " + " | ".join(map(str, counts)) + f" | {sum(m.seconds for m in mine):.0f} |")
    counts = [sum(m.status == s for m in chosen) for s in statuses]
    lines.append(f"| all | {len(chosen)} | " + " | ".join(map(str, counts)) + f" | {sum(m.seconds for m in chosen):.0f} |")
    lines += ["", "Survivors and uncovered mutants (each is killed by a test or explained in SURVIVORS.md):", ""]
    lines += [f"- `{m.path}:{m.line}` {m.what} ({m.status})" for m in chosen if m.status in ("survived", "uncovered")]
    atomic_write(path, "\n".join(lines) + "\n")
