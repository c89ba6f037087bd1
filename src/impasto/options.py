"""Options declared once: a dataclass field per option, whose metadata drives every interface.

A method's (or trainer's) ``Options`` is a plain dataclass whose fields are made with :func:`option`. The command
line's flags, their help and defaults, the HTTP API's form fields and their validation, ``GET /api/methods`` and the
web page's controls are all read from those fields, so a default or a bound is written in one place only.

This module imports no torch: ``impasto --help`` reads the declarations without loading any model code.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, Iterator, Sequence

from .errors import ImpastoError

# How an option's value is written on the command line and in an HTTP form, and checked:
# int, float, str, bool; ints / floats / names (several, given as separate words or comma-separated);
# image / images (paths on the command line, loaded before any work); bytes (a size such as 6G).
KINDS = ("int", "float", "str", "bool", "ints", "floats", "names", "image", "images", "bytes")
_KEY = "impasto"

# Vocabularies several methods share (the modules that act on them import these).
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PRESERVE_COLOR = ("none", "luminance", "histogram")


@dataclass(frozen=True)
class Spec:
    """What the interfaces need to know about one option."""

    help: str
    kind: str
    flag: str | None = None  # the command line's flag; None: --name-with-dashes
    cli: bool = True  # offered by the command line
    http: bool = False  # offered by the HTTP API and the web page
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False  # the value must be above `minimum`, not equal to it
    metavar: str | None = None
    group: str | None = None  # the section of --help; None: the method's own section (or "common" if shared)
    label: str | None = None  # a short name for the web page's control; None: from the option's name
    step: float | None = None  # the web page's slider step
    zero_is_none: bool = False  # on the command line, 0 means None (e.g. --style-size 0 keeps the style's size)
    load: bool = False  # decides what an engine loads (network, weights, device) rather than one run's result
    required: bool = False  # the command line requires it (trainers' folders and output)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown option kind {self.kind!r}; choose from {', '.join(KINDS)}")


def option(default: Any, help: str, kind: str, **spec: Any) -> Any:
    """A dataclass field declaring an option: its default, help text, kind and how interfaces offer it."""
    return field(default=default, metadata={_KEY: Spec(help=help, kind=kind, **spec)})


@dataclass(frozen=True)
class Declared:
    """One declared option: its name, default and spec."""

    name: str
    default: Any
    spec: Spec

    @property
    def flag(self) -> str:
        return self.spec.flag or "--" + self.name.replace("_", "-")


def declared(options: type | Any) -> list[Declared]:
    """The declared options of an Options class (or instance), in declaration order."""
    out = []
    for f in fields(options):
        spec = f.metadata.get(_KEY)
        if spec is not None:
            out.append(Declared(f.name, default_of(f), spec))
    return out


def default_of(f: Field) -> Any:
    """A dataclass field's default value (calling its factory), or None when it has none."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def field_names(options: type | Any) -> set[str]:
    """The names of all fields of an Options class or instance."""
    return {f.name for f in fields(options)}


def make(cls: type, values: dict[str, Any], what: str) -> Any:
    """``cls(**values)``, refusing names the class does not know with one line naming them."""
    known = field_names(cls)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ImpastoError(f"{what} has no option {unknown[0]!r}; known: {', '.join(sorted(known))}")
    return cls(**values)


def load_key(options: Any) -> tuple:
    """The values of the options that decide what an engine loads: equal keys can share one engine."""
    return tuple((d.name, _hashable(getattr(options, d.name))) for d in declared(options) if d.spec.load)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def check_declared(options: Any) -> None:
    """Check every declared option against its kind, choices and bounds; ImpastoError names the first bad one.

    Messages name the command line's flag; the HTTP API rewrites them to its field names.
    """
    for d in declared(options):
        value = getattr(options, d.name)
        if value is None:
            continue
        spec = d.spec
        if spec.choices is not None and value not in spec.choices:
            raise ImpastoError(f"unknown {d.flag} {value!r}; choose from {', '.join(spec.choices)}")
        if spec.kind in ("int", "float"):
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if spec.kind == "int" and not isinstance(value, int):
                numeric = False
            if not numeric or (isinstance(value, float) and not math.isfinite(value)):
                expected = "a whole number" if spec.kind == "int" else "a finite number"
                raise ImpastoError(f"{d.flag} must be {expected}, got {value!r}")
            low, high = spec.minimum, spec.maximum
            below = low is not None and (value <= low if spec.exclusive_minimum else value < low)
            if below or (high is not None and value > high):
                raise ImpastoError(f"{d.flag} must be {_range(spec)}, got {value}")


def _range(spec: Spec) -> str:
    low, high = spec.minimum, spec.maximum
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}"
    if low is not None:
        return f"{'above' if spec.exclusive_minimum else 'at least'} {low:g}"
    return f"at most {high:g}"


# ---------------------------------------------------------------------------------------------------------------
# Text to values (the command line's words, the HTTP API's form fields)


def parse_text(d: Declared, text: str) -> Any:
    """The value of option `d` from one piece of text (a form field, or one command-line word)."""
    kind = d.spec.kind
    if kind == "int":
        try:
            value: Any = int(text.strip())
        except ValueError:
            raise ImpastoError(f"{d.flag}: expected a whole number, got {text[:40]!r}") from None
        return None if d.spec.zero_is_none and value == 0 else value
    if kind == "float":
        return _float(d, text)
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ImpastoError(f"{d.flag}: expected true or false, got {text[:40]!r}")
    if kind in ("ints", "floats", "names"):
        return parse_words(d, [text])
    return text


def parse_words(d: Declared, words: Sequence[str]) -> list:
    """Several values given as separate words and/or comma-separated ('1 2' or '1,2')."""
    parts = [p.strip() for word in words for p in str(word).split(",") if p.strip()]
    if not parts:
        raise ImpastoError(f"{d.flag}: expected one or more values, got nothing")
    if d.spec.kind == "names":
        return parts
    if d.spec.kind == "ints":
        try:
            return [int(p) for p in parts]
        except ValueError:
            raise ImpastoError(f"{d.flag}: expected whole numbers, got {' '.join(words)[:60]!r}") from None
    return [_float(d, p, nonnegative=True) for p in parts]


def _float(d: Declared, text: str, nonnegative: bool = False) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ImpastoError(f"{d.flag}: expected a number, got {text[:40]!r}") from None
    if not math.isfinite(value) or (nonnegative and value < 0):
        raise ImpastoError(f"{d.flag}: expected a finite number >= 0, got {text[:40]!r}")
    return value


def describe(d: Declared) -> dict[str, Any]:
    """An option as JSON for the HTTP API and the web page: name, type, help, default, bounds, choices."""
    kind = d.spec.kind
    json_type = {
        "int": "integer",
        "float": "number",
        "bool": "boolean",
        "ints": "array",
        "floats": "array",
        "names": "array",
    }.get(kind, "string")
    default = d.default
    if isinstance(default, tuple):
        default = list(default)
    out: dict[str, Any] = {
        "name": d.name,
        "type": json_type,
        "label": d.spec.label or d.name.replace("_", " ").capitalize(),
        "description": d.spec.help,
        "default": default,
    }
    for key in ("minimum", "maximum", "step"):
        value = getattr(d.spec, key)
        if value is not None:
            out[key] = value
    if d.spec.choices is not None:
        out["choices"] = list(d.spec.choices)
    return out


def iter_http(options: type | Any) -> Iterator[Declared]:
    """The options a method offers over HTTP."""
    return (d for d in declared(options) if d.spec.http)
