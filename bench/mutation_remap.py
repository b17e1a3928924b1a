"""Carry a mutation run's verdicts over to target files that changed since the run.

A mutant is named by its file, its site (position in ``ast.walk`` order of the whole file) and its
mutation, so an edit anywhere in a file renumbers the sites after it and moves their lines: a stale
``mutants.csv`` read with ``bench/mutation.py --resume`` would give verdicts to the wrong mutants.

Here a site is identified by its *owner*, the top-level statement of the module that holds it
(a ``def``, a ``class``, an assignment), compared as ``ast.dump`` without line numbers, and by its
rank among the owner's sites with the same mutation.  A verdict is carried over only where the
owner's code is unchanged; every mutant of an edited or new owner gets an empty status, so
``--resume`` runs it again.  The rank is sound because ``ast.walk`` is breadth first: the sites of
one subtree come in that subtree's own breadth-first order wherever the subtree sits.

    python bench/mutation_remap.py --old c159f8f reports/mutation/mutants.csv reports/mutation/rerun.csv

rewrites each CSV in place (``path,line,site,mutation,status,...``; source lines from the current
file) and prints, per file, the mutants kept, dropped (their owner changed) and new.  A CSV with a
row for every mutant (``mutants.csv``) gains rows for the new mutants; the others (reruns) keep
only the rows carried over.
"""
from __future__ import annotations

import argparse
import ast
import csv
import io
import subprocess
from collections import Counter
from pathlib import Path

from mutants import ROOT, Mutant, mutants, sites
from mutation import DEFAULT_TARGETS
from mutation_report import atomic_write


def site_keys(source: str) -> list[tuple[str, int, str]]:
    """(owner's code, rank among the owner's sites with this mutation, mutation) per site, in site order."""
    tree = ast.parse(source)
    owner_of: dict[int, str] = {}
    for stmt in tree.body:
        dump = ast.dump(stmt)
        for node in ast.walk(stmt):
            owner_of[id(node)] = dump
    ranks: Counter = Counter()
    keys = []
    for node, what in sites(tree):
        owner = owner_of[id(node)]
        keys.append((owner, ranks[owner, what], what))
        ranks[owner, what] += 1
    return keys


def remap(old_source: str, new_source: str) -> dict[int, int]:
    """Old site -> new site, for the sites whose owner is unchanged."""
    where = {k: i for i, k in enumerate(site_keys(new_source))}
    return {i: where[k] for i, k in enumerate(site_keys(old_source)) if k in where}


def rewrite(csv_path: Path, old: str, targets: list[str] | None) -> None:
    """Rewrite ``csv_path`` against the current files; ``targets`` (``path`` or ``path:a-b``): add a
    row with an empty status for each of their mutants the CSV has no verdict for."""
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = list(reader.fieldnames or []), list(reader)
    out = []
    for path in dict.fromkeys(r["path"] for r in rows):
        old_source = subprocess.run(["git", "show", f"{old}:{path}"], cwd=ROOT, capture_output=True, text=True,
                                    check=True).stdout
        new_source = (ROOT / path).read_text()
        lines = new_source.splitlines()
        old_to_new = remap(old_source, new_source)
        current = {m.index: m for m in mutants(path)}
        mine = [r for r in rows if r["path"] == path]
        by_site = {}
        for r in mine:
            new = old_to_new.get(int(r["site"]))
            if new is not None:
                assert current[new].what == r["mutation"], (path, r["site"], new)
                by_site[new] = {**r, "site": str(new), "line": str(current[new].line),
                                "source_line": lines[current[new].line - 1].strip()}
        carried = len(by_site)
        wanted = [m for t in targets or [] if t.partition(":")[0] == path for m in mutants(t)]
        for m in wanted:
            by_site.setdefault(m.index, {f: "" for f in fields} | {
                "path": path, "line": str(m.line), "site": str(m.index), "mutation": m.what, "tests": "0",
                "seconds": "0.0", "source_line": lines[m.line - 1].strip()})
        ran = sum(bool(r["status"]) for r in mine)
        kept = sum(bool(r["status"]) for r in by_site.values())
        print(f"{csv_path.name} {path}: {len(mine)} rows, {ran} with a verdict -> {len(by_site)} rows: "
              f"{kept} verdicts kept, {ran - kept} dropped (their owner changed), {len(by_site) - carried} rows added")
        out += [by_site[i] for i in sorted(by_site)]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fields, lineterminator="\n")
    w.writeheader()
    w.writerows(out)
    atomic_write(csv_path, buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the commit the CSVs' mutants were made from")
    ap.add_argument("csv", nargs="+", help="the run's mutants.csv first (gains the new mutants), then reruns")
    args = ap.parse_args()
    for i, p in enumerate(args.csv):
        rewrite(Path(p), args.old, DEFAULT_TARGETS if i == 0 else None)


if __name__ == "__main__":
    main()
