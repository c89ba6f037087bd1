"""The ``impasto`` command line: one module per command (``stylize``, ``eval``, ``serve``, ``train``).

Flags of methods and trainers are derived from their declared options (:mod:`.flags`). Nothing here imports torch
until a command needs a model, so ``--help``, ``--version`` and errors about missing files come at once. Bad input is
reported as one line on stderr with exit code 2, before any work, and leaves no output file.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Sequence

from .. import __version__
from ..errors import ImpastoError
from . import batch, evaluate, export, serve, styles, stylize, train, video
from .flags import EXIT_USAGE, Parser

EXIT_INTERRUPTED = 130
COMMANDS = {
    "stylize": stylize,
    "batch": batch,
    "video": video,
    "eval-video": video.EVAL,
    "styles": styles,
    "export": export,
    "eval": evaluate,
    "serve": serve,
    "train": train,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (also used by the docs and the tests)."""
    parser = Parser(prog="impasto", description="Repaint a photo in the style of one or more paintings.")
    parser.add_argument("--version", action="version", version=f"impasto {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def attach_dashed_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Join a flag that takes one value to a next word that starts with a dash and is no flag (``--max-memory -5G``
    becomes ``--max-memory=-5G``): argparse would take that word for an unknown flag and say "expected one
    argument", where the option's own check names the bad value."""
    takes_value, known = set(), set()

    def walk(p: argparse.ArgumentParser) -> None:
        for action in p._actions:  # argparse has no public listing of its actions
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)
            known.update(action.option_strings)
            if action.option_strings and action.nargs is None:
                takes_value.update(action.option_strings)

    walk(parser)
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        following = argv[i + 1] if i + 1 < len(argv) else None
        if word in takes_value and following and following.startswith("-") and following not in known:
            out.append(f"{word}={following}")
            i += 2
            continue
        out.append(word)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on `argv` (default: sys.argv[1:]); returns the exit code (2 for bad input)."""
    if not os.environ.get("IMPASTO_DEBUG"):
        # Libraries' warnings (Pillow's about damage it worked around, torch's about its internals) are not a
        # user's business: what matters reaches them as impasto's own one-line messages. IMPASTO_DEBUG shows them.
        warnings.simplefilter("ignore")
    parser = build_parser()
    argv = attach_dashed_values(parser, list(sys.argv[1:] if argv is None else argv))
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
