"""Planning a scale of a Gatys run within a memory budget: the whole image, a shorter L-BFGS history, or tiles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from ...core.vgg_layers import CONV_SHAPES, alignment, conv_of, layer_stride, receptive_margin
from ...losses.tiled import (
    DEFAULT_HISTORY,
    FIXED_BYTES,
    MIN_CORE,
    MIN_HISTORY,
    WHOLE_HISTORY,
    Tile,
    cuts,
    evaluation_bytes,
    split_tiles,
    state_bytes,
)
from . import Options


@dataclass
class ScalePlan:
    """How one scale runs: whole (no tiles) or tiled, the L-BFGS history, and the estimated peak memory."""

    tiles: list[Tile] = field(default_factory=list)  # empty: the whole image at once
    history: int = DEFAULT_HISTORY
    estimate: int = 0  # bytes

    @property
    def count(self) -> int:
        return max(1, len(self.tiles))


def plan_scale(
    shape: Sequence[int],
    style_shapes: Sequence[Sequence[int]],
    steps: int,
    opts: Options,
    dtype: torch.dtype | None,
    budget: int,
) -> ScalePlan:
    """Whole image if the estimate fits `budget`, also with an L-BFGS history shrunk to WHOLE_HISTORY pairs; else
    the fewest tiles that fit, the history taking at most half of what the image-sized state leaves. Below what the
    smallest tiles need, the smallest tiles (MIN_CORE px cores) and MIN_HISTORY are used, over the budget: with a
    budget of 0 the estimate is the least memory the scale can run in (the engine refuses sizes above the budget)."""
    h, w = shape
    layers = list(dict.fromkeys([*opts.content_layers, *opts.style_layers]))
    n_masks = 0
    if getattr(opts, "masks", None) is not None or getattr(opts, "content_mask", None) is not None:
        n_masks = len(style_shapes) + 1
    styles_px = sum(s[0] * s[1] for s in style_shapes) / (h * w)
    # Content targets (fp32, every content layer) and masks (fp32 at full size and at each style layer).
    targets = sum(CONV_SHAPES[conv_of(n)][0] * 4 / layer_stride(n) ** 2 for n in opts.content_layers)
    extra = targets + 24 * styles_px + 10 * n_masks
    history = min(DEFAULT_HISTORY, steps) if opts.optimizer == "lbfgs" else 0
    style_eval = max((evaluation_bytes(*s, layers, dtype, grad=False) for s in style_shapes), default=0)
    whole = (
        FIXED_BYTES
        + state_bytes(h, w, history, opts.optimizer, extra)
        + max(evaluation_bytes(h, w, layers, dtype), style_eval)
    )
    if whole <= budget:
        return ScalePlan(history=DEFAULT_HISTORY, estimate=whole)

    margin, align = receptive_margin(layers), alignment(layers)
    free = budget - FIXED_BYTES - state_bytes(h, w, 0, opts.optimizer, extra)
    passes = max(evaluation_bytes(h, w, layers, dtype), style_eval)
    if opts.optimizer == "lbfgs":
        pair = 2 * 12 * h * w
        fits = int((free - passes) // pair)
        if fits >= min(history, WHOLE_HISTORY):
            # The passes fit with a shorter history: cheaper than tiles, which cost 1.3-2x the time per step.
            history = min(history, fits)
            return ScalePlan(
                history=history, estimate=FIXED_BYTES + state_bytes(h, w, history, "lbfgs", extra) + passes
            )
        history = max(MIN_HISTORY, min(history, int(free / 2 // pair)))
    base = FIXED_BYTES + state_bytes(h, w, history, opts.optimizer, extra)
    free = budget - base

    # The largest window of a grid decides its memory: the largest core plus its margins.
    def largest_window(n: int, parts: int) -> int:
        edges = cuts(n, parts, align)
        return min(n, max(b - a for a, b in zip(edges, edges[1:])) + 2 * margin)

    # The most tiles there can be (MIN_CORE px cores): the least memory. When even they do not fit, they are the
    # plan, found without weighing every grid (a 100,000 px picture has over a million).
    rows, cols = max(1, h // MIN_CORE), max(1, w // MIN_CORE)
    need = evaluation_bytes(largest_window(h, rows), largest_window(w, cols), layers, dtype)
    if need <= free:
        heights = {r: largest_window(h, r) for r in range(1, rows + 1)}
        widths = {c: largest_window(w, c) for c in range(1, cols + 1)}
        grids = sorted(
            (r * c, evaluation_bytes(heights[r], widths[c], layers, dtype), r, c) for r in heights for c in widths
        )
        # The fewest tiles that fit.
        _, need, rows, cols = next(g for g in grids if g[1] <= free)
    tiles = split_tiles(h, w, rows, cols, margin, align)
    if len(tiles) == 1 and style_eval <= evaluation_bytes(h, w, layers, dtype):
        # Too small an image to split, and not a style image too big to take whole: the plain objective.
        return ScalePlan(history=history, estimate=base + passes)
    return ScalePlan(tiles=tiles, history=history, estimate=base + need)
