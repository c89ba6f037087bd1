"""From an HTTP request's uploads and form fields to a job's images and method Options.

Uploads are identified by their bytes (never the file name or the client's content type), their pixel count is read
from the header before anything is decoded, and only a few raster formats are accepted. Form fields are offered to a
method only where its Options dataclass has a field of that name.
"""

from __future__ import annotations

import io
import math
import re
import struct
from dataclasses import MISSING, fields
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from ..api import get_method, make_options
from ..color import PRESERVE_COLOR
from ..errors import ImpastoError
from ..image import fit_longest_side, to_rgb
from .settings import ServeSettings

# Formats Pillow decodes itself; anything else (EPS via Ghostscript, PDF, SVG...) is refused on purpose.
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")  # JPEG includes MPO (phone cameras)
FORMAT_NAMES = "PNG, JPEG, WebP, BMP, TIFF or GIF"

# The options a client may set over HTTP, with their documentation; everything else is the server's business.
HTTP_OPTIONS: dict[str, dict[str, Any]] = {
    "size": {
        "type": "integer",
        "description": "Longest side of the output in pixels (the photo is scaled to it); capped by the server.",
    },
    "steps": {
        "type": "integer",
        "description": "Optimization steps (iterative methods): more is slower and more thoroughly painted.",
    },
    "strength": {
        "type": "number",
        "description": "How much style: 0 keeps the photo, 1 is full style.",
        "minimum": 0.0,
        "maximum": 1.0,
    },
    "style_weights": {
        "type": "array",
        "description": "Blend weights, one per style image, as comma-separated numbers ('2,1'); default: equal.",
    },
    "preserve_color": {
        "type": "string",
        "description": "Keep the photo's colours: 'luminance' stylizes brightness only, 'histogram' recolours the "
        "styles to the photo's palette first; 'none' takes the paintings' colours.",
        "choices": list(PRESERVE_COLOR),
    },
    "seed": {
        "type": "integer",
        "description": "Random seed: the same seed and inputs give the same picture on the same machine.",
    },
}


def decode_image(data: bytes, what: str, max_pixels: int, longest: int | None = None) -> Image.Image:
    """Decode uploaded bytes into an RGB image, shrunk to `longest` px if larger; ImpastoError names the problem."""
    if not data:
        raise ImpastoError(f"{what}: empty file, not an image")
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as im:
            w, h = im.size
            if w <= 0 or h <= 0:
                raise ImpastoError(f"{what}: image has zero size ({w}x{h})")
            if w * h > max_pixels:
                raise ImpastoError(
                    f"{what}: {w}x{h} is {w * h / 1e6:.1f} megapixels, above this server's cap of "
                    f"{max_pixels / 1e6:g}"
                )
            if longest is not None and im.format == "JPEG":
                # Decode big JPEGs at a reduced scale (never below `longest`): much faster and lighter.
                im.draft("RGB", (longest, longest))
            im.load()
            rgb = to_rgb(ImageOps.exif_transpose(im))
    except ImpastoError:
        raise
    except UnidentifiedImageError:
        raise ImpastoError(f"{what}: not an image (send {FORMAT_NAMES})") from None
    except Image.DecompressionBombError:
        raise ImpastoError(f"{what}: image is too large to decode safely") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error):
        raise ImpastoError(f"{what}: cannot read image (corrupt or truncated)") from None
    if longest is not None and max(rgb.size) > longest:
        rgb = fit_longest_side(rgb, longest)
    return rgb


def parse_numbers(text: str, name: str) -> list[float]:
    """'2, 1' -> [2.0, 1.0]; ImpastoError for anything that is not a finite number >= 0."""
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise ImpastoError(f"{name}: expected comma-separated numbers, got {part[:40]!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ImpastoError(f"{name}: weights must be finite numbers >= 0, got {part[:40]!r}")
        values.append(value)
    if not values:
        raise ImpastoError(f"{name}: expected comma-separated numbers, got nothing")
    return values


def _default(f) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def method_info(name: str, settings: ServeSettings) -> dict[str, Any]:
    """A method's name, description and the HTTP options it accepts, from its Options dataclass."""
    module = get_method(name)
    doc = (module.__doc__ or name).strip()
    title, _, rest = doc.partition("\n")
    known = {f.name: f for f in fields(module.Options)}
    options = []
    for key, spec in HTTP_OPTIONS.items():
        if key not in known:
            continue
        default = _default(known[key])
        item = {"name": key, **spec, "default": default}
        if key == "size":
            item.update(default=settings.default_size, minimum=16, maximum=settings.max_size)
        elif key == "steps":
            item.update(default=min(default, settings.max_steps) if default else default, minimum=1,
                        maximum=settings.max_steps)
        elif key == "seed":
            item.update(minimum=0)
        if isinstance(item["default"], tuple):
            item["default"] = list(item["default"])
        options.append(item)
    return {
        "name": name,
        "title": title.strip().rstrip("."),
        "description": " ".join(rest.split()),
        "iterative": "steps" in known,
        "options": options,
    }


def build_options(method: str, given: dict[str, Any], n_styles: int, settings: ServeSettings):
    """The method's validated Options from the client's fields; returns (options, used, ignored).

    `given` holds the fields the client sent (None = not sent). Fields the method has no use for are ignored and
    reported, like the command line's flags that do not apply to a method.
    """
    module = get_method(method)
    known = {f.name for f in fields(module.Options)}
    sent = {k: v for k, v in given.items() if v is not None}
    if "size" in sent and not 16 <= sent["size"] <= settings.max_size:
        raise ImpastoError(f"size must be from 16 to {settings.max_size} px on this server, got {sent['size']}")
    if "steps" in sent and not 1 <= sent["steps"] <= settings.max_steps:
        raise ImpastoError(f"steps must be from 1 to {settings.max_steps} on this server, got {sent['steps']}")
    if "style_weights" in sent:
        sent["style_weights"] = parse_numbers(sent["style_weights"], "style_weights")
    used = {k: v for k, v in sent.items() if k in known}
    ignored = sorted(set(sent) - known)
    if "size" in known:
        used.setdefault("size", settings.default_size)
    if "steps" in known and "steps" not in used:
        default = _default(next(f for f in fields(module.Options) if f.name == "steps"))
        used["steps"] = min(default, settings.max_steps)
    # The size cap is this server's (checked above), so the methods' own caps are left as they are.
    server = {k: v for k, v in settings.job_defaults.items() if k in known}
    options = make_options(method, **{**server, **used})
    try:
        options.validate(n_styles)
    except ImpastoError as e:
        # The methods word their errors for the command line; name the form fields instead.
        raise ImpastoError(re.sub(r"--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", "_"), str(e))) from None
    return options, used, ignored
