"""Image I/O and conversions: robust loading, atomic saving, resizing, PIL <-> tensor.

Importing this module does not import torch (the command line checks its inputs before loading any model);
the tensor conversions import it when called.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImpastoError

if TYPE_CHECKING:
    import torch

ImageLike = Union[str, os.PathLike, Image.Image, "torch.Tensor"]

# Output formats by file extension.
OUTPUT_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}

# The mode new files get from open() under this process's umask (read once: changing the umask to read it is not
# safe while the server's threads create files). mkstemp makes files for their owner only; outputs get this instead.
_umask = os.umask(0o022)
os.umask(_umask)
FILE_MODE = 0o666 & ~_umask

# Guard against decompression bombs while still accepting large photos: Pillow refuses images over twice this.
Image.MAX_IMAGE_PIXELS = 150_000_000


@contextlib.contextmanager
def quiet_warnings() -> Iterator[None]:
    """Silence warnings inside: Pillow warns about damage it works around (a corrupt EXIF block) on pictures that
    are fine, and a command line or a server should not pass that on as a second, foreign line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file as an 8-bit RGB PIL image, honouring EXIF orientation.

    Grayscale, palette, alpha (composited on white), CMYK and 16-bit images are converted.
    Raises ImpastoError with a one-line message for anything that is not a readable image.
    """
    return _read_image(Path(path), decode=True)


def check_image(path: str | os.PathLike) -> None:
    """Refuse, as :func:`load_image` would, a file whose header already shows it cannot be read (missing, a folder,
    not an image, zero size), reading the header only: a command checks its inputs at once, before it loads a model
    and starts decoding them (a corrupt body is found then)."""
    _read_image(Path(path), decode=False)


def _read_image(p: Path, decode: bool) -> Image.Image | None:
    if not p.exists():
        raise ImpastoError(f"{p}: no such file")
    if p.is_dir():
        raise ImpastoError(f"{p}: is a directory, not an image file")
    try:
        with quiet_warnings(), Image.open(p) as im:
            if im.width == 0 or im.height == 0:
                raise ImpastoError(f"{p}: image has zero size ({im.width}x{im.height})")
            if not decode:
                return None
            im.load()
            im = ImageOps.exif_transpose(im)
            return to_rgb(im)
    except ImpastoError:
        raise
    except UnidentifiedImageError:
        raise ImpastoError(f"{p}: {_why_unidentified(p)}") from None
    except Image.DecompressionBombError:
        raise ImpastoError(f"{p}: image is too large to decode safely") from None
    except PermissionError:
        raise ImpastoError(f"{p}: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImpastoError(f"{p}: cannot read image (corrupt or truncated: {reason})") from None


def _why_unidentified(p: Path) -> str:
    """Name the problem with a file Pillow could not identify."""
    with open(p, "rb") as f:
        head = f.read(24)
    if not head:
        return "empty file (0 bytes), not an image"
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        if width == 0 or height == 0:
            return f"image has zero size ({width}x{height})"
        return "cannot read image (corrupt PNG header)"
    return "not an image file (unrecognized format)"


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited on white."""
    if im.width == 0 or im.height == 0:
        raise ImpastoError(f"image has zero size ({im.width}x{im.height})")
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        if mode == "F" and a.max() <= 1.0:
            peak = 1.0
        a = np.clip(a / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if mode in ("P", "L", "RGB") and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB":
        return im.copy()
    return im.convert("RGB")


def as_pil(image: ImageLike) -> Image.Image:
    """Accept a path, a PIL image or a tensor ((3,H,W) or (1,3,H,W), values in [0, 1]) and return RGB PIL."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if _is_tensor(image):
        return tensor_to_pil(image)
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    raise TypeError(f"expected a path, PIL image or tensor, got {type(image).__name__}")


def _is_tensor(x: object) -> bool:
    # Without importing torch: a tensor can only exist if torch is already loaded.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def pil_to_tensor(im: Image.Image) -> "torch.Tensor":
    """RGB PIL image -> float tensor (1, 3, H, W) in [0, 1]."""
    import torch

    a = np.asarray(to_rgb(im), dtype=np.float32) / 255.0
    return torch.from_numpy(a.copy()).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_pil(t: "torch.Tensor | np.ndarray") -> Image.Image:
    """Float tensor or array (3, H, W) or (1, 3, H, W) in [0, 1] -> RGB PIL image (values clamped)."""
    if isinstance(t, np.ndarray):  # engines that run without torch give arrays
        a = t[0] if t.ndim == 4 and t.shape[0] == 1 else t
        if a.ndim != 3 or a.shape[0] != 3:
            raise ValueError(f"expected a (3, H, W) or (1, 3, H, W) array, got shape {t.shape}")
        a = (np.clip(a.astype(np.float32), 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)
        return Image.fromarray(np.ascontiguousarray(a), "RGB")
    t = t.detach()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected a single image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) or (1, 3, H, W) tensor, got shape {tuple(t.shape)}")
    a = t.float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(a), "RGB")


def load_mask(mask: ImageLike, size: tuple[int, int]) -> "torch.Tensor":
    """A mask image as a (1, 1, H, W) tensor in [0, 1] at `size` = (H, W); white = 1, soft edges kept.

    Any resolution works, but not another shape: a mask whose aspect ratio differs from the picture's by more than
    2 % would land in the wrong place, so it is an error rather than a silent stretch.
    """
    im = as_pil(mask)
    mask_ratio, ratio = im.width / im.height, size[1] / size[0]
    if abs(math.log(mask_ratio / ratio)) > math.log(1.02) + 1 / min(size):  # + one pixel of rounding
        name = f"mask {mask}" if isinstance(mask, (str, os.PathLike)) else "a mask"
        raise ImpastoError(
            f"{name} is {im.width}x{im.height}, another shape than the picture ({size[1]}x{size[0]}); "
            "draw it at the picture's aspect ratio"
        )
    im = im.convert("L").resize((size[1], size[0]), resample=Image.BILINEAR)
    a = np.asarray(im, dtype=np.float32) / 255.0
    import torch

    return torch.from_numpy(a.copy())[None, None]


def longest_side_size(size_wh: tuple[int, int], size: int) -> tuple[int, int]:
    """The (width, height) :func:`fit_longest_side` gives a picture of `size_wh`, without making it."""
    w, h = size_wh
    scale = size / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def area_size(size_wh: tuple[int, int], area: float, min_side: int = 1) -> tuple[int, int]:
    """The (width, height) :func:`fit_area` gives a picture of `size_wh`, without making it."""
    w, h = size_wh
    scale = max((area / (w * h)) ** 0.5, min_side / min(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def fit_longest_side(im: Image.Image, size: int) -> Image.Image:
    """Resize so the longest side is `size` pixels, keeping the aspect ratio."""
    new = longest_side_size(im.size, size)
    return im if new == im.size else im.resize(new, Image.Resampling.LANCZOS)


def sized_content(content: ImageLike, size: int | None, max_size: int) -> Image.Image:
    """A one-pass method's photo: `content` with its longest side at `size`, or as it is when `size` is None and
    it fits within `max_size` (else a one-line error)."""
    c = as_pil(content)
    if size is not None:
        return fit_longest_side(c, size)
    if max(c.size) > max_size:
        raise ImpastoError(f"the content image is {c.width}x{c.height}, above the cap of {max_size} px")
    return c


def fit_area(im: Image.Image, area: float, min_side: int = 1) -> Image.Image:
    """Resize to about `area` pixels in all, keeping the aspect ratio; never below `min_side` on the short side."""
    new = area_size(im.size, area, min_side)
    return im if new == im.size else im.resize(new, Image.Resampling.LANCZOS)


# zlib's fastest level, as OpenCV writes PNG: a painted 512 px picture takes 18 ms instead of 41 ms at Pillow's
# default (6) and is 7 % larger (paintings compress poorly at any level; 2026-12-04).
PNG_LEVEL = 1


def check_output_path(path: str | os.PathLike, inputs: tuple = ()) -> Path:
    """Validate an output path before any work is done; returns it as a Path."""
    p = Path(path)
    if p.suffix.lower() not in OUTPUT_FORMATS:
        allowed = ", ".join(sorted(OUTPUT_FORMATS))
        raise ImpastoError(f"{p}: unsupported output extension {p.suffix or '(none)'!r}; use one of {allowed}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise ImpastoError(f"{p}: output directory {parent} does not exist")
    if not parent.is_dir():
        raise ImpastoError(f"{p}: {parent} is not a directory")
    if p.is_dir():
        raise ImpastoError(f"{p}: is a directory; give a file name for the output")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ImpastoError(f"{p}: output directory {parent} is not writable")
    resolved = p.resolve()
    for i in inputs:
        if isinstance(i, (str, os.PathLike)) and (Path(i).resolve() == resolved or _same_file(i, p)):
            raise ImpastoError(f"{p}: output would overwrite an input image; choose another name")
    return p


def _same_file(a: str | os.PathLike, b: Path) -> bool:
    """True when two paths name one file (a hard link too)."""
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def save_image(im: "Image.Image | torch.Tensor", path: str | os.PathLike) -> Path:
    """Write atomically: a temporary file in the same directory, then a rename.

    PNG at zlib's fastest level (:data:`PNG_LEVEL`)."""
    p = check_output_path(path)
    if _is_tensor(im) or isinstance(im, np.ndarray):
        im = tensor_to_pil(im)
    fmt = OUTPUT_FORMATS[p.suffix.lower()]
    params = {"quality": 95} if fmt in ("JPEG", "WEBP") else {"compress_level": PNG_LEVEL} if fmt == "PNG" else {}
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
        with os.fdopen(fd, "wb") as f:
            im.save(f, format=fmt, **params)
        # mkstemp creates files readable by the owner only; give the output the usual permissions.
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, p)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(e, OSError):  # a full disk, a quota, a vanished folder: the user's to fix, named
            raise ImpastoError(f"{p}: cannot write the image ({e.strerror or e}); nothing was written") from None
        raise
    return p


def contact_sheet(
    pictures: Sequence[Image.Image], labels: Sequence[str], columns: int = 4, cell: int = 256
) -> Image.Image:
    """Pictures in a grid of `columns`, each fitted into a `cell` px square with its label right underneath; a row is
    as tall as its tallest picture (landscape rows leave no empty bands)."""
    from PIL import ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=max(10, cell // 20))
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    label_h = max(10, cell // 20) + 10
    thumbs = [fit_longest_side(to_rgb(pic), cell) for pic in pictures]
    rows = [thumbs[i : i + columns] for i in range(0, len(thumbs), columns)] or [[]]
    heights = [max((t.height for t in row), default=cell) + label_h for row in rows]
    sheet = Image.new("RGB", (min(columns, max(1, len(thumbs))) * cell, sum(heights)), "white")
    draw = ImageDraw.Draw(sheet)
    y = 0
    for r, (row, height) in enumerate(zip(rows, heights)):
        for c, thumb in enumerate(row):
            x = c * cell
            sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (height - label_h - thumb.height) // 2))
            draw.text((x + 4, y + height - label_h + 4), labels[r * columns + c], fill="black", font=font)
        y += height
    return sheet
