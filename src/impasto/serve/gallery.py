"""The built-in styles as a gallery: names and thumbnails that impasto paints itself from the bundled example photo.

Thumbnails are painted the first time they are asked for (a fraction of a second each) and kept in memory.
"""

from __future__ import annotations

import io
import threading
from importlib import resources

from ..errors import ImpastoError

THUMB_SIZE = 192
EXAMPLE = "chelsea.png"


class Gallery:
    """Built-in style names and their thumbnails (JPEG bytes), made once per server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thumbs: dict[str, bytes] = {}
        self._engine = None

    def names(self) -> list[str]:
        from ..methods.fast import builtin_styles

        return builtin_styles()

    def thumbnail(self, name: str) -> bytes:
        """The example photo painted in style `name`, as JPEG; ImpastoError for an unknown name."""
        if name not in self.names():
            raise ImpastoError(f"no built-in style {name!r}")
        with self._lock:  # one painter at a time; the others wait for its result
            if name not in self._thumbs:
                self._thumbs[name] = self._paint(name)
            return self._thumbs[name]

    def _paint(self, name: str) -> bytes:
        from .. import api
        from ..core.image import load_image, tensor_to_pil

        if self._engine is None:
            self._engine = api.load("fast", model=name, size=THUMB_SIZE)
        photo = load_image(str(resources.files("impasto") / "examples" / EXAMPLE))
        result = self._engine.run(photo, [], api.make_options("fast", model=name, size=THUMB_SIZE))
        buf = io.BytesIO()
        tensor_to_pil(result.image).save(buf, format="JPEG", quality=88)
        return buf.getvalue()
