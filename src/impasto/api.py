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
# returning an object with `.image` (a (1, 3, H, W) tensor) and `.stopped`; optionally `run_batch(contents, styles,
# options)` returning a list of such tensors when it can share work across pictures. A new method is a new module plus
# a line here.
METHODS: dict[str, str] = {
    "gatys": "impasto.gatys",
    "adain": "impasto.adain",
}


def available_methods() -> list[str]:
    """Names accepted by ``method=`` and ``--method``."""
    return list(METHODS)


def get_method(name: str) -> ModuleType:
    """The module implementing method `name` (imported on first use), or a one-line ImpastoError."""
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


def stylize_batch(
    contents: Sequence[ImageLike],
    styles: ImageLike | Sequence[ImageLike],
    method: str = "adain",
    *,
    progress: bool = False,
    **options: Any,
) -> list[Image.Image]:
    """Repaint many `contents` with the same `styles`; returns one RGB PIL image per content, in order.

    AdaIN keeps its model loaded and encodes each style once for the whole batch; other methods run picture by
    picture. ``options`` are the method's Options fields, as for :func:`stylize`.
    """
    if not isinstance(styles, (list, tuple)):
        styles = [styles]
    module = get_method(method)
    opts = make_options(method, **options)
    if hasattr(module, "run_batch"):
        return [tensor_to_pil(t) for t in module.run_batch(list(contents), list(styles), opts)]
    out = []
    for content in contents:
        result = module.run(content, list(styles), opts, progress=progress)
        if result.stopped == "interrupted":
            raise KeyboardInterrupt
        out.append(tensor_to_pil(result.image))
    return out
