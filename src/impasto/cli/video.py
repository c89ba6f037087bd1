"""``impasto video INPUT -o OUTPUT [STYLE...]``: a video stylized frame by frame, steady, with its sound; and
``impasto eval-video``: how steady a stylized video is."""

from __future__ import annotations

import argparse
import json
import sys

from ..api import available_methods, get_method
from ..core.video import DEFAULT_CRF, DEFAULT_MAX_PIXELS
from ..video import SAMPLE_EVERY, temporal_defaults
from .flags import HelpFormatter, finite_number
from .stylize import EXIT_INTERRUPTED, add_method_options, method_options, sigterm_as_interrupt


def add_parser(sub) -> None:
    methods = {name: get_method(name) for name in available_methods()}
    v = sub.add_parser(
        "video",
        help="stylize a video (temporal consistency, sound kept)",
        formatter_class=HelpFormatter,
        description="Stylize every frame of INPUT (any format FFmpeg reads) into OUTPUT (.mp4 H.264 or .webm VP9) with "
        "the method loaded once. Frame rate, timestamps and the sound are kept (the audio is copied as it is); "
        "--temporal blends each frame with the previous result carried along the optical flow where the flow is "
        "reliable, so strokes follow the motion instead of flickering. The output appears only when complete.",
    )
    v.add_argument("input", metavar="INPUT", help="the video to stylize")
    v.add_argument(
        "styles",
        metavar="STYLE",
        nargs="*",
        default=[],  # not "required" in argparse's messages
        help="style images (--method fast paints them through its built-in model for any painting, "
        "unless --model names a model file from impasto train fast-arbitrary)",
    )
    v.add_argument("-o", "--output", required=True, help="output video (.mp4, .m4v, .mov or .webm)")
    add_video_arguments(v)
    v.add_argument("--start", type=float, default=0.0, metavar="SECONDS", help="start at this time")
    v.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stylize this much (default: all)")
    v.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run of an iterative method (gatys) from its last finished frame",
    )
    add_method_options(v, methods)
    v.set_defaults(method="fast")
    v.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def add_video_arguments(parser) -> None:
    """--temporal, --crf, --preset and --max-megapixels, for impasto video and for the videos of impasto batch."""
    parser.add_argument(
        "--max-megapixels",
        type=finite_number,
        default=round(DEFAULT_MAX_PIXELS / 1e6, 2),
        metavar="N",
        help="refuse videos whose frames are larger than this (before --size scales them)",
    )
    parser.add_argument(
        "--temporal",
        type=float,
        default=None,
        metavar="S",
        help=f"temporal consistency from 0 (each frame on its own) to 1 (default: the method's, {temporal_defaults()})",
    )
    parser.add_argument(
        "--crf",
        type=int,
        default=DEFAULT_CRF,
        metavar="N",
        help="the encoder's quality, H.264's constant rate factor from 0 (lossless) to 51: lower keeps more of the "
        "painted texture in larger files (12-14: files about twice as large)",
    )
    parser.add_argument(
        "--preset",
        default=None,
        metavar="NAME",
        help="the encoder's speed, x264's names from ultrafast to veryslow: slower ones make smaller files at the same "
        "--crf (default: faster for MP4, libvpx's own for WebM)",
    )


def add_eval_parser(sub) -> None:
    e = sub.add_parser(
        "eval-video",
        help="measure how steady a stylized video is",
        formatter_class=HelpFormatter,
        description="The temporal warping error of OUTPUT: the mean squared difference between each frame and the "
        "previous one warped by SOURCE's optical flow, over the pixels where the flow is reliable (lower is "
        "steadier).",
    )
    e.add_argument("output", metavar="OUTPUT", help="the stylized video")
    e.add_argument("--source", required=True, help="the video it was made from")
    e.add_argument(
        "--style",
        nargs="+",
        default=[],
        metavar="PAINTING",
        help="also the style distance of the sampled frames to these paintings (the content distance is always given)",
    )
    e.add_argument(
        "--every",
        type=int,
        default=SAMPLE_EVERY,
        metavar="N",
        help="measure the content and style distances on every N-th frame",
    )
    e.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from ..video import check_output, stylize_video

    check_output(args.output, args.input)
    options = method_options(args)
    size = options.pop("size", 512)
    with sigterm_as_interrupt():
        try:
            report = stylize_video(
                args.input,
                args.output,
                args.styles,
                args.method,
                temporal=args.temporal,
                size=size,
                start=args.start,
                duration=args.duration,
                max_pixels=round(args.max_megapixels * 1e6),
                crf=args.crf,
                preset=args.preset,
                progress=not args.quiet,
                resume=args.resume,
                **options,
            )
        except KeyboardInterrupt:
            kept = "the finished frames are kept: --resume continues" if args.method == "gatys" else "no output written"
            print(f"impasto: interrupted; {kept}", file=sys.stderr)
            return EXIT_INTERRUPTED
    if not args.quiet:
        print(
            f"impasto: {report.frames} frames ({report.seconds:.1f} s of video) in {report.elapsed:.1f} s, "
            f"{report.fps:.1f} frames/s; sound {report.audio}; {report.cuts} scene cut(s)"
            + (f"; {report.resumed} frames from the interrupted run" if report.resumed else ""),
            file=sys.stderr,
        )
    print(report.output)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from ..core.image import load_image
    from ..video import sampled_distances, temporal_error

    styles = [load_image(s) for s in args.style]  # a bad painting fails before any measuring
    distances = sampled_distances(args.output, args.source, styles, args.every)  # (a bad --every fails first)
    result = temporal_error(args.output, args.source)
    result.update(distances)
    if args.json:
        print(json.dumps(result))
    else:
        line = (
            f"warping error {result['warping_error']:.6f} over {result['frames']} frames "
            f"({result['reliable']:.0%} of pixels reliable); content distance {result['content']:.4f}"
        )
        if "style" in result:
            line += f", style distance {result['style']:.4f}"
        print(line + f" ({_sampling(args.every)}: {result['sampled_frames']} frames)")
    return 0


class _EvalCommand:
    """``eval-video`` as an entry of the command table."""

    add_parser = staticmethod(add_eval_parser)
    run = staticmethod(run_eval)


EVAL = _EvalCommand()


def _sampling(n: int) -> str:
    """1 -> "every frame", 3 -> "every 3rd frame", 12 -> "every 12th frame"."""
    if n == 1:
        return "every frame"
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"every {n}{suffix} frame"
