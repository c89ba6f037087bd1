"""The ``impasto`` command line: one module per command (``stylize``, ``eval``, ``serve``, ``train``).

Flags of methods and trainers are derived from their declared options (:mod:`.flags`). Nothing here imports torch
until a command needs a model, so ``--help``, ``--version`` and errors about missing files come at once. Bad input is
reported as one line on stderr with exit code 2, before any work, and leaves no output file.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from .. import __version__
from ..errors import ImpastoError
from . import evaluate, serve, stylize, train
from .flags import EXIT_USAGE, Parser

EXIT_INTERRUPTED = 130
COMMANDS = {"stylize": stylize, "eval": evaluate, "serve": serve, "train": train}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (also used by the docs and the tests)."""
    parser = Parser(prog="impasto", description="Repaint a photo in the style of one or more paintings.")
    parser.add_argument("--version", action="version", version=f"impasto {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on `argv` (default: sys.argv[1:]); returns the exit code (2 for bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors (already printed as one line)
        return int(e.code or 0)
    try:
        return COMMANDS[args.command].run(args)
    except ImpastoError as e:
        if os.environ.get("IMPASTO_DEBUG"):
            raise
        print(f"impasto: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("impasto: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print("impasto: error: out of memory; try a smaller --size", file=sys.stderr)
        return 1
    except RuntimeError as e:
        # torch.OutOfMemoryError (CUDA) and MPS allocation failures are RuntimeErrors saying so.
        if "out of memory" not in str(e).lower():
            raise
        print("impasto: error: out of memory on the device; try a smaller --size or --device cpu", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"impasto: error: {e.filename or ''}{': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
