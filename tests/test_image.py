import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from impasto.core import image as I
from impasto.errors import ImpastoError


def _zero_width_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 0, 16, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_grayscale_palette_cmyk_become_rgb(tmp_path):
    for mode, colour in (("L", 128), ("P", 3), ("CMYK", (0, 0, 0, 0)), ("1", 1)):
        p = tmp_path / f"{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
        Image.new(mode, (10, 8), colour).save(p)
        im = I.load_image(p)
        assert im.mode == "RGB" and im.size == (10, 8)
    assert I.load_image(tmp_path / "CMYK.jpg").getpixel((0, 0)) == (255, 255, 255)
    assert I.load_image(tmp_path / "L.png").getpixel((0, 0)) == (128, 128, 128)


def test_alpha_is_composited_on_white(tmp_path):
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    im.putpixel((0, 0), (255, 0, 0, 255))
    im.putpixel((1, 0), (0, 0, 0, 128))
    im.save(tmp_path / "a.png")
    rgb = I.load_image(tmp_path / "a.png")
    assert rgb.getpixel((3, 3)) == (255, 255, 255)  # transparent -> white, not black or red
    assert rgb.getpixel((0, 0)) == (255, 0, 0)
    assert all(abs(v - 127) <= 1 for v in rgb.getpixel((1, 0)))
    # Palette images with a transparent index too.
    p = Image.new("P", (4, 4), 0)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.info["transparency"] = 0
    p.save(tmp_path / "p.png", transparency=0)
    assert I.load_image(tmp_path / "p.png").getpixel((0, 0)) == (255, 255, 255)


def test_transparent_colour_key_in_rgb_and_grey_png_becomes_white(tmp_path):
    im = Image.new("RGB", (4, 4), (0, 0, 0))
    im.putpixel((0, 0), (10, 20, 30))
    im.save(tmp_path / "key.png", transparency=(0, 0, 0))
    rgb = I.load_image(tmp_path / "key.png")
    assert rgb.getpixel((1, 1)) == (255, 255, 255) and rgb.getpixel((0, 0)) == (10, 20, 30)
    Image.new("L", (4, 4), 0).save(tmp_path / "grey.png", transparency=0)
    assert I.load_image(tmp_path / "grey.png").getpixel((2, 2)) == (255, 255, 255)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    a = np.full((6, 5), 65535, dtype=np.uint16)
    a[0, 0] = 32896  # about half
    Image.fromarray(a).save(tmp_path / "deep.png")
    im = I.load_image(tmp_path / "deep.png")
    assert im.mode == "RGB"
    assert im.getpixel((1, 1)) == (255, 255, 255)
    assert im.getpixel((0, 0)) == (128, 128, 128)


def test_exif_orientation_is_honoured(tmp_path):
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 10, 20))  # red strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = I.load_image(tmp_path / "rot.jpg")
    assert out.size == (20, 40)
    r, g, b = out.getpixel((10, 2))  # the left strip is now on top
    assert r > 200 and b < 60


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("missing.png", None, "no such file"),
        ("adir", "dir", "is a directory"),
        ("notes.png", b"this is text, not a picture", "not an image file"),
        ("zero.png", _zero_width_png(), "zero size"),
        ("empty.jpg", b"", "empty file"),
    ],
)
def test_bad_images_give_one_line_errors(tmp_path, name, make, message):
    p = tmp_path / name
    if make == "dir":
        p.mkdir()
    elif make is not None:
        p.write_bytes(make)
    for read in (I.load_image, I.check_image):  # the header check refuses them as loading does
        with pytest.raises(ImpastoError, match=message) as e:
            read(p)
        assert "\n" not in str(e.value) and str(p) in str(e.value)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_images_are_rejected(tmp_path, fmt):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format=fmt)
    p = tmp_path / f"cut.{fmt.lower()}"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    I.check_image(p)  # the header is whole: found when the picture is decoded
    with pytest.raises(ImpastoError, match="corrupt or truncated"):
        I.load_image(p)


def test_tensor_round_trip():
    im = Image.fromarray(np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10, "RGB")
    t = I.pil_to_tensor(im)
    assert t.shape == (1, 3, 2, 3) and t.dtype == torch.float32 and float(t.max()) <= 1
    assert I.tensor_to_pil(t).tobytes() == im.tobytes()
    assert I.as_pil(t[0]).tobytes() == im.tobytes()
    with pytest.raises(ValueError):
        I.tensor_to_pil(torch.zeros(2, 3, 4, 4))


def test_resizing_keeps_aspect_ratio():
    im = Image.new("RGB", (400, 100))
    assert I.fit_longest_side(im, 200).size == (200, 50)
    assert I.fit_longest_side(im, 800).size == (800, 200)
    assert I.fit_area(im, 100 * 25).size == (100, 25)


def test_output_path_checks(tmp_path):
    with pytest.raises(ImpastoError, match="unsupported output extension"):
        I.check_output_path(tmp_path / "out.gifx")
    with pytest.raises(ImpastoError, match="unsupported output extension"):
        I.check_output_path(tmp_path / "out")
    with pytest.raises(ImpastoError, match="does not exist"):
        I.check_output_path(tmp_path / "nope" / "out.png")
    (tmp_path / "d.png").mkdir()
    with pytest.raises(ImpastoError, match="is a directory"):
        I.check_output_path(tmp_path / "d.png")
    src = tmp_path / "in.png"
    Image.new("RGB", (2, 2)).save(src)
    with pytest.raises(ImpastoError, match="overwrite an input"):
        I.check_output_path(tmp_path / "." / "in.png", (str(src),))


def test_save_is_atomic(tmp_path, monkeypatch):
    out = tmp_path / "out.jpg"
    I.save_image(torch.rand(1, 3, 8, 8), out)
    assert Image.open(out).size == (8, 8)
    assert [p.name for p in tmp_path.iterdir()] == ["out.jpg"]
    assert (out.stat().st_mode & 0o077) != 0  # usual permissions, not mkstemp's 0600

    def broken_save(self, fp, format=None, **kw):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImpastoError, match="fail.png: cannot write the image"):  # the user's to fix, named
        I.save_image(torch.rand(1, 3, 8, 8), tmp_path / "fail.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jpg"]
