"""``impasto serve``: a local web app and HTTP API (FastAPI + uvicorn) around the style-transfer methods.

The core never imports this package; it imports the core.
"""

from .app import create_app
from .settings import ServeSettings

__all__ = ["create_app", "ServeSettings"]
