"""``impasto export MODEL -o FILE --format onnx|torchscript [--int8]``: a network for serving elsewhere."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ImpastoError
from .flags import HelpFormatter


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a network (fast, adain) to ONNX (optionally int8) or TorchScript",
        formatter_class=HelpFormatter,
        description="Export MODEL ('adain' or 'adain:DECODER' for the arbitrary-style model; a built-in style's name, "
        "'builtin' for the whole gallery, or a file from 'impasto train fast') for serving without impasto. The "
        "exported graph's output is checked against PyTorch's at two sizes before the file is written.",
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("-o", "--output", required=True, help="the file to write (.onnx or .pt)")
    p.add_argument(
        "--format",
        dest="export_format",
        choices=("onnx", "torchscript"),
        default=None,
        help="default: from the output's extension (.pt: torchscript)",
    )
    p.add_argument("--int8", action="store_true", help="8-bit weights and activations (onnxruntime, static)")
    p.add_argument("--calibration", metavar="FOLDER", help="photos to calibrate --int8 with (the first 16)")
    p.add_argument("--json", action="store_true", help="print the check as JSON")


def run(args: argparse.Namespace) -> int:
    from ..core.image import load_image
    from ..export import export

    fmt = args.export_format or ("torchscript" if args.output.endswith((".pt", ".pth")) else "onnx")
    photos = []
    if args.calibration:
        folder = Path(args.calibration)
        if not folder.is_dir():
            raise ImpastoError(f"--calibration {folder}: not a folder")
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))[:16]
        photos = [load_image(f) for f in files]
    report = export(args.model, args.output, fmt, int8=args.int8, calibration=photos)
    if args.json:
        print(json.dumps(report))
    else:
        extra = ""
        if "mean_difference_on_photos" in report:
            extra = f"; int8 against fp32: mean difference {report['mean_difference_on_photos']:.4f} on the photos"
        print(
            f"impasto: {report['format']} of {', '.join(report['styles'])} ({report['bytes'] / 1e6:.1f} MB); "
            f"largest difference to PyTorch {report['max_difference']:.2g}{extra}",
            file=sys.stderr,
        )
        print(report["output"])
    return 0
