"""``impasto stylize CONTENT STYLE... -o OUTPUT``: every registered method's options as flags."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from typing import Iterator

from ..api import available_methods, get_method, method_title
from ..core.image import check_image, check_output_path, load_image, save_image
from ..engine import Progress
from ..errors import ImpastoError
from ..options import make
from .flags import HelpFormatter, add_declared, collect, given_flags, values

EXIT_INTERRUPTED = 130
NO_OUTPUT_INPUTS = ("content", "noise")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (how a job runner or `kill` stops a process) does what Ctrl-C does: the run stops at its next step,
    keeps the last iterate with --save-every, and the process exits with 130."""

    def stop(signum, frame) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def add_method_options(parser: argparse.ArgumentParser, methods: dict) -> None:
    """--method and every registered method's declared options, grouped by method (shared ones under "common")."""
    parser.add_argument(
        "--method", default=available_methods()[0], choices=available_methods(), help="style-transfer method"
    )
    flags = collect({name: m.Options for name, m in methods.items()})
    groups: dict = {"_methods": list(methods)}
    for flag in flags:
        spec = flag.declared.spec
        name = spec.group or ("common" if len(flag.owners) > 1 else next(iter(flag.owners)))
        if name not in groups:
            title = f"{name} (--method {name})" if name in methods else name
            groups[name] = parser.add_argument_group(title)
    groups.setdefault("common", parser.add_argument_group("common"))
    add_declared(parser, flags, groups)
    parser.set_defaults(_flags=flags)


def method_options(args: argparse.Namespace) -> dict:
    """The options given on the command line for --method, converted; a flag of another method is an error."""
    misplaced = [f for f in given_flags(args, args._flags) if args.method not in f.owners]
    if misplaced:
        f = misplaced[0]
        raise ImpastoError(
            f"{f.declared.flag} does not apply to --method {args.method} (it is an option of {', '.join(f.owners)})"
        )
    return values(args, get_method(args.method).Options, load_image)


def add_parser(sub) -> None:
    methods = {name: get_method(name) for name in available_methods()}
    about = "; ".join(f"{name}: {method_title(m)[0]}" for name, m in methods.items())
    st = sub.add_parser(
        "stylize",
        help="stylize a content image with one or more style images",
        formatter_class=HelpFormatter,
        description=f"Repaint CONTENT in the style of STYLE (several styles are blended). Methods: {about}.",
    )
    st.add_argument("content", metavar="CONTENT", help="the photo to repaint")
    st.add_argument(
        "styles",
        metavar="STYLE",
        nargs="*",
        default=[],  # not "required" in argparse's messages
        help="one or more style images (--method fast paints them through its built-in model for any painting, "
        "unless --model names a model file from impasto train fast-arbitrary)",
    )
    st.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp, .bmp, .tif)")
    add_method_options(st, methods)
    out = st.add_argument_group("output")
    out.add_argument(
        "--save-every",
        type=int,
        default=0,
        metavar="N",
        help="also save OUTPUT_stepNNNNN every N steps (iterative methods)",
    )
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def run(args: argparse.Namespace) -> int:
    module = get_method(args.method)
    given = method_options(args)  # image options are read here: a bad file fails before any work
    init = getattr(args, "init", "content")
    inputs = (
        args.content,
        *args.styles,
        *([init] if init not in NO_OUTPUT_INPUTS else []),
        *(getattr(args, "masks", None) or []),
        *([args.content_mask] if getattr(args, "content_mask", None) else []),
    )
    output = check_output_path(args.output, inputs)
    if args.save_every < 0:
        raise ImpastoError(f"--save-every must be 0 (off) or a positive number of steps, got {args.save_every}")
    # Check every input's header up front so a bad file fails at once, not after minutes of work; then the model
    # loads, an engine that opens its models lazily starts opening them in the background (Engine.prepare), and the
    # pictures are decoded meanwhile (a corrupt body fails there, still before any work).
    pictures = (args.content, *args.styles, *([init] if init not in NO_OUTPUT_INPUTS else []))
    for path in pictures:
        check_image(path)
    options = make(module.Options, given, f"method {args.method!r}")
    options.validate(len(args.styles))
    iterative = hasattr(options, "steps")
    start = time.perf_counter()
    engine = module.load(options)
    engine.prepare(len(args.styles))
    content, *styles = (load_image(path) for path in pictures[: 1 + len(args.styles)])
    if init not in NO_OUTPUT_INPUTS:
        load_image(init)

    def save_intermediate(p: Progress) -> None:
        if args.save_every and p.image is not None and p.step % args.save_every == 0:
            path = check_output_path(output.with_name(f"{output.stem}_step{p.step:05d}{output.suffix}"), inputs)
            save_image(p.image, path)

    with sigterm_as_interrupt():
        result = engine.run(content, styles, options, callback=save_intermediate, progress=not args.quiet)
    elapsed = time.perf_counter() - start
    if result.stopped == "interrupted":
        if args.save_every:
            save_image(result.image, output)
            print(f"impasto: interrupted at step {result.steps}; saved the last iterate to {output}", file=sys.stderr)
        else:
            print("impasto: interrupted; no output written (use --save-every to keep progress)", file=sys.stderr)
        return EXIT_INTERRUPTED
    save_image(result.image, output)
    if not args.quiet:
        h, w = result.image.shape[-2:]
        losses = ", ".join(f"{k} {v:.4g}" for k, v in result.losses.items())
        steps = f", {result.steps} steps ({result.stopped})" if iterative else f" ({args.method})"
        if max(result.tiles, default=1) > 1:
            steps += f", tiles per scale {'/'.join(map(str, result.tiles))}"
        print(f"impasto: {w}x{h}{steps} in {elapsed:.1f} s{'; ' + losses if losses else ''}", file=sys.stderr)
    print(output)
    return 0
