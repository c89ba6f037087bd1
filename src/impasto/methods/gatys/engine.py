"""The Gatys engine: VGG-19 loaded once, then the pixels of each picture optimized coarse to fine.

Coarse-to-fine: each scale starts from the previous scale's result, upsampled, with its own targets computed once.
The objective is :class:`impasto.losses.PerceptualLoss`, evaluated whole or tile by tile as the memory budget
allows (:mod:`.plan`).
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from ...core.color import color_inputs, combine_luminance
from ...core.device import resolve_device, resolve_precision
from ...core.image import (
    ImageLike,
    area_size,
    as_pil,
    fit_area,
    fit_longest_side,
    load_mask,
    longest_side_size,
    pil_to_tensor,
)
from ...core.memory import format_size, resolve_max_memory
from ...core.vgg_layers import min_input_side
from ...core.weights import load_weights
from ...engine import BaseEngine, Callback, Progress, Result
from ...errors import ImpastoError
from ...losses import PerceptualLoss
from ...nets.vgg import VGGFeatures
from . import DEFAULT_MAX_SIZE, Options
from .lbfgs import LBFGS
from .plan import plan_scale


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


class GatysEngine(BaseEngine):
    """VGG-19 built once on its device (for the layers, pooling, weights and precision of the options it was loaded
    with); :meth:`run` optimizes one picture, :meth:`run_many` several."""

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        opts = options
        self.device = resolve_device(opts.device)
        self.dtype = resolve_precision(opts.precision, self.device)
        self.layers = list(dict.fromkeys([*opts.content_layers, *opts.style_layers]))
        from ...core.vgg_layers import check_layers

        check_layers(self.layers)
        weights = load_weights(opts.weights, opts.weights_normalization)
        net = VGGFeatures(weights, self.layers, opts.pooling).to(self.device)
        if self.device.type == "cpu":
            net = net.to(memory_format=torch.channels_last)
        if self.dtype is not None:
            # Weights stored in the autocast dtype: autocast then stops re-casting them on every pass (7-13 % a step).
            # The input normalization stays fp32.
            net.net.to(self.dtype)
        self.net = net

    def run(
        self,
        content: ImageLike,
        styles: Sequence[ImageLike],
        options: Options | None = None,
        *,
        callback: Callback | None = None,
        progress: bool = False,
        guide: tuple[torch.Tensor, torch.Tensor, float] | None = None,
    ) -> Result:
        """Stylize `content` with one or more `styles`; see :class:`Options`.

        `callback(Progress)` is called after every step (steps counted across scales) with the current image,
        detached, at the current scale; raising from it stops the run. Ctrl-C (KeyboardInterrupt) stops the run and
        returns the last iterate, resized to the final size, with ``stopped="interrupted"``.

        `guide` = (target, mask, weight), video's temporal guide (Ruder et al. 2016): the previous frame's result
        warped into this one, (1, 3, H, W) at the final size, and where it is reliable, (1, 1, H, W) in [0, 1]. The
        run starts from the target where it is reliable (the photo elsewhere) and every scale adds `weight` x the
        masked pixel error to it.
        """
        styles = list(styles)
        opts = self.resolve(options, len(styles))
        device, dtype = self.device, self.dtype
        memory = resolve_max_memory(opts.max_memory, device)
        seed = opts.seed if opts.seed is not None else int.from_bytes(os.urandom(8), "little") >> 1
        generator = torch.Generator().manual_seed(seed)

        min_side = min_input_side(self.layers)
        content_pil = as_pil(content)
        style_pils = [as_pil(s) for s in styles]
        # The final size's memory need, from the pictures' sizes alone, before any picture of that size is made.
        need, (fh, fw) = self.minimum_memory(content_pil, style_pils, opts, min_side)
        # Only a budget the user set is a promise to keep; the default one (a share of this machine's memory) is a
        # guess, and on a small machine the smallest tiles run over it, as they always did.
        if opts.max_memory is not None and need > memory:
            raise ImpastoError(
                f"a {fw}x{fh} px result needs at least {format_size(need)} even tile by tile (the picture, its "
                f"statistics and the optimizer's state), above the memory budget of {format_size(memory)}; "
                "lower --size or raise --max-memory"
            )
        # At the final size: checks every style's size up front, not after the coarse scales have run.
        final = prepare_images(content_pil, style_pils, opts.size, opts.style_scale, opts.max_size, min_side)[0]
        sizes = plan_scales(max(final.shape[-2:]), opts, min(final.shape[-2:]), min_side)
        budgets = plan_steps(len(sizes), opts)
        _region_masks(opts, final.shape[-2:], len(styles))  # unreadable or misshapen masks fail before any work

        total_steps = sum(budgets)
        bar = tqdm(
            total=total_steps, disable=True if not progress else None, unit="step", dynamic_ncols=True, leave=False
        )
        history: list[float] = []
        last: dict = {}
        stopped, x, done = "budget", None, 0
        tiles: list[int] = []
        h0: float | None = None  # L-BFGS curvature scale carried from one scale to the next
        prev_pixels = 1
        try:
            for size, budget in zip(sizes, budgets):
                content_t, style_ts = prepare_images(
                    content_pil, style_pils, size, opts.style_scale, opts.max_size, min_side
                )
                content_t, style_ts = color_inputs(content_t, style_ts, opts.preserve_color)
                g_target = g_mask = None
                if guide is not None:
                    g_target = resize_image(guide[0].float(), content_t.shape[-2:]).clamp(0, 1)
                    g_mask = resize_image(guide[1].float(), content_t.shape[-2:]).clamp(0, 1)
                if x is None:
                    start = _initial_image(opts.init, content_t, generator)
                    if g_target is not None:  # Ruder et al.'s warped initialization
                        start = g_mask * g_target + (1 - g_mask) * start
                else:
                    start = upsample(x, content_t, opts.upsample)
                masks = _region_masks(opts, content_t.shape[-2:], len(style_ts))
                # Above the memory budget, the same loss is evaluated tile by tile (see impasto.losses.tiled).
                plan = plan_scale(content_t.shape[-2:], [s.shape[-2:] for s in style_ts], budget, opts, dtype, memory)
                loss = self.loss(opts).set_targets(
                    content_t.to(device),
                    [s.to(device) for s in style_ts],
                    opts.style_weights,
                    None if masks is None else [m.to(device) for m in masks],
                    plan.tiles,
                )
                if g_target is not None:
                    loss.set_pixel_target(g_target.to(device), g_mask.to(device), guide[2])
                tiles.append(plan.count)
                if h0 is not None:
                    # The losses are means over positions, so curvature falls as 1 / pixels: rescale the carried h0.
                    h0 *= content_t.shape[-2] * content_t.shape[-1] / prev_pixels
                step_callback = _reporter(callback, total_steps, done)
                x, steps, stopped, h0 = _optimize(
                    loss, start.to(device), budget, opts, history, last, bar, step_callback, plan.history, h0
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

    def minimum_memory(
        self,
        content: ImageLike,
        styles: Sequence[ImageLike],
        options: Options | None = None,
        min_side: int | None = None,
    ) -> tuple[int, tuple[int, int]]:
        """(bytes, (height, width)): the least memory the final scale can run in, with the smallest tiles and the
        shortest L-BFGS history (:func:`.plan.plan_scale` with no budget), computed from the pictures' sizes only.

        A --max-memory of exactly this forces the smallest tiles; below it a run is refused up front.
        """
        opts = options or self.options
        min_side = min_input_side(self.layers) if min_side is None else min_side
        # Sizes only: pictures already decoded are not copied (as_pil would convert a copy of each).
        size_of = lambda x: x.size if isinstance(x, Image.Image) else as_pil(x).size  # noqa: E731
        content_size = size_of(content)
        w, h = content_size if opts.size is None else longest_side_size(content_size, opts.size)
        if opts.size is None and max(w, h) > opts.max_size:
            raise ImpastoError(f"the content image is {w}x{h}, above the cap of {opts.max_size} px; set a size")
        if min(w, h) < min_side:
            raise ImpastoError(
                f"the content image is too small: {w}x{h} px at this --size; its shorter side must be at least "
                f"{min_side} px for the layers used"
            )
        area = w * h * opts.style_scale**2
        style_shapes = [area_size(size_of(s), area, min_side)[::-1] for s in styles]
        sizes = plan_scales(max(w, h), opts, min(w, h), min_side)
        steps = plan_steps(len(sizes), opts)[-1]
        return plan_scale((h, w), style_shapes, steps, opts, self.dtype, 0).estimate, (h, w)

    def loss(self, opts: Options) -> PerceptualLoss:
        """The objective of a run with `opts`, before its targets are set."""
        return perceptual_loss(self.net, opts, self.dtype)


def perceptual_loss(net: VGGFeatures, opts: Options, dtype: torch.dtype | None = None) -> PerceptualLoss:
    """The Gatys objective for `opts` over `net`'s features (targets not set yet)."""
    return PerceptualLoss(
        net,
        content_layers=opts.content_layers,
        style_layers=opts.style_layers,
        content_layer_weights=opts.content_layer_weights,
        style_layer_weights=opts.style_layer_weights,
        style_loss=opts.style_loss,
        content_weight=opts.content_weight,
        style_weight=opts.style_weight,
        tv_weight=opts.tv_weight,
        dtype=dtype,
    )


def run(
    content: ImageLike,
    styles: Sequence[ImageLike],
    options: Options | None = None,
    *,
    callback: Callback | None = None,
    progress: bool = False,
) -> Result:
    """One picture with a freshly loaded engine (for many pictures, load the engine once: ``impasto.load``)."""
    opts = options or Options()
    styles = list(styles)
    opts.validate(len(styles))
    return GatysEngine(opts).run(content, styles, opts, callback=callback, progress=progress)


def _reporter(callback: Callback | None, total: int, offset: int):
    if callback is None:
        return None

    def report(step: int, image: torch.Tensor, losses: dict) -> None:
        callback(Progress(step=offset + step, total=total, image=image, losses=losses))

    return report


def _optimize(
    loss: PerceptualLoss,
    start: torch.Tensor,
    budget: int,
    opts: Options,
    history: list[float],
    last: dict,
    bar,
    report,
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
    scale = [2.0**16 if loss.dtype == torch.float16 else 1.0]

    def closure() -> torch.Tensor:
        while True:
            x.grad = None
            total, terms = loss.backward(x, scale[0])
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
            if report is not None:
                report(step, x.detach(), dict(last))
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
