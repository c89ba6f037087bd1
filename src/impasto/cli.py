"""The ``impasto`` command line: ``stylize``, ``eval``, ``serve`` and ``train``.

Bad input is reported as one line on stderr with exit code 2, before any work, and leaves no output file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from dataclasses import fields
from typing import Sequence

from . import __version__
from .api import available_methods, get_method, make_options
from .errors import ImpastoError
from .image import check_output_path, load_image, save_image
from .weights import NORMALIZATIONS

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show '(default: X)' only where there is a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default == []:
            return action.help or ""
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage dump) and exit with code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"impasto: error: {message}\n")


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _numbers(values: Sequence[str] | None) -> list[float] | None:
    """Several numbers, given as separate words and/or comma-separated ('1 2' or '1,2')."""
    if values is None:
        return None
    out = []
    for word in values:
        for part in word.split(","):
            if part.strip():
                try:
                    out.append(_number(part.strip()))
                except argparse.ArgumentTypeError as e:
                    raise ImpastoError(f"bad weight: {e}") from None
    return out


def _ints(values: Sequence[str] | None) -> list[int] | None:
    """Whole numbers given as separate words and/or comma-separated."""
    if values is None:
        return None
    try:
        return [int(p) for word in values for p in word.split(",") if p.strip()]
    except ValueError:
        raise ImpastoError(f"expected whole numbers, got {' '.join(values)!r}") from None


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [p.strip() for p in text.split(",") if p.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (also used by the docs and the tests)."""
    parser = _Parser(prog="impasto", description="Repaint a photo in the style of one or more paintings.")
    parser.add_argument("--version", action="version", version=f"impasto {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    fmt = _HelpFormatter

    st = sub.add_parser(
        "stylize",
        help="stylize a content image with one or more style images",
        formatter_class=fmt,
        description="Repaint CONTENT in the style of STYLE (several styles are blended).",
    )
    st.add_argument("content", metavar="CONTENT", help="the photo to repaint")
    st.add_argument("styles", metavar="STYLE", nargs="+", help="one or more style images")
    st.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp, .bmp, .tif)")
    st.add_argument("--method", default="gatys", choices=available_methods(), help="style-transfer method")
    g = st.add_argument_group("size and budget")
    g.add_argument("--size", type=_int, default=512, help="longest side of the output in pixels")
    g.add_argument(
        "--max-size", type=_int, default=2048, help="refuse --size above this (raise it to go bigger)"
    )
    g.add_argument(
        "--max-memory",
        default=None,
        metavar="BYTES",
        help="memory budget: bytes or a size like 6G, 800M; a scale estimated above it runs tile by tile "
        "(same result, slower); default: min(8 GiB, 60%% of RAM), 60%% of the GPU's memory on CUDA",
    )
    g.add_argument(
        "--steps", type=_int, default=70, help="total step budget over all scales (one VGG pass each)"
    )
    g.add_argument(
        "--scales",
        type=_int,
        default=None,
        help="number of scales, each twice the previous, ending at --size (1 = no coarse-to-fine); "
        "default: halve from --size down to --min-size",
    )
    g.add_argument("--min-size", type=_int, default=128, help="longest side of the coarsest scale (by default)")
    g.add_argument(
        "--scale-steps",
        nargs="+",
        metavar="N",
        help="steps per scale, coarsest first ('150 80 40'); default: --steps split, halving at each finer scale",
    )
    g.add_argument(
        "--upsample",
        default="detail",
        choices=("detail", "bicubic"),
        help="how each scale's result becomes the next scale's start: bicubic plus the photo's finer detail "
        "(sharp from the first step), or plain bicubic",
    )
    g.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="precision of the VGG passes; auto = bf16 on CUDA and on CPUs with bf16 units (AMX, AVX512-BF16), "
        "else fp32; the image, targets and losses stay fp32",
    )
    g.add_argument(
        "--tol",
        type=_number,
        default=1e-4,
        help="stop early once the loss improves by less than this fraction per step (over 10 steps); 0 = never",
    )
    w = st.add_argument_group("loss weights and layers")
    w.add_argument("--content-weight", type=_number, default=1.0, help="weight of the content loss")
    w.add_argument("--style-weight", type=_number, default=8.0, help="weight of the style loss")
    w.add_argument("--tv-weight", type=_number, default=1.0, help="weight of the total-variation (smoothness) loss")
    w.add_argument("--style-weights", nargs="+", metavar="W", help="blend weights, one per style image (default equal)")
    w.add_argument("--style-scale", type=_number, default=1.0, help="style image scale relative to the output")
    w.add_argument(
        "--mask",
        nargs="+",
        metavar="PATH",
        help="one mask image per style: the style applies where its mask is white; soft masks blend",
    )
    w.add_argument("--content-mask", metavar="PATH", help="mask image: white where the photo is kept unstylized")
    w.add_argument(
        "--style-loss",
        default="gram",
        choices=("gram", "mean-cov"),
        help="style statistic: Gram matrices, or feature mean and covariance (Wasserstein-2 distance)",
    )
    w.add_argument(
        "--preserve-color",
        default="none",
        choices=("none", "luminance", "histogram"),
        help="keep the photo's colours: luminance = stylize brightness only and keep the photo's chroma; "
        "histogram = recolour the style image to the photo's colour statistics first",
    )
    w.add_argument("--content-layers", default="relu4_2", help="comma-separated VGG-19 layers for content")
    w.add_argument(
        "--style-layers", default="relu1_1,relu2_1,relu3_1,relu4_1,relu5_1", help="comma-separated layers for style"
    )
    w.add_argument("--content-layer-weights", nargs="+", metavar="W", help="one weight per content layer (default equal)")
    w.add_argument("--style-layer-weights", nargs="+", metavar="W", help="one weight per style layer (default equal)")
    o = st.add_argument_group("optimization")
    o.add_argument("--optimizer", default="lbfgs", choices=("lbfgs", "adam"), help="optimizer over the pixels")
    o.add_argument("--learning-rate", type=_number, default=None, help="step size (default: 1 for lbfgs, 0.02 for adam)")
    o.add_argument("--init", default="content", help="starting image: content, noise, or an image path")
    o.add_argument("--seed", type=_int, default=None, help="random seed (same seed, same output on CPU)")
    o.add_argument("--pooling", default="max", choices=("max", "avg"), help="VGG pooling layers")
    o.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"), help="compute device")
    o.add_argument(
        "--weights", default="caffe", help="VGG-19 weights: caffe (original, bundled), torchvision, or a file path"
    )
    o.add_argument(
        "--weights-normalization",
        choices=NORMALIZATIONS,
        default=None,
        help="override the input normalization a weights file implies",
    )
    ad = st.add_argument_group("adain (--method adain)")
    ad.add_argument(
        "--strength", type=_number, default=1.0, help="style strength alpha from 0 (the photo) to 1 (full style)"
    )
    ad.add_argument(
        "--style-size", type=_int, default=512, help="longest side each style image is resized to (0 = as is)"
    )
    ad.add_argument("--decoder", default=None, help="AdaIN decoder file (default: the one shipped with impasto)")
    out = st.add_argument_group("output")
    out.add_argument(
        "--save-every", type=_int, default=0, metavar="N", help="also save OUTPUT_stepNNNNN every N steps"
    )
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")

    ev = sub.add_parser(
        "eval",
        help="measure content and style distances of an output",
        formatter_class=fmt,
        description="Content distance: relative relu4_2 error against CONTENT. Style distance: mean relative Gram "
        "error over relu1_1..relu5_1 against the style image(s). fp32 Caffe VGG-19, max pooling. Lower is closer.",
    )
    ev.add_argument("output", metavar="OUTPUT", help="the stylized image")
    ev.add_argument("--content", help="the content image")
    ev.add_argument("--style", nargs="+", default=[], help="the style image(s)")
    ev.add_argument("--style-weights", nargs="+", metavar="W", help="blend weights for several styles")
    ev.add_argument("--json", action="store_true", help="print JSON")

    sv = sub.add_parser(
        "serve",
        help="run the web app and HTTP API",
        formatter_class=fmt,
        description="Serve a web page for stylizing photos and an HTTP API under /api (docs at /api/docs).",
    )
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback unless --allow-remote)")
    sv.add_argument("--port", type=_int, default=8000, help="port to listen on (0: any free port)")
    sv.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (anyone who can reach it can use it)"
    )
    sv.add_argument("--open", action="store_true", help="open the page in a web browser")
    lim = sv.add_argument_group("limits")
    lim.add_argument("--max-upload-mb", type=_number, default=20, help="largest request body (photo + styles)")
    lim.add_argument("--max-megapixels", type=_number, default=40, help="largest uploaded image")
    lim.add_argument("--max-size", type=_int, default=1024, help="largest output size (longest side, px)")
    lim.add_argument("--max-steps", type=_int, default=1000, help="most steps per job")
    lim.add_argument("--queue-size", type=_int, default=8, help="most jobs waiting; more are refused (429)")
    lim.add_argument("--job-timeout", type=_number, default=600, help="seconds a job may run")
    lim.add_argument("--result-ttl", type=_number, default=3600, help="seconds finished jobs and results are kept")
    sv.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"), help="compute device")
    sv.add_argument(
        "--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"), help="precision of network passes"
    )

    tr = sub.add_parser("train", help="train a model", formatter_class=fmt, description="Train a model.")
    trs = tr.add_subparsers(dest="model", metavar="MODEL", parser_class=_Parser)
    trs.required = True
    ta = trs.add_parser(
        "adain",
        help="train an AdaIN decoder",
        formatter_class=fmt,
        description="Train an AdaIN decoder on a folder of photos and a folder of paintings. Checkpoints every "
        "--checkpoint-every steps (decoder, optimizer, step); --resume continues from the exact step.",
    )
    ta.add_argument("--content-dir", required=True, help="folder of content photos")
    ta.add_argument("--style-dir", required=True, help="folder of style images")
    ta.add_argument("-o", "--output", required=True, help="decoder file to write (.safetensors, fp16)")
    ta.add_argument("--size", type=_int, default=256, help="training crop size in pixels (multiple of 8)")
    ta.add_argument(
        "--image-size", type=_int, default=512,
        help="shorter side the images are scaled to (jittered down to 3/4) before cropping: the size of the "
        "pictures the decoder is meant for",
    )
    ta.add_argument("--batch", type=_int, default=8, help="images per step")
    ta.add_argument("--steps", type=_int, default=20000, help="total steps (a resumed run continues up to this)")
    ta.add_argument("--lr", type=_number, default=1e-4, help="Adam learning rate")
    ta.add_argument("--lr-decay", type=_number, default=5e-5, help="learning rate = lr / (1 + lr-decay * step)")
    ta.add_argument("--content-weight", type=_number, default=1.0, help="weight of the content loss")
    ta.add_argument("--style-weight", type=_number, default=10.0, help="weight of the style loss")
    ta.add_argument(
        "--identity-weight", type=_number, default=0.0,
        help="weight of an identity loss: the pixel MSE between each photo and the decoder's reconstruction of it "
        "(0 = off, the paper's recipe); sharpens the decoder early in training",
    )
    ta.add_argument("--checkpoint", default=None, help="checkpoint file (default: OUTPUT.ckpt)")
    ta.add_argument("--checkpoint-every", type=_int, default=500, help="steps between checkpoints")
    ta.add_argument("--preview-every", type=_int, default=1000, help="steps between preview grids (0 = never)")
    ta.add_argument("--preview-dir", default=None, help="folder for preview grids (default: OUTPUT_previews/)")
    ta.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    ta.add_argument(
        "--overwrite", action="store_true", help="start a new run even though the checkpoint file exists (replaces it)"
    )
    ta.add_argument(
        "--weights", default=None,
        help="VGG-19 weights of the encoder: caffe (default, bundled), torchvision, or a file path; a decoder only "
        "works with the encoder it was trained with",
    )
    ta.add_argument("--seed", type=_int, default=0, help="random seed of the crops and augmentations")
    ta.add_argument("--max-images", type=_int, default=None, help="use only the first N images of each folder")
    ta.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"), help="compute device")
    ta.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"), help="autocast precision")
    ta.add_argument("--log-every", type=_int, default=0, metavar="N", help="also print the losses every N steps")
    ta.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def _stylize(args: argparse.Namespace) -> int:
    inputs = (
        args.content,
        *args.styles,
        *([args.init] if args.init not in ("content", "noise") else []),
        *(args.mask or []),
        *([args.content_mask] if args.content_mask else []),
    )
    output = check_output_path(args.output, inputs)
    if args.save_every < 0:
        raise ImpastoError(f"--save-every must be 0 (off) or a positive number of steps, got {args.save_every}")
    # Read every input up front so a bad file fails in a second, not after minutes of work.
    content = load_image(args.content)
    styles = [load_image(s) for s in args.styles]
    if args.init not in ("content", "noise"):
        load_image(args.init)
    settings = dict(
        size=args.size,
        max_size=args.max_size,
        max_memory=args.max_memory,
        steps=args.steps,
        scales=args.scales,
        min_size=args.min_size,
        scale_steps=_ints(args.scale_steps),
        upsample=args.upsample,
        precision=args.precision,
        preserve_color=args.preserve_color,
        style_loss=args.style_loss,
        masks=[load_image(m) for m in args.mask] if args.mask else None,
        content_mask=load_image(args.content_mask) if args.content_mask else None,
        tol=args.tol,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
        style_weights=_numbers(args.style_weights),
        style_scale=args.style_scale,
        content_layers=_names(args.content_layers),
        style_layers=_names(args.style_layers),
        content_layer_weights=_numbers(args.content_layer_weights),
        style_layer_weights=_numbers(args.style_layer_weights),
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        init=args.init,
        seed=args.seed,
        pooling=args.pooling,
        device=args.device,
        weights=args.weights,
        weights_normalization=args.weights_normalization,
        strength=args.strength,
        style_size=args.style_size or None,
        decoder=args.decoder,
    )
    # Each method takes the settings its Options knows; the rest do not apply to it.
    known = {f.name for f in fields(get_method(args.method).Options)}
    options = make_options(args.method, **{k: v for k, v in settings.items() if k in known})
    options.validate(len(styles))

    def save_intermediate(step: int, image, losses: dict) -> None:
        if args.save_every and step % args.save_every == 0:
            path = check_output_path(output.with_name(f"{output.stem}_step{step:05d}{output.suffix}"), inputs)
            save_image(image, path)

    start = time.perf_counter()
    result = get_method(args.method).run(
        content, styles, options, callback=save_intermediate, progress=not args.quiet
    )
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
        steps = f", {result.steps} steps ({result.stopped})" if args.method == "gatys" else f" ({args.method})"
        tiles = getattr(result, "tiles", None) or []
        if max(tiles, default=1) > 1:
            steps += f", tiles per scale {'/'.join(map(str, tiles))}"
        print(f"impasto: {w}x{h}{steps} in {elapsed:.1f} s{'; ' + losses if losses else ''}", file=sys.stderr)
    print(output)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .metrics import evaluate

    if args.content is None and not args.style:
        raise ImpastoError("eval needs --content and/or --style")
    output = load_image(args.output)
    content = load_image(args.content) if args.content else None
    styles = [load_image(s) for s in args.style]
    weights = _numbers(args.style_weights)
    if weights is not None:
        if len(weights) != len(styles):
            raise ImpastoError(f"--style-weights: got {len(weights)} values for {len(styles)} style images")
        if sum(weights) <= 0:
            raise ImpastoError("--style-weights: at least one weight must be positive")
    result = evaluate(output, content, styles, weights)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        if result["content"] is not None:
            print(f"content distance: {result['content']:.4f}")
        if result["style"] is not None:
            print(f"style distance:   {result['style']:.4f}")
            for layer, value in result["style_layers"].items():
                print(f"  {layer}: {value:.4f}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    # Imported here: the web stack is only needed by this command.
    from .serve.server import serve
    from .serve.settings import MB, ServeSettings

    settings = ServeSettings(
        host=args.host,
        port=args.port,
        allow_remote=args.allow_remote,
        max_upload_bytes=int(args.max_upload_mb * MB),
        max_pixels=int(args.max_megapixels * 1e6),
        max_size=args.max_size,
        default_size=min(512, args.max_size),
        max_steps=args.max_steps,
        queue_size=args.queue_size,
        job_timeout=args.job_timeout,
        result_ttl=args.result_ttl,
        job_defaults={"device": args.device, "precision": args.precision},
    )
    return serve(settings, open_browser=args.open)


def _train(args: argparse.Namespace) -> int:
    from .train_adain import TrainConfig, TrainingInterrupted, train

    if not args.output.endswith(".safetensors"):
        raise ImpastoError(f"--output {args.output}: the decoder is written as .safetensors")
    cfg = TrainConfig(
        content_dir=args.content_dir,
        style_dir=args.style_dir,
        output=args.output,
        size=args.size,
        image_size=args.image_size,
        batch=args.batch,
        steps=args.steps,
        lr=args.lr,
        lr_decay=args.lr_decay,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        identity_weight=args.identity_weight,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        preview_every=args.preview_every,
        preview_dir=args.preview_dir,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        max_images=args.max_images,
        weights=args.weights,
    )
    started = time.perf_counter()

    def log(step: int, terms: dict) -> None:
        if args.log_every and step % args.log_every == 0:
            rate = (time.perf_counter() - started) / max(1, step - log.first + 1)
            extra = f" identity {terms['identity']:.4f}" if "identity" in terms else ""
            print(f"step {step}: content {terms['content']:.4f} style {terms['style']:.4f}{extra} ({rate:.2f} s/step)",
                  file=sys.stderr, flush=True)
        log.first = min(log.first, step)

    log.first = 1 << 62

    def stop(signum, frame) -> None:
        # A background run is ended with SIGTERM (and ignores SIGINT): checkpoint first, as Ctrl-C does.
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        summary = train(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet, on_step=log)
    except TrainingInterrupted as e:
        where = f"checkpoint of step {e.step} in {e.checkpoint}" if e.saved else "no checkpoint written"
        print(f"impasto: interrupted at step {e.step}; {where}" + (", --resume continues" if e.saved else ""),
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not args.quiet:
        print(
            f"impasto: step {summary['step']} ({summary['steps_this_run']} this run, {summary['seconds']:.0f} s); "
            f"content {summary['content']:.4g}, style {summary['style']:.4g}; checkpoint {summary['checkpoint']}",
            file=sys.stderr,
        )
    print(summary["output"])
    return 0

def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on `argv` (default: sys.argv[1:]); returns the exit code (2 for bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors (already printed as one line)
        return int(e.code or 0)
    try:
        if args.command == "stylize":
            return _stylize(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "train":
            return _train(args)
        return _eval(args)
    except ImpastoError as e:
        if os.environ.get("IMPASTO_DEBUG"):
            raise
        print(f"impasto: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("impasto: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print("impasto: error: out of memory; try a smaller --size", file=sys.stderr)
        return 1
    except RuntimeError as e:
        # torch.OutOfMemoryError (CUDA) and MPS allocation failures are RuntimeErrors saying so.
        if "out of memory" not in str(e).lower():
            raise
        print("impasto: error: out of memory on the device; try a smaller --size or --device cpu", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"impasto: error: {e.filename or ''}{': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
