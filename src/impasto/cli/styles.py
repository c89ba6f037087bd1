"""``impasto styles``: the built-in styles (or a model file's), and a contact sheet of a photo in every style."""

from __future__ import annotations

import argparse
import sys

from ..core.image import check_output_path, contact_sheet, load_image, save_image, tensor_to_pil
from ..errors import ImpastoError
from .flags import HelpFormatter


def add_parser(sub) -> None:
    p = sub.add_parser(
        "styles",
        help="list the built-in styles (fast networks) or render a photo in each",
        formatter_class=HelpFormatter,
        description="List the styles of the built-in fast networks (or of a model file made by 'impasto train fast'); "
        "with --sheet, render a photo in every style on one contact sheet.",
    )
    p.add_argument("--model", metavar="FILE", help="a model file from 'impasto train fast' (default: the built-in one)")
    p.add_argument("--sheet", metavar="PHOTO", help="render PHOTO in every style into a contact sheet (-o)")
    p.add_argument("-o", "--output", help="the contact sheet's file (.png, .jpg, ...)")
    p.add_argument("--size", type=int, default=384, help="longest side of each picture on the sheet")
    p.add_argument("--columns", type=int, default=3, help="pictures per row")


def run(args: argparse.Namespace) -> int:
    from ..methods.fast import builtin_path, model_names

    path = args.model or str(builtin_path())
    if args.model is None and not builtin_path().is_file():
        raise ImpastoError(f"no built-in styles are installed ({path} is missing); reinstall impasto")
    names = model_names(path)
    if args.sheet is None:
        if args.output:
            raise ImpastoError("-o/--output is for the contact sheet: add --sheet PHOTO")
        print("\n".join(names))
        return 0
    if not args.output:
        raise ImpastoError("--sheet needs -o/--output, the contact sheet's file")
    if args.size < 16 or args.columns < 1:
        raise ImpastoError("--size must be at least 16 px and --columns at least 1")
    output = check_output_path(args.output, (args.sheet,))
    photo = load_image(args.sheet)

    from .. import api

    spec = [n if args.model is None else f"{path}#{n}" for n in names]
    engine = api.load("fast", model=spec[0], size=args.size)
    pictures, labels = [photo], ["photo"]
    for name, item in zip(names, spec):
        options = api.make_options("fast", model=item, size=args.size)
        result = engine.run(photo, [], options)
        pictures.append(tensor_to_pil(result.image))
        labels.append(name)
        print(f"impasto: {name}", file=sys.stderr)
    save_image(contact_sheet(pictures, labels, args.columns, args.size), output)
    print(output)
    return 0
