"""Many pictures: a shell loop of `impasto stylize` against one `impasto batch` call, locally and on Ray, in one run.

The same pictures (the first --pictures photos of ../shared/data/train/content, never modified) with the same method
(default: the fast method's built-in Starry Night at 512 px). Measured: pictures per second of
- a shell loop, one `impasto stylize` process per picture (start-up and model loading paid every time; timed on the
  first --loop pictures),
- `impasto.batch` in this process (the model loaded once),
- the same batch on a local Ray with 1 and 2 actors (Ray's own start-up reported apart),
and the per-picture cost split into decoding, the model and encoding, from the engine in this process.

Writes the `batch` section of docs/BENCHMARKS.md.

    python benchmarks/batch.py [--pictures 24] [--loop 6] [--method fast] [--size 512]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import ROOT, machine, write_section

import impasto
from impasto.api import make_options
from impasto.batch import RaySettings, run_batch
from impasto.core.image import load_image, save_image

PHOTOS = ROOT.parent / "shared" / "data" / "train" / "content"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pictures", type=int, default=24)
    ap.add_argument("--loop", type=int, default=6, help="pictures timed through the shell loop")
    ap.add_argument("--method", default="fast")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    args = ap.parse_args()
    torch.set_num_threads(2)

    photos = sorted(PHOTOS.glob("*.jpg"))[: args.pictures]
    style = (
        [] if args.method == "fast" else [str(ROOT.parent / "shared" / "data" / "eval" / "style" / "starry_night.jpg")]
    )
    extra = {"model": "starry_night"} if args.method == "fast" else {}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "in"
        src.mkdir()
        for p in photos:
            os.symlink(p, src / p.name)

        # A shell loop: one process per picture.
        t0 = time.perf_counter()
        for p in photos[: args.loop]:
            cmd = [
                sys.executable,
                "-m",
                "impasto",
                "stylize",
                str(p),
                *style,
                "-o",
                str(tmp / "loop.png"),
                "--method",
                args.method,
                "--size",
                str(args.size),
                "-q",
            ]
            if extra:
                cmd += ["--model", extra["model"]]
            subprocess.run(cmd, check=True, capture_output=True)
        rows["shell loop of `impasto stylize`"] = args.loop / (time.perf_counter() - t0)
        print(f"loop: {rows['shell loop of `impasto stylize`']:.2f} pictures/s", flush=True)

        # One call, this process.
        t0 = time.perf_counter()
        report = run_batch([src], tmp / "local", style, args.method, size=args.size, **extra)
        assert len(report.done) == len(photos), report.failed
        rows["`impasto batch`, one process"] = len(photos) / (time.perf_counter() - t0)
        print(f"batch: {rows['`impasto batch`, one process']:.2f} pictures/s", flush=True)

        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        try:
            for workers in (1, 2):
                t0 = time.perf_counter()
                report = run_batch(
                    [src],
                    tmp / f"ray{workers}",
                    style,
                    args.method,
                    size=args.size,
                    ray=RaySettings(workers=workers),
                    **extra,
                )
                assert len(report.done) == len(photos), report.failed
                key = f"`impasto batch --ray --workers {workers}` (local Ray)"
                rows[key] = len(photos) / (time.perf_counter() - t0)
                print(f"ray {workers}: {rows[key]:.2f} pictures/s", flush=True)
        finally:
            ray.shutdown()

        # Where a picture's time goes, in one process with the model loaded.
        engine = impasto.load(args.method, size=args.size, **extra)
        opts = make_options(args.method, size=args.size, **extra)
        styles = [load_image(s) for s in style]
        split = {"decode": [], "model": [], "encode": []}
        for p in photos:
            t0 = time.perf_counter()
            im = load_image(p)
            t1 = time.perf_counter()
            result = engine.run(im, styles, opts)
            t2 = time.perf_counter()
            save_image(result.image, tmp / "split.png")
            t3 = time.perf_counter()
            split["decode"].append(t1 - t0)
            split["model"].append(t2 - t1)
            split["encode"].append(t3 - t2)
        split = {k: statistics.median(v) for k, v in split.items()}
        print(f"split: {split}", flush=True)
    _report(rows, split, ray_start, len(photos), args)


def _report(rows: dict, split: dict, ray_start: float, n: int, args) -> None:
    base = rows["shell loop of `impasto stylize`"]
    lines = [
        "## Many pictures: `batch`, `benchmarks/batch.py`",
        "",
        f"- date: {dt.date.today()}; machine: {machine()}",
        f"- command: `python benchmarks/batch.py --pictures {args.pictures} --loop {args.loop} --method {args.method} "
        f"--size {args.size}`",
        f"- {n} photos of `../shared/data/train/content`, method {args.method}"
        + (" (built-in Starry Night)" if args.method == "fast" else "")
        + f", {args.size} px",
        "",
        "| how | pictures/s | against the shell loop |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {k} | {v:.2f} | {v / base:.1f}x |" for k, v in rows.items()]
    total = sum(split.values())
    lines += [
        "",
        f"Ray's own start-up on this machine: {ray_start:.1f} s (not counted above; a cluster is already running).",
        "",
        "Per picture, in one process with the model loaded (medians):",
        "",
        "| part | seconds | share |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {k} | {v:.3f} | {v / total:.0%} |" for k, v in split.items()]
    write_section(args.doc, "batch", "\n".join(lines))


if __name__ == "__main__":
    main()
