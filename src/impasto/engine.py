"""What every method's engine offers: load once, run on many pictures, report progress through one callback.

An engine holds what is expensive to make (networks on their device, weights, cached style encodings) and runs the
method on one picture, a batch, or an iterator of frames. Progress and cancellation share one contract: the engine
calls ``callback(progress)`` after every step (iterative methods) or once per picture (single-pass methods), and the
caller stops the run by raising from it (:class:`Cancelled` by convention); the exception propagates to the caller.
Ctrl-C is different: an iterative engine catches it and returns the last iterate with ``stopped="interrupted"``.

This module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence


@dataclass
class Progress:
    """One progress report: `step` of `total`, the picture so far (iterative methods) and the loss terms."""

    step: int
    total: int
    image: Any = None  # (1, 3, h, w) tensor in [0, 1] at the current scale, or None
    losses: dict = field(default_factory=dict)
    index: int = 0  # which picture of a batch or stream


Callback = Callable[[Progress], None]


class Cancelled(Exception):
    """Raised from a progress callback to stop a run."""


@dataclass
class Result:
    """A finished run: the picture and how the run went (methods add what they know)."""

    image: Any  # (1, 3, H, W) fp32 tensor in [0, 1], on the CPU; None when the run made a file instead
    steps: int = 1
    stopped: str = "done"  # "done", "budget", "converged" or "interrupted"
    losses: dict = field(default_factory=dict)
    history: list = field(default_factory=list)  # total loss per step (iterative methods)
    scales: list = field(default_factory=list)  # longest side of each scale, coarsest first
    tiles: list = field(default_factory=list)  # tiles each scale ran in (1 = the whole image at once)
    # A file the run made instead of (or besides) a picture, e.g. a video with its sound, and its media type; the
    # caller owns it (the server moves it into its results).
    path: Any = None
    media_type: str | None = None


class Engine(Protocol):
    """A method loaded once (see the module's notes)."""

    options: Any  # the Options the engine was loaded with: defaults for every run

    def prepare(self, n_styles: int = 0) -> None: ...

    def run(
        self,
        content: Any,
        styles: Sequence[Any],
        options: Any = None,
        *,
        callback: Callback | None = None,
        progress: bool = False,
    ) -> Result: ...

    def run_many(
        self,
        contents: Iterable[Any],
        styles: Sequence[Any],
        options: Any = None,
        *,
        callback: Callback | None = None,
        progress: bool = False,
    ) -> Iterator[Result]: ...


class BaseEngine:
    """Shared plumbing: `options` checked against what was loaded, and run_many as a loop over run."""

    def __init__(self, options: Any) -> None:
        self.options = options

    def prepare(self, n_styles: int = 0) -> None:
        """Start, in the background, what runs with `n_styles` style images will need (an engine that opens its
        models lazily); returns at once. A command line calls it before it reads the pictures."""

    def resolve(self, options: Any, n_styles: int) -> Any:
        """The options of one run: the engine's own when None; refuses options that need another engine."""
        from .options import load_key

        opts = self.options if options is None else options
        if type(opts) is not type(self.options):
            from .errors import ImpastoError

            raise ImpastoError(f"these options are another method's ({type(opts).__module__}); load its engine")
        if load_key(opts) != load_key(self.options):
            changed = [a[0] for a, b in zip(load_key(opts), load_key(self.options)) if a != b]
            from .errors import ImpastoError

            raise ImpastoError(f"option {changed[0]!r} differs from the loaded engine's; load another engine for it")
        opts.validate(n_styles)
        return opts

    def run(self, content, styles, options=None, *, callback=None, progress=False) -> Result:  # pragma: no cover
        raise NotImplementedError

    def run_many(
        self,
        contents: Iterable[Any],
        styles: Sequence[Any],
        options: Any = None,
        *,
        callback: Callback | None = None,
        progress: bool = False,
    ) -> Iterator[Result]:
        """Run on each of `contents` in turn (a list or a stream of frames), yielding each result as it is made."""
        for index, content in enumerate(contents):
            inner = None
            if callback is not None:

                def inner(p: Progress, index: int = index) -> None:
                    callback(replace(p, index=index))

            yield self.run(content, styles, options, callback=inner, progress=progress)


class StreamingEngine(BaseEngine):
    """An engine whose work is done in run_many (set-up shared by many pictures); run is its one-picture case."""

    def run(
        self,
        content: Any,
        styles: Sequence[Any] = (),
        options: Any = None,
        *,
        callback: Callback | None = None,
        progress: bool = False,
    ) -> Result:
        """One picture; `callback` is called once with the result."""
        return next(self.run_many([content], styles, options, callback=callback, progress=progress))
