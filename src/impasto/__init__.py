"""impasto: neural style transfer that repaints a photo in the style of a painting.

``import impasto`` loads no torch: the heavy modules load on first use (``impasto.stylize``, ``impasto.load``,
``impasto.evaluate``).
"""

from __future__ import annotations

from .api import available_methods, available_trainers, load, stylize, stylize_batch
from .batch import batch
from .engine import Cancelled, Progress, Result
from .errors import ImpastoError

__all__ = [
    "stylize",
    "stylize_batch",
    "batch",
    "load",
    "evaluate",
    "available_methods",
    "available_trainers",
    "ImpastoError",
    "Cancelled",
    "Progress",
    "Result",
    "__version__",
]


def __getattr__(name: str):
    if name == "evaluate":  # imports torch
        from .metrics import evaluate

        return evaluate
    if name == "__version__":  # importlib.metadata costs a command line 30 ms of start-up: read it when asked
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("impasto")
        except PackageNotFoundError:  # running from a source tree without installing
            found = "0.0.0+local"
        globals()["__version__"] = found
        return found
    raise AttributeError(f"module 'impasto' has no attribute {name!r}")
