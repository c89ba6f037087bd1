"""The Python API: ``impasto.stylize`` and the registry of methods."""

from __future__ import annotations

import importlib
from dataclasses import fields
from types import ModuleType
from typing import Any, Sequence

from PIL import Image

from .errors import ImpastoError
from .image import ImageLike, tensor_to_pil

# Each method is a module exposing `Options` (a dataclass) and `run(content, styles, options, *, callback, progress)`
# returning an object with `.image` (a (1, 3, H, W) tensor) and `.stopped`. A new method is a new module plus a line here.
METHODS: dict[str, str] = {
    "gatys": "impasto.gatys",
    "adain": "impasto.adain",
}


def available_methods() -> list[str]:
    """Names accepted by ``method=`` and ``--method``."""
    return list(METHODS)


def get_method(name: str) -> ModuleType:
    if name not in METHODS:
        raise ImpastoError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return importlib.import_module(METHODS[name])


def make_options(method: str, **options: Any):
    """Build a method's Options from keyword arguments, rejecting names the method does not know."""
    module = get_method(method)
    known = {f.name for f in fields(module.Options)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ImpastoError(f"method {method!r} has no option {unknown[0]!r}; known: {', '.join(sorted(known))}")
    return module.Options(**options)


def stylize(
    content: ImageLike,
    styles: ImageLike | Sequence[ImageLike],
    method: str = "gatys",
    *,
    callback=None,
    progress: bool = False,
    **options: Any,
) -> Image.Image:
    """Repaint `content` in the style of `styles` (paths, PIL images or (1,)3xHxW tensors in [0, 1]).

    ``options`` are the method's Options fields, e.g. ``size=384, steps=200, style_weight=20, seed=0``.
    Returns an RGB PIL image. Raises ImpastoError for bad input and KeyboardInterrupt if interrupted.
    """
    if not isinstance(styles, (list, tuple)):
        styles = [styles]
    module = get_method(method)
    opts = make_options(method, **options)
    result = module.run(content, list(styles), opts, callback=callback, progress=progress)
    if result.stopped == "interrupted":
        raise KeyboardInterrupt
    return tensor_to_pil(result.image)
