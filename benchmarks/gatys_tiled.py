"""Benchmark: print sizes. Peak memory, time and tiles of `impasto stylize` at 1024, 2048 and 4096 px.

Each size runs the command line in its own process at impasto's defaults (Tübingen + Starry Night; --max-size
raised to twice the size, since the painting, resized to the output's pixel count, is wider than the photo) and
measures its wall time and peak resident memory (the child's own ru_maxrss, from wait4), next to the memory model's
estimate (impasto.methods.gatys.plan) for the same plan. Results go to benchmarks/out/gatys-tiled.json (a
finished size is kept, so an interrupted run resumes; --fresh starts over) and to the `gatys-tiled` section of
docs/BENCHMARKS.md; the outputs to benchmarks/out/gatys-tiled_SIZE.png.

    .venv/bin/python benchmarks/gatys_tiled.py                          # 1024, 2048, 4096 px (about 8 minutes here)
    .venv/bin/python benchmarks/gatys_tiled.py --sizes 256 --steps 6 --doc /tmp/BENCH.md   # smoke check
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from _common import DATA, ROOT, code_fingerprint, machine, write_section

from impasto import __version__
from impasto.core import memory as tiles
from impasto.core.device import resolve_device, resolve_precision
from impasto.core.image import load_image
from impasto.core.vgg_layers import min_input_side
from impasto.methods.gatys import DEFAULT_MAX_SIZE, plan
from impasto.methods.gatys import engine as gatys

SECTION = "gatys-tiled"


def _max_size(size: int) -> int:
    # The painting is resized to the output's pixel count; a wider one than the photo has a longer side.
    return max(2 * size, DEFAULT_MAX_SIZE)


def estimate(
    content: Path, style: Path, size: int, extra: list[str], max_memory: str | None
) -> tuple[list[int], list[plan.ScalePlan]]:
    """The scales and the plan impasto makes for each (tiles, L-BFGS history, estimated peak), same settings."""
    opts = gatys.Options(size=size, max_size=_max_size(size), max_memory=max_memory)
    flags = dict(zip(extra[::2], extra[1::2]))
    for flag, field in (("--steps", "steps"), ("--scales", "scales")):
        if flag in flags:
            setattr(opts, field, int(flags[flag]))
    if "--precision" in flags:
        opts.precision = flags["--precision"]
    device = resolve_device(opts.device)
    dtype = resolve_precision(opts.precision, device)
    budget = tiles.resolve_max_memory(opts.max_memory, device)
    layers = list(dict.fromkeys([*opts.content_layers, *opts.style_layers]))
    c, s = load_image(content), load_image(style)
    final = gatys.prepare_images(c, [s], opts.size, opts.style_scale, opts.max_size, min_input_side(layers))[0]
    sizes = gatys.plan_scales(max(final.shape[-2:]), opts, min(final.shape[-2:]), min_input_side(layers))
    plans = []
    for side, steps in zip(sizes, gatys.plan_steps(len(sizes), opts)):
        ct, sts = gatys.prepare_images(c, [s], side, opts.style_scale, opts.max_size, min_input_side(layers))
        plans.append(plan.plan_scale(ct.shape[-2:], [t.shape[-2:] for t in sts], steps, opts, dtype, budget))
    return sizes, plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--content", default="tubingen", help="photo name in DATA/content")
    parser.add_argument("--style", default="starry_night", help="painting name in DATA/style")
    parser.add_argument("--max-memory", default=None, help="impasto's --max-memory (default: impasto's own)")
    parser.add_argument("--steps", type=int, default=None, help="impasto's --steps (default: impasto's own)")
    parser.add_argument("--scales", type=int, default=None, help="impasto's --scales (default: impasto's plan)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--fresh", action="store_true", help="ignore results of an earlier, interrupted run")
    args = parser.parse_args()

    content = args.data / "content" / f"{args.content}.jpg"
    style = args.data / "style" / f"{args.style}.jpg"
    extra: list[str] = []
    if args.steps is not None:
        extra += ["--steps", str(args.steps)]
    if args.scales is not None:
        extra += ["--scales", str(args.scales)]
    if args.max_memory is not None:
        extra += ["--max-memory", args.max_memory]
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / f"{SECTION}.json"
    settings = {
        "pair": f"{args.content}+{args.style}",
        "extra": extra,
        "version": __version__,
        "code": code_fingerprint(),
    }
    done: dict = {}
    if results_file.exists() and not args.fresh:
        saved = json.loads(results_file.read_text())
        if saved.get("settings") == settings:
            done = saved["sizes"]
    command_line = "python benchmarks/gatys_tiled.py " + " ".join(sys.argv[1:])

    for size in args.sizes:
        if str(size) in done:
            print(f"{size} px: done earlier", flush=True)
            continue
        output = args.out / f"{SECTION}_{size}.png"
        log = args.out / f"{SECTION}_{size}.log"
        command = [
            sys.executable,
            "-m",
            "impasto",
            "stylize",
            str(content),
            str(style),
            "-o",
            str(output),
            "--size",
            str(size),
            "--max-size",
            str(_max_size(size)),
            *extra,
        ]
        scales, plans = estimate(content, style, size, extra, args.max_memory)
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        start = time.perf_counter()
        with log.open("w") as err:
            child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
            _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        code = child.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
        summary = [line for line in log.read_text().splitlines() if line.startswith("impasto:")]
        if code != 0:
            raise SystemExit(f"{size} px: impasto exited with {code}: {summary[-1] if summary else log}")
        found = re.search(r"(\d+)x(\d+), (\d+) steps \((\w+)\)", summary[-1])
        done[str(size)] = {
            "output": f"{found.group(1)}x{found.group(2)}",
            "steps": int(found.group(3)),
            "stopped": found.group(4),
            "seconds": seconds,
            "peak_rss": usage.ru_maxrss * 1024,
            "scales": scales,
            "tiles": [p.count for p in plans],
            "history": [p.history for p in plans],
            "estimate": max(p.estimate for p in plans),
            "summary": summary[-1],
            "date": dt.date.today().isoformat(),
        }
        results_file.write_text(json.dumps({"settings": settings, "sizes": done}, indent=2))
        r = done[str(size)]
        print(f"{size} px: {seconds:.0f} s, peak {r['peak_rss'] / tiles.GiB:.2f} GiB, tiles {r['tiles']}", flush=True)
        write_doc(args.doc, done, settings, command_line)
    write_doc(args.doc, done, settings, command_line)


def write_doc(doc: Path, sizes: dict, settings: dict, command: str) -> None:
    budget = tiles.format_size(tiles.default_max_memory())
    lines = [
        f"## Gatys at print sizes: `{SECTION}`, `benchmarks/gatys_tiled.py`",
        "",
        f"- date: {max((r.get('date', '') for r in sizes.values()), default='') or dt.date.today().isoformat()}; "
        f"machine: {machine()}, {tiles.physical_memory() / tiles.GiB:.0f} GiB RAM",
        f"- command: `{command.strip()}`",
        f"- pair: {settings['pair']}; `impasto stylize` at its defaults"
        f"{' with ' + ' '.join(settings['extra']) if settings['extra'] else ''}, "
        f"--max-size twice the size; default --max-memory here: {budget}",
        "- peak: the process's peak resident memory (ru_maxrss); estimate: impasto's memory model for the same plan "
        "(largest scale); tiles and L-BFGS history per scale, coarsest first",
        "",
        "| size | output | time (s) | steps | peak RSS | estimate | tiles per scale | L-BFGS history |",
        "| ---: | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for size, r in sorted(sizes.items(), key=lambda kv: int(kv[0])):
        lines.append(
            f"| {size} | {r['output']} | {r['seconds']:.0f} | {r['steps']} ({r['stopped']}) | "
            f"{tiles.format_size(r['peak_rss'])} | {tiles.format_size(r['estimate'])} | "
            f"{' / '.join(map(str, r['tiles']))} | {' / '.join(map(str, r['history']))} |"
        )
    write_section(doc, SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
