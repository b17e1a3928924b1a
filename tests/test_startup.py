"""Start-up stays cheap: ``--help`` and usage errors import no torch, a table imports no dynamo.

Each check runs in a fresh interpreter (``sys.modules`` of the test process already holds torch)
and prints which heavy modules the command left loaded.  bench/bench_startup.py times the same
commands against ``import torch``.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Runs archstat's main with the given argv, then reports which heavy modules got imported.
PROBE = """
import json, sys
from archstat.cli import main
try:
    code = main({argv!r})
except SystemExit as exc:  # argparse exits for --help and for usage errors
    code = exc.code
heavy = ("torch", "torch._dynamo", "sympy", "pandas")
print(json.dumps({{"code": code, "loaded": [m for m in heavy if m in sys.modules]}}))
"""


def _probe(argv: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                          timeout=300, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["table", "--help"], ["table"], ["table", "alexnet", "--input", "3x"]])
def test_help_and_usage_errors_import_no_torch(argv: list[str]) -> None:
    out = _probe(argv)
    assert out["code"] in (0, 2)
    assert out["loaded"] == []


def test_zoo_table_imports_no_dynamo_and_no_sympy() -> None:
    # torch._dynamo (0.8 s) came in through nn.init.normal_ on meta weights; sympy (0.3 s) is for
    # --symbolic only.  Both are start-up a numeric table never needs.
    out = _probe(["table", "resnet50", "--format", "json"])
    assert out["code"] == 0
    assert "torch._dynamo" not in out["loaded"]
    assert "sympy" not in out["loaded"]
