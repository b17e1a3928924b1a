"""The ``archstat`` command line: a thin argparse front end.

Each subcommand lives in its own module under ``archstat/commands/`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a ``run(args) -> int``.
Heavy imports happen inside ``run`` so that ``archstat --help`` stays fast.
Every ``ArchstatError`` becomes one line on stderr and exit status 2, and so does an ``OSError`` that
reaches the top (a folder the machine refuses to write).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from archstat.commands import COMMAND_MODULES, summary
from archstat.errors import ArchstatError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every other bad input
        self.exit(2, f"archstat: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="archstat", description=summary(__doc__))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"archstat.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ArchstatError as exc:
        print(f"archstat: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("archstat: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `archstat table vgg16 | head`
        return 0
    except OSError as exc:  # the machine refused a file (a read-only folder, a file where a folder should be)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"archstat: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
