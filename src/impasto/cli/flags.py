"""Command-line flags derived from declared options (:mod:`impasto.options`): one flag per option, its help, its
default and its checks, for every registered method (``impasto stylize``) and trainer (``impasto train NAME``)."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import ImpastoError
from ..options import Declared, declared, parse_text, parse_words

EXIT_USAGE = 2


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show '(default: X)' only where there is a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, [], argparse.SUPPRESS):
            return action.help or ""
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage dump) and exit with code 2, and a command's words may come in any
    order: ``impasto video IN -o OUT STYLE`` as well as ``impasto video IN STYLE -o OUT`` (plain argparse gives a
    list of positionals only the words before the first flag)."""

    _intermixing = False

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"impasto: error: {message}\n")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        # argparse's intermixed parsing calls back into parse_known_args: the flag sends those calls to argparse's own.
        # The top-level parser (its command is a subparser) cannot be intermixed; each command's parser is.
        if self._intermixing or any(isinstance(a, argparse._SubParsersAction) for a in self._actions):
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def finite_number(text: str) -> float:
    """argparse's converter for a flag that takes a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


@dataclass
class Flag:
    """One option as offered on the command line, possibly shared by several methods."""

    declared: Declared
    owners: dict[str, Any]  # method -> its default
    choices: tuple | None = None  # the union of the owners' choices (each method checks its own)

    @property
    def dest(self) -> str:
        return self.declared.name


def _type(d: Declared):
    """argparse's converter for a single-word option: a bad word is a one-line usage error naming the flag."""

    def convert(text: str) -> Any:
        try:
            return parse_text(d, text)
        except ImpastoError as e:
            raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None

    convert.__name__ = d.spec.kind  # argparse names the type in its messages
    return convert


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def add_declared(parser: argparse.ArgumentParser, flags: Sequence[Flag], groups: dict[str, Any]) -> None:
    """Add each flag to its help group; defaults stay the method's own (an absent flag is not in the namespace)."""
    for flag in flags:
        d, spec = flag.declared, flag.declared.spec
        defaults = {_show(v) for v in flag.owners.values()}
        if len(defaults) == 1:
            value = next(iter(defaults))
            shown = "" if value in ("None", "") else f" (default: {value})"
        else:
            shown = " (default: " + ", ".join(f"{_show(v)} for {m}" for m, v in flag.owners.items()) + ")"
        if set(flag.owners) != set(groups.get("_methods", flag.owners)) and groups.get("_methods"):
            shown += f" [{', '.join(flag.owners)}]"
        group_name = spec.group or ("common" if len(flag.owners) > 1 else next(iter(flag.owners)))
        group = groups[group_name] if group_name in groups else groups["common"]
        kwargs: dict[str, Any] = {
            "dest": d.name,
            "default": argparse.SUPPRESS,
            "help": spec.help.replace("%", "%%").replace("%%%%", "%%") + shown.replace("%", "%%"),
        }
        if spec.metavar:
            kwargs["metavar"] = spec.metavar
        if spec.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif spec.kind in ("ints", "floats", "images"):
            kwargs["nargs"] = "+"
        else:
            if spec.kind in ("int", "float", "names"):
                kwargs["type"] = _type(d)  # converted first, so that choices compare converted values
            if flag.choices is not None:
                kwargs["choices"] = flag.choices
        if spec.required:
            kwargs["required"] = True
        names = [d.flag]
        if not d.flag.startswith("--"):  # a short flag also has its long form
            names.append("--" + d.name.replace("_", "-"))
        group.add_argument(*names, **kwargs)


def collect(owners: dict[str, type]) -> list[Flag]:
    """The union of several Options classes' command-line options, in declaration order; a name shared by several
    must mean the same (kind and flag), and keeps each owner's default."""
    merged: dict[str, Flag] = {}
    for owner, options in owners.items():
        for d in declared(options):
            if not d.spec.cli:
                continue
            if d.name in merged:
                first = merged[d.name].declared
                if (first.spec.kind, first.flag) != (d.spec.kind, d.flag):
                    raise TypeError(f"option {d.name!r} is declared differently by {owner} and another method")
                merged[d.name].owners[owner] = d.default
                if d.spec.choices is not None:
                    known = merged[d.name].choices or ()
                    merged[d.name].choices = (*known, *(c for c in d.spec.choices if c not in known))
            else:
                choices = tuple(d.spec.choices) if d.spec.choices is not None else None
                merged[d.name] = Flag(d, {owner: d.default}, choices)
    return list(merged.values())


def values(args: argparse.Namespace, options: type, load_image=None) -> dict[str, Any]:
    """The values given on the command line for the options of one Options class, converted to their kinds.

    Image options are loaded with `load_image` (so a bad file fails before any work) when it is given.
    """
    out: dict[str, Any] = {}
    for d in declared(options):
        if not hasattr(args, d.name):
            continue
        raw = getattr(args, d.name)
        kind = d.spec.kind
        if kind in ("ints", "floats"):
            value: Any = parse_words(d, raw)
        elif kind == "image":
            value = load_image(raw) if load_image else raw
        elif kind == "images":
            value = [load_image(p) for p in raw] if load_image else list(raw)
        elif d.spec.zero_is_none and raw == 0:
            # A flag shared by several methods is parsed by one of their declarations: 0 means "none" for those
            # that say so (--size 0: the photo's own size), whichever method's parser read it.
            value = None
        else:
            value = raw
        out[d.name] = value
    return out


def given_flags(args: argparse.Namespace, flags: Sequence[Flag]) -> list[Flag]:
    """The flags present on the command line."""
    return [f for f in flags if hasattr(args, f.dest)]
