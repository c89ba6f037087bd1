"""The ``impasto`` command line: one module per command (``stylize``, ``eval``, ``serve``, ``train``).

Flags of methods and trainers are derived from their declared options (:mod:`.flags`). Nothing here imports torch
until a command needs a model, so ``--help``, ``--version`` and errors about missing files come at once. Bad input is
reported as one line on stderr with exit code 2, before any work, and leaves no output file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import Any, Sequence

from ..errors import ImpastoError
from .flags import EXIT_USAGE, Parser

EXIT_INTERRUPTED = 130
# Each command's module (and the object in it, where a module serves two commands), imported only when that command
# runs or the full help is asked for: a one-picture command line should not pay for the others' imports.
COMMANDS = {
    "stylize": ("stylize", None),
    "batch": ("batch", None),
    "video": ("video", None),
    "eval-video": ("video", "EVAL"),
    "styles": ("styles", None),
    "export": ("export", None),
    "eval": ("evaluate", None),
    "serve": ("serve", None),
    "train": ("train", None),
}


def command(name: str) -> Any:
    """The module (or object) with ``add_parser`` and ``run`` for command `name`."""
    module, attr = COMMANDS[name]
    found = importlib.import_module(f".{module}", __name__)
    return getattr(found, attr) if attr else found


class _Version(argparse.Action):
    """--version, reading the installed version only when asked."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from .. import __version__

        print(f"impasto {__version__}")
        parser.exit()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of every subcommand (also used by the docs and the tests), or of command `only`."""
    parser = Parser(prog="impasto", description="Repaint a photo in the style of one or more paintings.")
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in COMMANDS if only is None else [only]:
        command(name).add_parser(sub)
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
    argv = list(sys.argv[1:] if argv is None else argv)
    # The command is the first word that is no flag (the top level's flags take no value).
    first = next((a for a in argv if not a.startswith("-")), None)
    top_help = first is not None and {"-h", "--help"} & set(argv[: argv.index(first)])
    parser = build_parser(first if first in COMMANDS and not top_help else None)
    argv = attach_dashed_values(parser, argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors (already printed as one line)
        return int(e.code or 0)
    try:
        return command(args.command).run(args)
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
