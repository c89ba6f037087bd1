"""The Python API and the registries of methods and trainers.

A method is a module exposing ``Options`` (a dataclass declared with :func:`impasto.options.option`, with a
``validate(n_styles)`` method) and ``load(options) -> Engine`` (see :mod:`impasto.engine`); a trainer is a module
exposing ``Config`` (declared the same way, with ``validate()``) and ``train(config, *, resume, overwrite, progress,
on_step)``. Registering either is one line below; the command line, the HTTP API and the web page find it there.

Importing this module imports no torch: methods are imported on first use.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, Sequence

from .errors import ImpastoError
from .options import make

if TYPE_CHECKING:
    from PIL import Image

    from .core.image import ImageLike
    from .engine import Engine

METHODS: dict[str, str] = {
    "gatys": "impasto.methods.gatys",
    "adain": "impasto.methods.adain",
    "fast": "impasto.methods.fast",
}
TRAINERS: dict[str, str] = {
    "adain": "impasto.train.adain",
    "fast": "impasto.train.fast",
    "fast-add": "impasto.train.fast.add",
    "fast-arbitrary": "impasto.train.fast.arbitrary",
    "distill": "impasto.train.distill",
}


def available_methods() -> list[str]:
    """Names accepted by ``method=`` and ``--method``."""
    return list(METHODS)


def available_trainers() -> list[str]:
    """Names accepted by ``impasto train NAME``."""
    return list(TRAINERS)


def get_method(name: str) -> ModuleType:
    """The module declaring method `name` (imported on first use), or a one-line ImpastoError."""
    if name not in METHODS:
        raise ImpastoError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return importlib.import_module(METHODS[name])


def get_trainer(name: str) -> ModuleType:
    """The module declaring trainer `name`, or a one-line ImpastoError."""
    if name not in TRAINERS:
        raise ImpastoError(f"unknown trainer {name!r}; choose from {', '.join(TRAINERS)}")
    return importlib.import_module(TRAINERS[name])


def takes_style_images(module: ModuleType) -> bool:
    """Whether a method paints from style images (a module sets ``STYLE_IMAGES = False`` when it paints trained
    styles instead)."""
    return bool(getattr(module, "STYLE_IMAGES", True))


def method_title(module: ModuleType) -> tuple[str, str]:
    """(first paragraph, the rest) of a method module's docstring, for help texts and the web page."""
    doc = (module.__doc__ or module.__name__).strip()
    title, _, rest = doc.partition("\n\n")
    rest = rest.split("This module declares")[0]
    return " ".join(title.split()).rstrip("."), " ".join(rest.split())


def make_options(method: str, **options: Any):
    """Build a method's Options from keyword arguments, rejecting names the method does not know."""
    return make(get_method(method).Options, options, f"method {method!r}")


def load(method: str = "gatys", **options: Any) -> "Engine":
    """Load a method once (networks, weights) to run it on many pictures; ``options`` are its Options fields.

    >>> engine = impasto.load("adain", size=384)
    >>> pictures = [r.image for r in engine.run_many(["a.jpg", "b.jpg"], ["starry.jpg"])]
    """
    module = get_method(method)
    return module.load(make_options(method, **options))


def stylize(
    content: "ImageLike",
    styles: "ImageLike | Sequence[ImageLike]",
    method: str = "gatys",
    *,
    callback=None,
    progress: bool = False,
    **options: Any,
) -> "Image.Image":
    """Repaint `content` in the style of `styles` (paths, PIL images or (1,)3xHxW tensors in [0, 1]).

    ``options`` are the method's Options fields, e.g. ``size=384, steps=200, style_weight=20, seed=0``.
    `callback(Progress)` reports progress (see :mod:`impasto.engine`). Returns an RGB PIL image. Raises
    ImpastoError for bad input and KeyboardInterrupt if interrupted. Loads the method for this one call: for many
    pictures, use :func:`load` once.
    """
    from .core.image import tensor_to_pil

    if not isinstance(styles, (list, tuple)):
        styles = [styles]
    opts = make_options(method, **options)
    opts.validate(len(styles))
    result = get_method(method).load(opts).run(content, list(styles), opts, callback=callback, progress=progress)
    if result.stopped == "interrupted":
        raise KeyboardInterrupt
    return tensor_to_pil(result.image)


def stylize_batch(
    contents: "Sequence[ImageLike]",
    styles: "ImageLike | Sequence[ImageLike]",
    method: str = "adain",
    *,
    progress: bool = False,
    **options: Any,
) -> "list[Image.Image]":
    """Repaint many `contents` with the same `styles`; returns one RGB PIL image per content, in order.

    The method is loaded once and each style is encoded once for the whole batch. ``options`` are the method's
    Options fields, as for :func:`stylize`.
    """
    from .core.image import tensor_to_pil

    if not isinstance(styles, (list, tuple)):
        styles = [styles]
    opts = make_options(method, **options)
    opts.validate(len(styles))
    out = []
    for result in get_method(method).load(opts).run_many(list(contents), list(styles), opts, progress=progress):
        if result.stopped == "interrupted":
            raise KeyboardInterrupt
        out.append(tensor_to_pil(result.image))
    return out
