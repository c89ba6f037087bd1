"""impasto: neural style transfer that repaints a photo in the style of a painting."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("impasto")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+local"

from .api import available_methods, stylize, stylize_batch
from .errors import ImpastoError
from .metrics import evaluate

__all__ = ["stylize", "stylize_batch", "evaluate", "available_methods", "ImpastoError", "__version__"]
