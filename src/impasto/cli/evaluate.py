"""``impasto eval OUTPUT --content C --style S...``: measured content and style distances."""

from __future__ import annotations

import argparse
import json

from ..core.image import load_image
from ..errors import ImpastoError
from ..options import Declared, Spec, parse_words
from .flags import HelpFormatter

_WEIGHTS = Declared("style_weights", None, Spec("blend weights", "floats"))


def add_parser(sub) -> None:
    ev = sub.add_parser(
        "eval",
        help="measure content and style distances of an output",
        formatter_class=HelpFormatter,
        description="Content distance: relative relu4_2 error against CONTENT. Style distance: mean relative Gram "
        "error over relu1_1..relu5_1 against the style image(s). fp32 Caffe VGG-19, max pooling. Lower is closer.",
    )
    ev.add_argument("output", metavar="OUTPUT", help="the stylized image")
    ev.add_argument("--content", help="the content image (at least one of --content and --style)")
    ev.add_argument("--style", nargs="+", default=[], help="the style image(s) (at least one of --content and --style)")
    ev.add_argument("--style-weights", nargs="+", metavar="W", help="blend weights for several styles")
    ev.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    if args.content is None and not args.style:
        raise ImpastoError("eval needs --content and/or --style")
    output = load_image(args.output)
    content = load_image(args.content) if args.content else None
    styles = [load_image(s) for s in args.style]
    weights = None
    if args.style_weights is not None:
        try:
            weights = parse_words(_WEIGHTS, args.style_weights)
        except ImpastoError as e:
            raise ImpastoError(f"bad weight: {str(e).split(': ', 1)[-1]}") from None
        if len(weights) != len(styles):
            raise ImpastoError(f"--style-weights: got {len(weights)} values for {len(styles)} style images")
        if sum(weights) <= 0:
            raise ImpastoError("--style-weights: at least one weight must be positive")
    from ..metrics import evaluate

    result = evaluate(output, content, styles, weights)
    # Either half may be left out; say so plainly rather than leave a bare null.
    missing = {
        **({"content": "no --content given"} if content is None else {}),
        **({"style": "no --style given"} if not styles else {}),
    }
    if args.json:
        print(json.dumps({**result, "not_measured": missing}, indent=2))
    else:
        if result["content"] is not None:
            print(f"content distance: {result['content']:.4f}")
        if result["style"] is not None:
            print(f"style distance:   {result['style']:.4f}")
            for layer, value in result["style_layers"].items():
                print(f"  {layer}: {value:.4f}")
            print(f"contrast:   {result['contrast']:.3f} (the painting's = 1)")
            print(f"saturation: {result['saturation']:.3f} (the painting's = 1)")
        for what, why in missing.items():
            print(f"{what} distance: not measured ({why})")
    return 0
