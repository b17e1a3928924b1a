"""Start-up stays cheap: ``--help`` and usage errors import no torch, a table imports no dynamo.

Each check runs in a fresh interpreter (``sys.modules`` of the test process already holds torch)
and prints which heavy modules the command left loaded.  bench/bench_startup.py times the same
commands against ``import torch``.
"""
from __future__ import annotations

import json
import subprocess
import sys

# Runs archstat's main on each argv in turn, then reports the exit codes and which heavy modules
# got imported along the way.
PROBE = """
import contextlib, io, json, sys
from archstat.cli import main
codes = []
for argv in {argvs!r}:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            codes.append(main(argv))
        except SystemExit as exc:  # argparse exits for --help and for usage errors
            codes.append(exc.code)
heavy = ("torch", "torch._dynamo", "sympy", "pandas")
print(json.dumps({{"codes": codes, "loaded": [m for m in heavy if m in sys.modules]}}))
"""


def _probe(*argvs: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(argvs=list(argvs))], capture_output=True, text=True,
                          timeout=300, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_and_usage_errors_import_no_torch() -> None:
    from archstat.commands import COMMAND_MODULES

    names = [{"list_models": "list"}.get(m, m) for m in COMMAND_MODULES]
    usage_errors = [["table"], ["table", "alexnet", "--input", "3x"], ["table", "alexnet", "--batch", "0"],
                    ["nosuchcommand"]]
    out = _probe(["--help"], *([n, "--help"] for n in names), *usage_errors)
    assert out["codes"] == [0] * (1 + len(names)) + [2] * len(usage_errors)
    assert out["loaded"] == []


def test_zoo_table_imports_no_dynamo_and_no_sympy() -> None:
    # torch._dynamo (0.8 s) came in through nn.init.normal_ on meta weights; sympy (0.3 s) is for
    # --symbolic only.  Both are start-up a numeric table never needs.
    out = _probe(["table", "resnet50", "--format", "json"])
    assert out["codes"] == [0]
    assert "torch._dynamo" not in out["loaded"]
    assert "sympy" not in out["loaded"]
