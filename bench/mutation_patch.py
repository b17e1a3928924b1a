"""The warm runner of ``bench/mutation.py``: a mutant in memory, in a fork of a process that has
already imported torch, archstat, pytest and the test modules.

The fresh runner pays, per mutant, archstat's import and pytest's collection of the test modules in
a new child (about 45 s per mutant at load 10 on 2 cores).  Here a worker pays them once; for each
mutant it forks a child that swaps the mutated functions' code in place and runs the mapped tests.

Why swapping code is the mutant, exactly (for a mutation inside a function body):

* The mutated file is compiled from its mutated AST, whose nodes keep the original line and column
  numbers, so every code object the mutation did not touch compares equal (``==`` on code objects
  compares bytecode, constants, names and line tables) to the one the import compiled; the touched
  ones (the mutated function and the functions that contain it) differ.  ``code_pairs`` pairs them.
* Every live function object of that file whose ``__code__`` equals a touched original gets the
  mutated code (``function.__code__`` is writable; the free variables are the same, since a
  mutation renames nothing).  The function object keeps its identity, so every reference to it
  sees the mutant: ``from X import f`` in other modules, registries filled by decorators, wrappers,
  bound methods.  Closures made later come from the patched parent's code.
* What the import or the collection computed with the old code (module constants, default
  arguments, class bodies, tables a test module builds at import) is not recomputed.  So a mutant
  of module-level code (``code_pairs`` returns None), or one whose node runs at archstat's import
  (the map's ``<import>`` context), goes to the fresh runner; test modules whose own import runs
  the node (the map's ``<collect>`` contexts) are dropped from ``sys.modules`` in the child, so
  pytest imports them again, under the mutant.  ``functools`` caches of archstat are cleared.
"""
from __future__ import annotations

import ast
import gc
import os
import sys
import types
from pathlib import Path

import pytest
from mutants import ROOT, Mutant, mutated_tree


def _codes(code: types.CodeType) -> list[types.CodeType]:
    """``code`` and every code object nested in its constants, depth first (a fixed order)."""
    out = [code]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out += _codes(const)
    return out


def code_pairs(m: Mutant) -> list[tuple[types.CodeType, types.CodeType]] | None:
    """(original, mutated) code of each function the mutation touches; None if it touches
    module-level or class-body code (the warm runner cannot replay that)."""
    filename = str(ROOT / m.path)
    before = compile(ast.parse((ROOT / m.path).read_text()), filename, "exec", dont_inherit=True)
    after = compile(mutated_tree(m), filename, "exec", dont_inherit=True)
    old, new = _codes(before), _codes(after)
    if len(old) != len(new):
        return None
    pairs = [(a, b) for a, b in zip(old, new) if a != b]  # the changed code and every code around it
    if not pairs or any(not (a.co_flags & 0x02) and _own(a) != _own(b) for a, b in pairs):  # 0x02: CO_NEWLOCALS
        return None  # nothing changed (a no-op mutation), or module or class-body code itself changed
    return [(a, b) for a, b in pairs if a.co_flags & 0x02]  # the functions: patch them; the rest only holds them


def _own(code: types.CodeType) -> types.CodeType:
    """``code`` without its nested code objects: what differs here changed in this code itself."""
    return code.replace(co_consts=tuple(None if isinstance(c, types.CodeType) else c for c in code.co_consts))


class Warm:
    """The live state a worker forks its mutants from: archstat's function objects by file, its
    caches, and the test modules pytest imported."""

    def __init__(self, tests: list[str], log: Path) -> None:
        os.chdir(ROOT)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        saved = os.dup(1), os.dup(2)
        os.dup2(out, 1)
        os.dup2(out, 2)
        try:  # imports conftest, the test modules and archstat, as the children's pytest.main will find them
            code = pytest.main([*tests, "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:warnings"])
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
        if code != 0:
            sys.exit(f"collecting the tests failed in the warm runner; see {log}")
        self.functions: dict[str, list[types.FunctionType]] = {}
        for obj in gc.get_objects():
            if isinstance(obj, types.FunctionType):
                self.functions.setdefault(obj.__code__.co_filename, []).append(obj)
        self.caches = [v for name, mod in list(sys.modules.items()) if name.startswith("archstat")
                       for v in vars(mod).values() if callable(getattr(v, "cache_clear", None))]
        self.test_modules = {str(Path(getattr(mod, "__file__", "") or "")): name
                             for name, mod in list(sys.modules.items())
                             if str(getattr(mod, "__file__", "") or "").startswith(str(ROOT / "tests"))}
        gc.freeze()  # the children's garbage collections (pytest runs five at its exit) skip this heap: 0.4 s each

    def plan(self, m: Mutant) -> list[tuple[types.FunctionType, types.CodeType]] | None:
        """The live functions of ``m``'s file whose code the mutation touches, each with its mutated
        code; None if the warm runner cannot make this mutant (module-level code, or no live
        function runs the touched code)."""
        pairs = code_pairs(m)
        if pairs is None:
            return None
        plan = [(fn, new) for fn in self.functions.get(str(ROOT / m.path), [])
                for old, new in pairs if fn.__code__ == old]
        return plan or None

    def patch(self, plan: list[tuple[types.FunctionType, types.CodeType]]) -> None:
        """In the child: swap in the mutated code, clear archstat's caches."""
        for fn, new in plan:
            fn.__code__ = new
        for cache in self.caches:
            cache.cache_clear()

    def forget(self, test_files: list[str]) -> None:
        """In the child: drop these test modules, so that pytest imports them again (under the mutant)."""
        for t in test_files:
            name = self.test_modules.get(str(ROOT / t))
            if name:
                sys.modules.pop(name, None)
