"""Mutation testing (a bench, not CI): plant small bugs in the formulas, the conventions and the
receptive-field formulas, and see whether the fast relevant tests catch each one.

The mutants come from ``bench/mutants.py`` (our own AST mutator, no extra dependency).  Two runners
make them; either way a forked child runs pytest ``-x -q -p no:cacheprovider`` on the mutant: exit 0
means it survived, a failure (or a hang past the timeout) that it was killed.

* warm (the default where it can): a worker imports archstat and collects the test modules once,
  then forks a child per mutant that swaps the mutated function's code into the live function
  objects (``bench/mutation_patch.py`` has the argument why that is the mutant).  A mutant then
  costs its tests only.
* fresh (mutants of module-level code, or of code archstat's import runs; ``--runner fresh`` for
  all): the whole file with one change, written into a scratch copy of ``archstat/``; a forked
  child (torch, pandas, sympy and hypothesis already imported) puts the copy first on
  ``sys.path``, so it pays archstat's import and pytest's collection of the test modules anew.

``--identity`` runs the unmutated code through both runners (each must say 'survived'); the same
``--only`` set run with and without ``--runner fresh`` compares their verdicts.

What makes all of the mutants affordable is a coverage map, built once per test set by the same
fork with a line tracer on the target files: for each test, the target lines it executes, and its
time.  A mutant then runs only the tests that execute its node, fastest first, and stops at the
first failure.  That is sound: a test that never reaches the mutated node runs the same code as
without the mutation, so it cannot fail because of it.  Three rules keep it so: lines run at import
or collection (module constants, registries, default arguments) select the whole test set;
hypothesis runs derandomized (``derandomize=True``, no example database), so the examples are
those the map saw; and a mutant no test reaches is reported ``uncovered`` (a survivor), not run.

    nice -n 19 python bench/mutation.py --seed 0 --out reports/mutation            # every mutant
    nice -n 19 python bench/mutation.py --sample 200 --seed 0                      # stratified over the files
    python bench/mutation.py --list            # count the mutants per file, run nothing
    nice -n 19 python bench/mutation.py --identity --map MAP.json                  # both runners, no mutant

Leave the target files alone while it runs (each mutant is read from them).  Prints the date,
versions, machine and load first; rewrites ``mutants.csv`` after every mutant (so a
stopped run keeps what it did; ``--resume`` goes on from it) and ``summary.md`` at the end.
"""
from __future__ import annotations

import argparse
import datetime
import functools
import gc
import json
import os
import platform
import random
import shutil
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest
from tqdm import tqdm  # not archstat.progress: the parent must not import archstat (the child's is the mutant)
from mutants import Mutant, mutants, mutated_source
from mutation_patch import Warm, code_pairs
from mutation_report import SOURCES, atomic_write, read_done, write_csv, write_summary

ROOT = Path(__file__).resolve().parents[1]
# the fast tests that check numbers of the target files (the default profile); every mutant may be
# killed by any of them, and runs those that execute its node
TESTS = ["tests/test_formulas_table.py", "tests/test_formula_coverage.py", "tests/test_lecture_oracle.py",
         "tests/test_formulas_views.py", "tests/test_symbolic.py", "tests/test_validate_ops.py",
         "tests/test_weights_only.py", "tests/test_same_pad_copy.py", "tests/test_hardware_flops.py",
         "tests/test_receptive_field_gradient.py", "tests/test_pool_forms.py", "tests/test_reduce_keepdim.py",
         "tests/test_matrix_vector.py", "tests/test_where_dtype.py", "tests/test_receptive_field.py"]
DEFAULT_TARGETS = ["archstat/formulas/conv.py", "archstat/formulas/pool.py", "archstat/formulas/linear.py",
                   "archstat/formulas/elementwise.py", "archstat/formulas/norm.py", "archstat/formulas/resize.py",
                   "archstat/formulas/pad.py", "archstat/formulas/reduce.py", "archstat/engine/conventions.py",
                   "archstat/analyses/receptive_field.py:1-230"]  # the columns' formulas (not the check's walk)
IMPORT = "<import>"  # the map's name for lines run outside any test (archstat's import)
COLLECT = "<collect>"  # + a test file: lines run by that file's own module-level code


class _Select:
    """pytest plugin: keep the ``chosen`` test ids, in the given order (fastest first)."""

    def __init__(self, chosen: list[str]) -> None:
        self.order = {nodeid: i for i, nodeid in enumerate(chosen)}

    def pytest_collection_modifyitems(self, config, items) -> None:
        keep = sorted((it for it in items if it.nodeid in self.order), key=lambda it: self.order[it.nodeid])
        config.hook.pytest_deselected(items=[it for it in items if it.nodeid not in self.order])
        items[:] = keep


class _Trace:
    """pytest plugin + sys.settrace: the lines of ``files`` (absolute path -> name) each test runs.

    Lines run outside a test are ``COLLECT + test file`` when a test module's own code called
    them while pytest collected it (cases and expectations built at import: they matter to that
    file's tests only), else IMPORT (module-level code of archstat: it matters to every test)."""

    def __init__(self, files: dict[str, str], tests: list[str]) -> None:
        self.files, self.context, self.codes = files, IMPORT, {}
        self.tests = {str(ROOT / t): t for t in tests}
        self.lines: dict[str, set] = {}
        self.seconds: dict[str, float] = {}

    def _outside(self, frame) -> str:
        """The context of a call outside any test: the first module-level frame up the stack decides."""
        while frame is not None:
            if frame.f_code.co_name == "<module>":
                test = self.tests.get(frame.f_code.co_filename)
                return COLLECT + test if test else IMPORT
            frame = frame.f_back
        return IMPORT

    def tracer(self, frame, event, arg):
        if event != "call":
            return None
        code = frame.f_code
        name = self.codes.get(code)
        if name is None:
            name = self.codes[code] = self.files.get(code.co_filename, "")
        if not name:
            return None
        context = self.context if self.context != IMPORT else self._outside(frame)
        seen = self.lines.setdefault(context, set())

        def local(frame, event, arg):
            if event == "line":
                seen.add(f"{name}:{frame.f_lineno}")
            return local
        return local

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.context, start = item.nodeid, time.monotonic()
        try:
            yield
        finally:
            self.seconds[item.nodeid] = time.monotonic() - start
            self.context = IMPORT


def _child(src: Path | None, files: list[str], plugin, log: Path, setup=None) -> int:
    """In the forked child: ``src`` first on sys.path (the fresh runner) or ``setup()`` (the warm
    runner's patch), then pytest on ``files`` with ``plugin``."""
    os.chdir(ROOT)
    if src is not None:
        sys.path.insert(0, str(src))
    if setup is not None:
        setup()
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1)
    os.dup2(out, 2)
    return int(pytest.main([*files, "-x", "-q", "-p", "no:cacheprovider", "-p", "no:warnings"], plugins=[plugin]))


def fork(src: Path | None, files: list[str], plugin, timeout: float, log: Path, result: Path | None = None,
         setup=None) -> str:
    """Run pytest in a forked child; 'killed' (a test failed or errored), 'survived', or 'timeout'."""
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            if isinstance(plugin, _Trace):
                sys.settrace(plugin.tracer)
            code = _child(src, files, plugin, log, setup)
            if result is not None:
                sys.settrace(None)
                result.write_text(json.dumps({"lines": {k: sorted(v) for k, v in plugin.lines.items()},
                                              "seconds": plugin.seconds}))
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "timeout"


def coverage_map(scratch: Path, tests: list[str], targets: list[str], timeout: float) -> dict:
    """{"lines": {test id or IMPORT: ["path:line", ...]}, "seconds": {test id: s}} of ``tests``."""
    files = {str(scratch / t): t for t in targets}
    result = scratch / "map.json"
    status = fork(scratch, tests, _Trace(files, tests), timeout, scratch / "map.log", result)
    if status != "survived":
        sys.exit(f"the unmutated tests fail ({status}); the end of their output:\n"
                 + (scratch / "map.log").read_text()[-3000:])
    return json.loads(result.read_text())


def contexts(m: Mutant, cover: dict) -> set[str]:
    """The map's contexts (test ids, IMPORT, COLLECT + file) that execute ``m``'s node."""
    span = {f"{m.path}:{n}" for n in range(m.line, m.end + 1)}
    return {t for t, lines in cover["lines"].items() if span & set(lines)}


def select(m: Mutant, cover: dict) -> list[str] | None:
    """The tests that execute ``m``'s node, fastest first (all of a file's if its collection runs it,
    all of them if archstat's import does), or None if none does."""
    hit = contexts(m, cover)
    if IMPORT in hit:
        hit = set(cover["seconds"])
    for ctx in [t for t in hit if t.startswith(COLLECT)]:
        hit |= {t for t in cover["seconds"] if t.startswith(ctx[len(COLLECT):] + "::")}
    hit = {t for t in hit if t in cover["seconds"]}
    return sorted(hit, key=lambda t: cover["seconds"][t]) if hit else None


def stratified(everything: list[Mutant], sample: int, seed: int) -> list[Mutant]:
    """``sample`` mutants, each file's share in proportion to its count (at least one); all if 0."""
    if not sample or sample >= len(everything):
        return everything
    rng, chosen = random.Random(seed), []
    for path in dict.fromkeys(m.path for m in everything):
        mine = [m for m in everything if m.path == path]
        chosen += rng.sample(mine, max(1, round(sample * len(mine) / len(everything))))
    return sorted(chosen, key=lambda m: (m.path, m.index))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", nargs="*", default=DEFAULT_TARGETS)
    ap.add_argument("--sample", type=int, default=0, help="mutants to run, stratified over the files (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per mutant on top of 4x its tests' time")
    ap.add_argument("--out", default=str(ROOT / "reports" / "mutation"))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--resume", action="store_true", help="keep the statuses already in OUT/mutants.csv")
    ap.add_argument("--only", nargs="*", default=[], help="run the mutants whose 'path:line what' contains one of these")
    ap.add_argument("--tests", nargs="*", default=TESTS, help="the test files (default: the fast number checks)")
    ap.add_argument("--jobs", type=int, default=1, help="mutants run at once, each in its own scratch copy")
    ap.add_argument("--runner", choices=["auto", "fresh"], default="auto",
                    help="auto: the warm runner where it can make the mutant, else fresh; fresh: always fresh")
    ap.add_argument("--identity", action="store_true",
                    help="run the unmutated code against every mapped test through both runners, print both verdicts")
    ap.add_argument("--map", nargs="*", default=[], help="a JSON file for the coverage map: read if it exists, else "
                    "written; several (all existing, of disjoint test sets): their union")
    args = ap.parse_args()
    everything = [m for t in args.targets for m in mutants(t)]
    if args.list:
        for t in args.targets:
            print(t, len(mutants(t)))
        print("total", len(everything))
        return
    import torch
    import hypothesis, pandas, sympy, torch.fx  # noqa: F401,E401  (shared by every forked child)
    from hypothesis import HealthCheck, settings
    settings.register_profile("mutation", max_examples=40, deadline=None, derandomize=True, database=None,
                              suppress_health_check=[HealthCheck.too_slow])
    os.environ["HYPOTHESIS_PROFILE"] = "mutation"  # conftest loads it by name, in every child and warm worker
    started = datetime.datetime.now(datetime.timezone.utc)
    head = (f"{started:%Y-%m-%d %H:%M} UTC  python {platform.python_version()}  torch {torch.__version__}  "
            f"{platform.machine()} {os.cpu_count()} cores  load {os.getloadavg()[0]:.1f}")
    print(head, flush=True)
    if args.only:
        chosen = [m for m in everything if any(o in f"{m.path}:{m.line} {m.what}" for o in args.only)]
    else:
        chosen = stratified(everything, args.sample, args.seed)
    for m in chosen:
        SOURCES.setdefault(m.path, (ROOT / m.path).read_text().splitlines())
    out = Path(args.out)
    done = read_done(out / "mutants.csv") if args.resume else {}
    cover = _load_map(args, chosen)
    print(f"{len(cover['seconds'])} tests, {sum(cover['seconds'].values()):.0f} s", file=sys.stderr, flush=True)
    if args.identity:
        identity(cover, args.timeout)
        return
    order = chosen[:]
    random.Random(args.seed).shuffle(order)  # a stopped run has done a random part of every file
    todo = [m for m in order if (m.path, m.index, m.what) not in done]
    for m in chosen:
        m.status, m.seconds, m.tests, m.runner = done.get((m.path, m.index, m.what), ("", 0.0, 0, ""))
    argv = shlex.join(sys.argv[1:])
    report = functools.partial(_report, out, chosen, len(everything), head, argv)
    warm = [m for m in todo if args.runner == "auto" and warmable(m, cover)]
    fresh = [m for m in todo if m not in warm]
    gc.freeze()  # the heap imported so far is never garbage; the children's collections skip it
    print(f"{len(warm)} mutants for the warm runner, {len(fresh)} for the fresh one", file=sys.stderr, flush=True)
    tests = sorted({t.split("::")[0] for t in cover["seconds"]})
    again = run_phase(warm, functools.partial(warm_worker, tests=tests), cover, args, report)
    run_phase(fresh + again, worker, cover, args, report)


def identity(cover: dict, timeout: float) -> None:
    """The identity mutant (no change) through both runners: each must say 'survived'."""
    picked = sorted(cover["seconds"], key=lambda t: cover["seconds"][t])
    files = list(dict.fromkeys(t.split("::")[0] for t in picked))
    budget = 4 * sum(cover["seconds"].values()) + timeout
    scratch = Path(tempfile.mkdtemp(prefix="archstat-mut-"))
    shutil.copytree(ROOT / "archstat", scratch / "archstat")
    for runner in ("fresh", "warm"):
        start = time.monotonic()
        if runner == "fresh":
            status = fork(scratch, files, _Select(picked), budget, scratch / "fresh.log")
        else:
            pid = os.fork()
            if pid == 0:  # the warm state lives in a child, so that this process stays clean for the fresh runner
                warm = Warm(files, scratch / "collect.log")
                code = fork(None, files, _Select(picked), budget, scratch / "warm.log", setup=functools.partial(
                    _warm_setup, warm, [], []))
                os._exit({"survived": 0, "killed": 1}.get(code, 2))
            status = ["survived", "killed", "timeout"][os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])]
        print(f"identity, {runner} runner: {status} ({len(picked)} tests, {time.monotonic() - start:.0f} s)", flush=True)
    shutil.rmtree(scratch)


def warmable(m: Mutant, cover: dict) -> bool:
    """Whether the warm runner can make ``m``: a change inside a function that archstat's import
    does not run (see ``mutation_patch``)."""
    return IMPORT not in contexts(m, cover) and code_pairs(m) is not None


def _report(out: Path, chosen: list[Mutant], total: int, head: str, argv: str) -> None:
    write_csv(out / "mutants.csv", chosen)
    now = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()[0]:.1f}"
    write_summary(out / "summary.md", chosen, total, head, f"last mutant {now}", argv)


def run_phase(todo: list[Mutant], target, cover: dict, args: argparse.Namespace, report) -> list[Mutant]:
    """Run ``todo`` in ``args.jobs`` forked ``target`` workers; set each mutant's status as its line
    comes back, call ``report()`` after each batch.  Returns those a warm worker sent back ('fresh')."""
    if not todo:
        return []
    results = Path(tempfile.mkdtemp(prefix="archstat-mut-results-"))
    workers = []
    for w in range(args.jobs):
        pid = os.fork()
        if pid == 0:
            try:
                target(todo[w::args.jobs], cover, args.timeout, results / f"{w}.jsonl")
            finally:
                os._exit(0)
        workers.append(pid)
    by_key = {(m.path, m.index, m.what): m for m in todo}
    bar, offsets, again = tqdm(total=len(todo), desc="mutants", unit="mutant", file=sys.stderr), {}, []
    while workers:
        workers = [pid for pid in workers if not os.waitpid(pid, os.WNOHANG)[0]]
        time.sleep(1)
        for part in sorted(results.glob("*.jsonl")):
            with open(part) as fh:
                fh.seek(offsets.get(part, 0))
                lines = fh.readlines()
                offsets[part] = fh.tell()
            for line in lines:
                path, index, what, status, seconds, tests, runner = json.loads(line)
                m = by_key[(path, index, what)]
                bar.update()
                if status == "fresh":
                    again.append(m)
                    continue
                m.status, m.seconds, m.tests, m.runner = status, seconds, tests, runner
                tqdm.write(f"{m.status:9s} {runner:5s} {m.path}:{m.line} {m.what} ({m.tests} tests, {m.seconds:.1f} s)",
                           file=sys.stderr)
            if lines:
                report()
    bar.close()
    shutil.rmtree(results)
    return again


def _load_map(args: argparse.Namespace, chosen: list[Mutant]) -> dict:
    """The coverage map of every target file: read from ``--map`` if that file exists (it must have
    traced every chosen mutant's file: an untraced file would make all its mutants 'uncovered'),
    else built (and saved there).  Several maps (of different test files) are merged."""
    files = sorted({t.partition(":")[0] for t in args.targets} | {m.path for m in chosen})
    if args.map and all(Path(p).exists() for p in args.map):
        cover = merged([json.loads(Path(p).read_text()) for p in args.map])
        missing = sorted({m.path for m in chosen} - set(cover.get("files", [])))
        if missing:
            sys.exit(f"{' '.join(args.map)} did not trace {', '.join(missing)}: build a new map (another --map path)")
        return cover
    if len(args.map) > 1:
        sys.exit("several --map files are merged, not built: build each with its own --tests first")
    scratch = Path(tempfile.mkdtemp(prefix="archstat-mut-"))
    shutil.copytree(ROOT / "archstat", scratch / "archstat")
    print(f"coverage map of {len(args.tests)} test files ...", file=sys.stderr, flush=True)
    cover = coverage_map(scratch, args.tests, files, 40 * args.timeout)
    cover["files"] = files
    shutil.rmtree(scratch)
    if args.map:
        atomic_write(Path(args.map[0]), json.dumps(cover))
    return cover


def merged(maps: list[dict]) -> dict:
    """The union of coverage maps of disjoint test sets (the lines each context runs, the tests' times);
    a file counts as traced if every map traced it."""
    out: dict = {"lines": {}, "seconds": {}, "files": sorted(set.intersection(*(set(m.get("files", [])) for m in maps)))}
    for m in maps:
        for context, lines in m["lines"].items():
            out["lines"][context] = sorted(set(out["lines"].get(context, [])) | set(lines))
        out["seconds"].update(m["seconds"])
    return out


def run_one(m: Mutant, scratch: Path, cover: dict, timeout: float) -> None:
    """Run ``m`` against the tests that execute it (in ``scratch``, restored after); set its status."""
    picked = select(m, cover)
    if picked is None:
        m.status = "uncovered"
        return
    target = scratch / m.path
    original = target.read_text()
    target.write_text(mutated_source(m))
    start, budget = time.monotonic(), 4 * sum(cover["seconds"][t] for t in picked) + timeout
    files = list(dict.fromkeys(t.split("::")[0] for t in picked))
    try:
        m.status = fork(scratch, files, _Select(picked), budget, scratch / "mutant.log")
    finally:
        target.write_text(original)
    m.seconds, m.tests, m.runner = time.monotonic() - start, len(picked), "fresh"


def worker(ms: list[Mutant], cover: dict, timeout: float, results: Path) -> None:
    """A forked worker: its own scratch copy of archstat/, one JSON line per mutant; stops when
    the parent is gone (between mutants)."""
    parent = os.getppid()
    scratch = Path(tempfile.mkdtemp(prefix="archstat-mut-"))
    shutil.copytree(ROOT / "archstat", scratch / "archstat")
    try:
        with open(results, "a") as fh:
            for m in ms:
                if os.getppid() != parent:
                    break
                run_one(m, scratch, cover, timeout)
                fh.write(json.dumps([m.path, m.index, m.what, m.status, m.seconds, m.tests, m.runner]) + "\n")
                fh.flush()
    finally:
        shutil.rmtree(scratch)


def warm_worker(ms: list[Mutant], cover: dict, timeout: float, results: Path, tests: list[str]) -> None:
    """A forked worker of the warm runner: imports archstat and the test modules once, then forks
    each mutant from that state (``mutation_patch``).  A mutant it cannot make goes back as 'fresh'."""
    parent = os.getppid()
    logs = Path(tempfile.mkdtemp(prefix="archstat-mut-warm-"))
    warm = Warm(tests, logs / "collect.log")
    try:
        with open(results, "a") as fh:
            for m in ms:
                if os.getppid() != parent:
                    break
                picked, plan, start = select(m, cover), None, time.monotonic()
                if picked is None:
                    m.status = "uncovered"
                elif (plan := warm.plan(m)) is None:
                    m.status = "fresh"
                else:
                    budget = 4 * sum(cover["seconds"][t] for t in picked) + timeout
                    files = list(dict.fromkeys(t.split("::")[0] for t in picked))
                    again = [c[len(COLLECT):] for c in contexts(m, cover) if c.startswith(COLLECT)]
                    m.status = fork(None, files, _Select(picked), budget, logs / "mutant.log",
                                    setup=functools.partial(_warm_setup, warm, plan, again))
                    m.seconds, m.tests, m.runner = time.monotonic() - start, len(picked), "warm"
                fh.write(json.dumps([m.path, m.index, m.what, m.status, m.seconds, m.tests, m.runner]) + "\n")
                fh.flush()
    finally:
        shutil.rmtree(logs)


def _warm_setup(warm: Warm, plan: list, again: list[str]) -> None:
    """In a warm mutant's child: the mutated code in, the test modules that build at import forgotten."""
    warm.patch(plan)
    warm.forget(again)


if __name__ == "__main__":
    main()
