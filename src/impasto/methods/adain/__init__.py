"""Arbitrary style in one pass (Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance
Normalization").

The photo's VGG-19 relu4_1 features take on each channel's mean and spread from the painting's, and a trained
decoder paints the result: a fraction of a second per picture, any painting, no training per style.

This module declares the method's options and imports no torch; :mod:`.engine` runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ...errors import ImpastoError
from ...options import DEVICES, PRECISIONS, PRESERVE_COLOR, check_declared, option

DECODER_FILE = "adain_decoder.safetensors"
COMPACT_FILE = "compact_adain.safetensors"


def bundled_decoder_path() -> Path:
    """Where the decoder shipped with the package lives (no torch needed: the onnxruntime engine asks too)."""
    return Path(str(resources.files("impasto") / "models" / DECODER_FILE))


def decoder_path(decoder: str | None) -> Path:
    """The file of a --decoder value: None or ``vgg`` (the VGG-19 encoder and its decoder), ``compact`` (the compact
    model distilled from it), or a file; ImpastoError when it is missing."""
    if decoder in (None, "vgg", "compact"):
        compact = Path(str(resources.files("impasto") / "models" / COMPACT_FILE))
        path = compact if decoder == "compact" else bundled_decoder_path()
        if not path.is_file():
            raise ImpastoError(
                f"the bundled AdaIN decoder is missing ({path}): reinstall impasto, "
                "or pass --decoder FILE, made by 'impasto train adain'"
            )
        return path
    path = Path(decoder)
    if not path.is_file():
        raise ImpastoError(f"--decoder {path}: no such file")
    return path


if TYPE_CHECKING:
    from ...engine import Engine

DEFAULT_MAX_SIZE = 4096


@dataclass
class Options:
    """Settings of an AdaIN run: the command line's flags, HTTP fields and web page controls come from here."""

    size: int | None = option(
        512,
        "longest side of the output in pixels",
        "int",
        http=True,
        minimum=1,
        label="Size",
    )
    style_size: int | None = option(
        512,
        "longest side each style image is resized to (0 = as is)",
        "int",
        zero_is_none=True,
    )
    strength: float = option(
        1.0,
        "style strength alpha from 0 (the photo) to 1 (full style)",
        "float",
        http=True,
        minimum=0,
        maximum=1,
        label="Strength",
        step=0.05,
    )
    tone: float = option(
        1.0,
        "bring the result's contrast and saturation this far (0 to 1) to the painting's: the decoder alone gives "
        "flatter, greyer pictures than the painting (0 = the decoder's output as it is)",
        "float",
        http=True,
        minimum=0,
        maximum=1,
        label="Painting's tone",
        step=0.05,
    )
    palette: float = option(
        0.5,
        "bring the result's colours this far (0 to 1) to the painting's palette, its colour mean and covariance, "
        "after --tone (1 = all the way: closer to the painting, a little further from the photo; with --method fast "
        "it acts on style images only: a trained style keeps the palette it learnt)",
        "float",
        http=True,
        minimum=0,
        maximum=1,
        label="Painting's palette",
        step=0.05,
    )
    style_weights: Sequence[float] | None = option(
        None,
        "blend weights, one per style image (default equal): the AdaIN targets are interpolated",
        "floats",
        metavar="W",
        http=True,
        label="Blend",
    )
    masks: Sequence[Any] | None = option(
        None,
        "one mask image per style: the style applies where its mask is white; soft masks blend",
        "images",
        flag="--mask",
        metavar="PATH",
    )
    content_mask: Any = option(None, "mask image: white where the photo is kept unstylized", "image", metavar="PATH")
    preserve_color: str = option(
        "none",
        "keep the photo's colours: luminance = stylize brightness only and keep the photo's chroma; "
        "histogram = recolour the style image to the photo's colour statistics first",
        "str",
        choices=PRESERVE_COLOR,
        http=True,
        label="Keep colours",
    )
    precision: str = option(
        "auto",
        "precision of the network passes; int8 = 8-bit convolutions in onnxruntime (3x faster than fp32 on CPUs with "
        "VNNI or AMX, the same distances); auto = int8 on such CPUs, else bf16 on CUDA and on CPUs with bf16 units, "
        "else fp32",
        "str",
        choices=(*PRECISIONS, "int8"),
        load=True,
    )
    device: str = option("auto", f"compute device: {', '.join(DEVICES)} (or cuda:N)", "str", load=True)
    decoder: str | None = option(
        None,
        "the model: vgg (default: the VGG-19 encoder and impasto's decoder), compact (a compact model distilled from "
        "it: about 12x faster, less faithful; see docs/MODELS.md), or a file from 'impasto train adain' or "
        "'impasto train distill'",
        "str",
        load=True,
    )
    weights: str | None = option(
        None,
        "VGG-19 weights of the encoder: caffe (default, bundled), torchvision, or a file path; must be the "
        "ones the decoder was trained with",
        "str",
        load=True,
    )
    runtime: str = option(
        "auto",
        "what runs the networks: onnx = onnxruntime (no PyTorch start-up; exported to the cache on first use), "
        "torch = PyTorch; auto = onnx on CPUs when onnxruntime is installed, except those with bf16 units but no "
        "8-bit ones",
        "str",
        choices=("auto", "onnx", "torch"),
        load=True,
    )
    max_size: int = option(DEFAULT_MAX_SIZE, "refuse --size above this (raise it to go bigger)", "int")

    def validate(self, n_styles: int) -> None:
        """Raise ImpastoError naming the first bad setting."""
        for name in ("size", "style_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ImpastoError(f"--{name.replace('_', '-')} must be a positive number of pixels, got {value}")
            if value is not None and value > self.max_size:
                raise ImpastoError(
                    f"--{name.replace('_', '-')} {value} is above the cap of {self.max_size} px; "
                    f"pass --max-size {value} to allow it"
                )
        check_declared(self)  # kinds, choices and bounds (--strength from 0 to 1) as declared
        if n_styles < 1:
            raise ImpastoError("at least one style image is needed")
        if self.style_weights is not None:
            if len(self.style_weights) != n_styles:
                raise ImpastoError(f"--style-weights: got {len(self.style_weights)} values for {n_styles} style images")
            if any(not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 for v in self.style_weights):
                raise ImpastoError(
                    f"--style-weights: weights must be finite numbers >= 0, got {list(self.style_weights)}"
                )
            if sum(self.style_weights) <= 0:
                raise ImpastoError("--style-weights: at least one weight must be positive")
        if self.masks is not None and len(self.masks) != n_styles:
            raise ImpastoError(f"--mask: got {len(self.masks)} masks for {n_styles} style images (one per style)")


# impasto video's --temporal default for this method. With the blend restoring the strokes' energy, the VGG-19 model
# at 0.6 divides the real clip's warping error by 2.78 at +4.1 % style distance at 360 px and by 2.22 at +6.5 % at
# 640 px, the pan's by 9.8 at +3.3 % at 360 px; at the former default 0.35 the real clip's only by 1.73 (+2.0 %) and
# 1.57 (+2.6 %), 0.5 by 2.26 and 1.92 (2026-12-05, fp32 on an AVX2 CPU, 36 frames, style over every 3rd frame;
# int8, on CPUs with VNNI, flickers more on its own and divides by more at the same strength).
VIDEO_TEMPORAL = 0.6
# Lighter above these longest sides: the blend's style cost grows with the frame size (36 frames, 2026-12-08,
# `benchmarks/video_temporal.py`, docs/BENCHMARKS.md): at 0.6 the real clip at 640 px / 2.98 at +9.3 %, at 720p
# / 3.48 at +16.7 % (the pan +9.1 %); at 0.5 640 px / 2.44 at +7.1 %; at 0.4 720p / 2.29 at +9.5 % (the pan / 5.51
# at +5.7 %). At 360 px 0.6 costs +4.5 % on the real clip for / 3.93 (0.4: / 2.43).
VIDEO_TEMPORAL_ABOVE = ((480, 0.5), (960, 0.4))
GRID = 8  # the encoders' stride (VGG-19's and the student's: three poolings before relu4_1; torch-free here)


def grid_period(opts: Options, width: int, height: int) -> float | None:
    """The period in pixels of the encoder's stride grid on video frames (:class:`impasto.video.GridAnchor`; frames
    are painted at their own size), or None with regions, whose masks are drawn for the frame as it is."""
    if opts.masks is not None or opts.content_mask is not None:
        return None
    return float(GRID)


def load(options: Options | None = None) -> "Engine":
    """The AdaIN engine: encoder and decoder loaded once, style codes cached, for many pictures.

    On CPUs, with onnxruntime installed, the model runs as ONNX graphs and PyTorch is not imported for a plain run
    (:mod:`.runtime`): in int8 on CPUs with 8-bit dot-product units, else in fp32; elsewhere (GPUs, CPUs with bf16
    units but no 8-bit ones, other VGG weights) PyTorch runs it.
    """
    opts = options or Options()
    if uses_onnxruntime(opts):
        from .runtime import OrtAdaINEngine

        return OrtAdaINEngine(opts)
    from .engine import AdaINEngine

    return AdaINEngine(opts)


def uses_onnxruntime(opts: Options) -> bool:
    """Whether :func:`load` picks the onnxruntime engine for these options (see there)."""
    import os

    from ...core.cache import cpu_flags_say_fast_bf16
    from .runtime import available

    plain = opts.device in ("auto", "cpu") and opts.precision in ("auto", "fp32", "int8")
    plain = plain and opts.weights in (None, "caffe")
    if opts.runtime == "onnx" or opts.precision == "int8":
        if opts.runtime == "torch":
            raise ImpastoError("--precision int8 runs in onnxruntime: use --runtime onnx or auto with it")
        if not plain:
            raise ImpastoError(
                f"--{'runtime onnx' if opts.runtime == 'onnx' else 'precision int8'} runs on the CPU with the "
                "bundled VGG weights (--precision fp32 or int8); use --runtime torch for the rest"
            )
        if not available(opts.decoder):
            raise ImpastoError("onnxruntime and onnx are needed: pip install 'impasto[export]'")
        return True
    if opts.runtime == "torch" or not plain:
        return False
    if opts.device == "auto" and os.path.exists("/dev/nvidia0"):
        return False  # a GPU may be there: PyTorch uses it
    if opts.precision == "auto" and cpu_flags_say_fast_bf16() and not onnx_int8(opts):
        return False  # bf16 autocast in PyTorch is faster than onnxruntime's fp32 there
    return available(opts.decoder)


def onnx_int8(opts: Options) -> bool:
    """Whether the onnxruntime engine runs the int8 graphs for these options."""
    from ...core.cache import cpu_flags_say_fast_int8

    return opts.precision == "int8" or (opts.precision == "auto" and bool(cpu_flags_say_fast_int8()))
