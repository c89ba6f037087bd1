"""A method's --temporal strength against per-frame painting, on the clips of benchmarks/video.py, at each size.

For each size and clip (the made pan and zoom, the real clip's first --frames frames), the video is made with
``--temporal 0`` and with each of --strengths, encoded as `impasto video` writes it (``--crf 18``); each is measured
as benchmarks/video.py measures (`impasto eval-video`'s warping error; content and style distances over one frame in
--every, against the painting). The issue's relative target is half the per-frame warping error within +10 % style
distance: the table gives both for every strength, which is how a method's default strength is chosen (and, where
the blend's cost grows with the frame size, its default by size: VIDEO_TEMPORAL_ABOVE in the method's module). No
timing: run it beside other work if need be.

Writes the `video-temporal-METHOD` section of docs/BENCHMARKS.md.

    python benchmarks/video_temporal.py --method adain --sizes 360 640 1280 --strengths 0.6 0.5 0.4
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

import torch
from _common import ROOT, machine, write_section
from video import PAINTING, cut_real, make_motion_clip

import impasto
from impasto.core.image import load_image
from impasto.metrics import Evaluator
from impasto.video import default_temporal, sampled_distances, stylize_video, temporal_error


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="adain", choices=("adain", "fast"), help="fast: the built-in --model")
    ap.add_argument("--model", default="starry_night", help="the fast method's style")
    ap.add_argument("--sizes", type=int, nargs="+", default=[360, 640, 1280], help="longest sides (1280: 720p)")
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.6, 0.5, 0.4])
    ap.add_argument("--frames", type=int, default=36, help="frames of each clip")
    ap.add_argument("--every", type=int, default=3, help="distances measured on every N-th frame")
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    painting = load_image(PAINTING)
    evaluate = Evaluator().evaluate
    if args.method == "adain":
        engine, styles, how = impasto.load("adain"), [painting], "the painting"
    else:
        engine, styles, how = impasto.load("fast", model=args.model), [], f"`--model {args.model}`"
    kw = dict(method=args.method, engine=engine, crf=args.crf, **({"model": args.model} if not styles else {}))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        real = cut_real(tmp / "real.mp4", args.frames)
        for size in args.sizes:
            default = default_temporal(args.method, style_images=bool(styles), longest=size)
            clips = {
                f"pan and zoom, {args.frames} frames": make_motion_clip(tmp / f"pan{size}.mp4", size, args.frames),
                f"Big Buck Bunny 720p, first {args.frames} frames": real,
            }
            for name, clip in clips.items():
                base = None
                for strength in [0.0, *args.strengths]:
                    out = tmp / "out.mp4"
                    stylize_video(clip, out, styles, size=size, temporal=strength, **kw)
                    error = temporal_error(out, clip)["warping_error"]
                    d = sampled_distances(out, clip, [painting], args.every, evaluate)
                    if base is None:
                        base = (error, d["style"])
                    row = dict(size=size, clip=name, strength=strength, default=strength == default, error=error)
                    row.update(content=d["content"], style=d["style"], base=base)
                    rows.append(row)
                    change = 100 * (d["style"] / base[1] - 1)
                    print(
                        f"{size} px | {name} | --temporal {strength:g}: warping error {error:.5f} "
                        f"(/ {base[0] / error:.2f}), style {d['style']:.4f} ({change:+.1f} %)",
                        flush=True,
                    )
    _report(rows, args, how)


def _report(rows, args, how: str) -> None:
    section = f"video-temporal-{args.method}"
    command = (
        f"python benchmarks/video_temporal.py --method {args.method} --sizes {' '.join(map(str, args.sizes))} "
        f"--strengths {' '.join(f'{s:g}' for s in args.strengths)} --frames {args.frames} --every {args.every} "
        f"--crf {args.crf}" + (f" --model {args.model}" if args.method == "fast" else "")
    )
    lines = [
        f"## Video, {args.method}'s --temporal by size: `{section}`, `benchmarks/video_temporal.py`",
        "",
        f"- date: {dt.date.today()}; machine: {machine()}",
        f"- command: `{command}`",
        f"- impasto {args.method} with {how}; the clips of benchmarks/video.py; encoded at `--crf {args.crf}`; warping "
        f"error: `impasto eval-video`; distances over one frame in {args.every}, against the painting; against "
        "per-frame: the warping error divided by, the style distance's change (the issue's target: / 2 or more "
        "within +10 %); **bold**: the default at that size",
        "",
        "| size | clip | --temporal | warping error | against per frame | content | style | style against per frame |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        s = f"**{r['strength']:g}**" if r["default"] else f"{r['strength']:g}"
        ratio = "-" if r["strength"] == 0 else f"/ {r['base'][0] / r['error']:.2f}"
        change = "-" if r["strength"] == 0 else f"{100 * (r['style'] / r['base'][1] - 1):+.1f} %"
        lines.append(
            f"| {r['size']} | {r['clip']} | {s} | {r['error']:.5f} | {ratio} | {r['content']:.3f} | "
            f"{r['style']:.4f} | {change} |"
        )
    write_section(args.doc, section, "\n".join(lines))


if __name__ == "__main__":
    main()
