"""A toy method: the photo made brighter or darker.

Not style transfer at all: the tests register it with one line (``api.METHODS["toy"] = "toy_method"``) to show that
a method is one module, and that the command line, the HTTP API and the web page find it and its options with no
other edit.

This module declares the method's options and its engine, which needs no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from impasto.engine import BaseEngine, Callback, Progress, Result
from impasto.errors import ImpastoError
from impasto.options import check_declared, option


@dataclass
class Options:
    """Settings of a toy run."""

    size: int | None = option(64, "longest side of the output in pixels", "int", http=True, minimum=1, label="Size")
    brightness: float = option(
        1.0,
        "how bright the picture is: 0 black, 1 the photo, 2 twice as bright",
        "float",
        http=True,
        minimum=0,
        maximum=2,
        label="Brightness",
        step=0.1,
    )
    device: str = option("cpu", "compute device (the toy always runs on the CPU)", "str", load=True)

    def validate(self, n_styles: int) -> None:
        """Raise ImpastoError naming the first bad setting."""
        check_declared(self)
        if n_styles < 1:
            raise ImpastoError("at least one style image is needed")


class ToyEngine(BaseEngine):
    """Nothing to load; `run` scales the photo's pixels by the brightness."""

    def run(
        self,
        content: Any,
        styles: Sequence[Any],
        options: Options | None = None,
        *,
        callback: Callback | None = None,
        progress: bool = False,
    ) -> Result:
        from impasto.core.image import as_pil, fit_longest_side, pil_to_tensor

        opts = self.resolve(options, len(styles))
        photo = as_pil(content)
        if opts.size is not None:
            photo = fit_longest_side(photo, opts.size)
        image = (pil_to_tensor(photo) * opts.brightness).clamp(0, 1)
        if callback is not None:
            callback(Progress(step=1, total=1, image=image))
        return Result(image=image)


def load(options: Options | None = None) -> ToyEngine:
    """The toy engine."""
    return ToyEngine(options or Options())
