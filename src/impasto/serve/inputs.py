"""From an HTTP request's uploads and form fields to a job's images and method Options.

Uploads are identified by their bytes (never the file name or the client's content type), their pixel count is read
from the header before anything is decoded, and only a few raster formats are accepted. Form fields are the options
each method declares with ``http=True`` (see :mod:`impasto.options`): their types, bounds, defaults and help come
from that declaration, and this server adds its own limits on size and steps.
"""

from __future__ import annotations

import dataclasses
import difflib
import io
import math
import re
import struct
from typing import Any, Iterable

from PIL import Image, ImageOps, UnidentifiedImageError

from .. import options as declared_options
from ..api import available_methods, get_method, make_options, method_title, takes_style_images
from ..core.image import fit_longest_side, quiet_warnings, to_rgb
from ..core.video import DEFAULT_CRF, MAX_CRF, PRESETS
from ..errors import ImpastoError
from ..video import default_temporal, temporal_defaults
from .settings import ServeSettings

# Formats Pillow decodes itself; anything else (EPS via Ghostscript, PDF, SVG...) is refused on purpose.
FORMATS = ("PNG", "JPEG", "WEBP", "AVIF", "BMP", "TIFF", "GIF")  # JPEG includes MPO (phone cameras)
FORMAT_NAMES = "PNG, JPEG, WebP, AVIF, BMP, TIFF or GIF"
MIME_TYPES = ("image/png", "image/jpeg", "image/webp", "image/avif", "image/bmp", "image/tiff", "image/gif")
# The fields of POST /api/jobs that are not a method's options.
RESERVED_FIELDS = ("content", "styles", "method", "temporal", "crf", "preset")
MIN_SIZE = 16  # the server's smallest output size (px)
_FLAG = re.compile(r"--([a-z][a-z-]*)")


def decode_image(data: bytes, what: str, max_pixels: int, longest: int | None = None) -> Image.Image:
    """Decode uploaded bytes into an RGB image, shrunk to `longest` px if larger; ImpastoError names the problem."""
    if not data:
        raise ImpastoError(f"{what}: empty file, not an image")
    try:
        with quiet_warnings(), Image.open(io.BytesIO(data), formats=FORMATS) as im:
            w, h = im.size
            if w <= 0 or h <= 0:
                raise ImpastoError(f"{what}: image has zero size ({w}x{h})")
            if w * h > max_pixels:
                raise ImpastoError(
                    f"{what}: {w}x{h} is {math.ceil(w * h / 1e4) / 100:g} megapixels, above this server's cap of "
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


# ---------------------------------------------------------------------------------------------- options


def _http(method: str) -> dict[str, declared_options.Declared]:
    """The options method `method` offers over HTTP, by name, in declaration order."""
    return {d.name: d for d in declared_options.iter_http(get_method(method).Options)}


def http_fields(methods: Iterable[str] | None = None) -> dict[str, list[tuple[str, declared_options.Declared]]]:
    """Every HTTP option of the registered methods: name -> [(method, declaration), ...], first declared first."""
    out: dict[str, list[tuple[str, declared_options.Declared]]] = {}
    for method in available_methods() if methods is None else methods:
        for name, d in _http(method).items():
            out.setdefault(name, []).append((method, d))
    return out


def _default_steps(default: Any, settings: ServeSettings) -> Any:
    return min(default, settings.max_steps) if isinstance(default, int) and not isinstance(default, bool) else default


def describe_option(d: declared_options.Declared, settings: ServeSettings) -> dict[str, Any]:
    """One option as GET /api/methods lists it: its declaration, then this server's own limits on size and steps."""
    item = declared_options.describe(d)
    item["description"] = item["description"].replace("%%", "%")  # help texts are written for argparse
    if d.name == "size":
        item.update(default=settings.default_size, minimum=MIN_SIZE, maximum=settings.max_size)
    elif d.name == "steps":
        item.update(default=_default_steps(d.default, settings), minimum=1, maximum=settings.max_steps)
    return item


def method_info(name: str, settings: ServeSettings) -> dict[str, Any]:
    """A method's name, title, description and the HTTP options it accepts, from its module and Options."""
    module = get_method(name)
    title, description = method_title(module)
    return {
        "name": name,
        "title": title,
        "description": description,
        "iterative": "steps" in declared_options.field_names(module.Options),
        "style_images": takes_style_images(module),
        "video_temporal": default_temporal(name),
        "video_temporal_style_images": default_temporal(name, style_images=True),
        "video_temporal_above": [list(pair) for pair in getattr(module, "VIDEO_TEMPORAL_ABOVE", ())],
        "options": [describe_option(d, settings) for d in _http(name).values()],
    }


def form_schema(settings: ServeSettings, default_method: str) -> dict[str, Any]:
    """The JSON schema of POST /api/jobs's multipart body: the uploads, the method and every method's options."""
    properties: dict[str, Any] = {
        "content": {
            "type": "string",
            "format": "binary",
            "description": f"The photo to repaint ({', '.join(FORMATS)}), or a video (MP4, MOV, WebM, MKV, AVI, "
            "...): the result is then an MP4 with the sound kept, and progress counts frames. Several 'content' "
            "photos make a batch: one engine for all, progress counted in photos, the results as a ZIP of PNGs.",
        },
        "temporal": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "For a video: temporal consistency from 0 (each frame on its own) to 1 (default: the "
            f"method's, {temporal_defaults()}).",
        },
        "crf": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_CRF,
            "default": DEFAULT_CRF,
            "description": "For a video: the encoder's quality, H.264's constant rate factor from 0 (lossless) to "
            f"{MAX_CRF}; lower keeps more of the painted texture in a larger file.",
        },
        "preset": {
            "type": "string",
            "enum": list(PRESETS),
            "description": "For a video: the encoder's speed, x264's names; slower ones make smaller files at the "
            "same crf (default: faster).",
        },
        "styles": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": "One or more style images (paintings), as repeated 'styles' fields; blended. Required by "
            "the methods that paint from a style image (gatys, adain); the fast method paints its trained styles, or "
            "with style images (and no 'model') any painting through its built-in network for any painting.",
        },
        "method": {
            "type": "string",
            "enum": available_methods(),
            "default": default_method,
            "description": "The method; GET /api/methods lists them with the options each accepts.",
        },
    }
    for name, owners in http_fields().items():
        items = [describe_option(d, settings) for _, d in owners]
        first = items[0]
        prop: dict[str, Any] = {"type": first["type"]}
        description = first["description"].rstrip(".")
        description = description[:1].upper() + description[1:] + "."
        if first["type"] == "array":
            prop["type"] = "string"
            description += " Sent as comma-separated values, e.g. '2,1'."
        if len(owners) < len(available_methods()):
            description += f" Methods: {', '.join(m for m, _ in owners)}; the others ignore it."
        prop["description"] = description
        for key in ("minimum", "maximum"):
            if key in first and all(item.get(key) == first[key] for item in items):
                prop[key] = first[key]
        if "choices" in first:
            prop["enum"] = first["choices"]
        defaults = [item["default"] for item in items]
        if all(v == defaults[0] for v in defaults) and defaults[0] is not None and not isinstance(defaults[0], list):
            prop["default"] = defaults[0]
        properties[name] = prop
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "title": "Job",
                    "required": ["content"],
                    "properties": properties,
                },
            },
        },
    }


def _unknown_field(name: str, known: list[str]) -> ImpastoError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known fields: {', '.join(known)}"
    return ImpastoError(f"unknown field {name[:40]!r}{hint}")


def build_options(method: str, form_fields: dict[str, str | None], n_styles: int, settings: ServeSettings):
    """The method's validated Options from the client's text fields; returns (options, used, ignored).

    `form_fields` holds the text fields the client sent besides content, styles and method (None or '' = not
    sent). Each is read as its declaration says; fields that another method offers but this one does not are
    ignored and reported, like the command line's flags that do not apply to a method; any other name is refused.
    """
    module = get_method(method)
    own = _http(method)
    elsewhere = http_fields()
    for name in form_fields:
        if name not in own and name not in elsewhere:
            raise _unknown_field(name, [*RESERVED_FIELDS, *elsewhere])
    sent = {k: v for k, v in form_fields.items() if v is not None and v != ""}
    ignored = sorted(k for k in sent if k not in own)
    fields = declared_options.field_names(module.Options)
    defaults = {f.name: declared_options.default_of(f) for f in dataclasses.fields(module.Options)}
    try:
        used = {name: declared_options.parse_text(own[name], text) for name, text in sent.items() if name in own}
        # This server's limits and defaults, for every method that has these fields (shown with the job's options).
        if "size" in fields:
            size = used.setdefault("size", settings.default_size)
            if not isinstance(size, int) or not MIN_SIZE <= size <= settings.max_size:
                raise ImpastoError(f"size must be from {MIN_SIZE} to {settings.max_size} px on this server, got {size}")
        if "steps" in fields:
            steps = used.setdefault("steps", _default_steps(defaults.get("steps", settings.max_steps), settings))
            if not isinstance(steps, int) or not 1 <= steps <= settings.max_steps:
                raise ImpastoError(f"steps must be from 1 to {settings.max_steps} on this server, got {steps}")
        server = {k: v for k, v in settings.job_defaults.items() if k in fields}
        options = make_options(method, **{**server, **used})
        options.validate(n_styles)
    except ImpastoError as e:
        # The methods word their errors for the command line; name the form fields instead.
        flags = {d.flag: d.name for d in declared_options.declared(module.Options)}
        message = _FLAG.sub(lambda m: flags.get(m.group(0), m.group(1).replace("-", "_")), str(e))
        raise ImpastoError(message) from None
    return options, used, ignored
