"""``impasto batch INPUT... -o OUTDIR --style S...``: many pictures in one call, resumable, with an account."""

from __future__ import annotations

import argparse
import sys

from ..api import available_methods, get_method
from ..core.image import OUTPUT_FORMATS
from ..errors import ImpastoError
from .flags import HelpFormatter
from .stylize import EXIT_INTERRUPTED, add_method_options, method_options, sigterm_as_interrupt
from .video import add_video_arguments

EXIT_FAILED = 1


def add_parser(sub) -> None:
    methods = {name: get_method(name) for name in available_methods()}
    ba = sub.add_parser(
        "batch",
        help="stylize many pictures in one call (folders, globs, manifests)",
        formatter_class=HelpFormatter,
        description="Stylize every picture INPUT names into OUTDIR with the method loaded once. INPUT is a picture, "
        "a folder (its pictures; --recursive for its sub-folders too, keeping their layout), a glob pattern "
        "(quote it), or a manifest (.csv with a header row, or .jsonl) whose rows give 'content' and optionally "
        "'style' (paths separated by ';'), 'output' and any option of the method. A rerun skips the outputs that "
        "exist, a bad picture is recorded and the rest go on, and OUTDIR/report.json says what was done. Exit code "
        "0 only when nothing failed.",
    )
    ba.add_argument("inputs", metavar="INPUT", nargs="+", help="pictures, folders, glob patterns or manifests")
    ba.add_argument("-o", "--output-dir", required=True, metavar="OUTDIR", help="folder for the results")
    ba.add_argument(
        "--style",
        dest="batch_styles",
        nargs="+",
        default=[],
        metavar="STYLE",
        help="style images for every picture (a manifest row may name its own)",
    )
    ba.add_argument("--recursive", action="store_true", help="take the pictures of sub-folders too")
    ba.add_argument(
        "--skip-existing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="leave outputs that exist alone, so that a rerun continues an interrupted batch",
    )
    ba.add_argument(
        "--format",
        dest="batch_format",
        default="png",
        choices=sorted({ext.lstrip(".") for ext in OUTPUT_FORMATS}),
        help="format of the results",
    )
    add_video_arguments(ba.add_argument_group("videos among the pictures (each goes through impasto video)"))
    scale = ba.add_argument_group("Ray (more than one process or machine)")
    scale.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run the batch on Ray Data: on the cluster at ADDRESS (e.g. ray://head:10001 or auto), or on a Ray "
        "started on this machine for the job when no address is given; needs pip install 'impasto[ray]'",
    )
    scale.add_argument("--workers", type=int, default=2, help="with --ray: actors, each with the model loaded once")
    scale.add_argument("--gpus-per-worker", type=float, default=0.0, help="with --ray: GPUs for each actor")
    add_method_options(ba, methods)
    ba.add_argument("-q", "--quiet", action="store_true", help="no progress bar (the summary is still printed)")


def run(args: argparse.Namespace) -> int:
    from ..batch import RaySettings, run_batch, summary

    options = method_options(args)
    ray = None
    if args.ray is not None:
        ray = RaySettings(address=args.ray or None, workers=args.workers, gpus_per_worker=args.gpus_per_worker)
    elif args.workers != 2 or args.gpus_per_worker:
        raise ImpastoError("--workers and --gpus-per-worker are for --ray")
    with sigterm_as_interrupt():
        report = run_batch(
            args.inputs,
            args.output_dir,
            args.batch_styles,
            args.method,
            recursive=args.recursive,
            skip_existing=args.skip_existing,
            suffix="." + args.batch_format,
            progress=not args.quiet,
            ray=ray,
            temporal=args.temporal,
            crf=args.crf,
            preset=args.preset,
            max_pixels=round(args.max_megapixels * 1e6),
            **options,
        )
    for line in summary(report):
        print(f"impasto: {line}", file=sys.stderr)
    print(f"{args.output_dir}/report.json")
    if report.interrupted:
        return EXIT_INTERRUPTED
    return 0 if report.ok else EXIT_FAILED
