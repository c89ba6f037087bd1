"""Where impasto keeps what it makes once and reuses: converted weights, exported graphs. Imports no torch."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$IMPASTO_CACHE``, else ``$XDG_CACHE_HOME/impasto``, else ~/.cache/impasto."""
    env = os.environ.get("IMPASTO_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "impasto"
