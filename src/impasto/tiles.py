"""Print sizes: a memory budget, and scales too big for it evaluated tile by tile with exact shared statistics.

The optimizer (L-BFGS) still works on the whole image; only the objective's evaluation is split into tiles. Each
tile is a core (the tiles' cores partition the image, cut on the VGG stride) plus a margin of context equal to the
receptive-field radius of the deepest layer in use (80 px for relu5_1). With that margin, every feature position in
a core sees exactly the pixels it sees in the whole image, so:

- pass 1 (no grad) sums each style layer's statistics (Gram sums, or the sums of f and f f^T for mean-cov) over
  every tile's core positions: the sum over tiles *is* the whole image's statistic;
- the style loss and its gradient R with respect to those sums follow from the totals (a C x C matrix per layer);
- pass 2 (with grad) recomputes each tile's features and backpropagates the surrogate sum(S_tile * R) plus the
  tile's share of the content loss (local: per-position error against the content image's features, themselves
  computed tile by tile); each tile's whole window gradient is added into the image's gradient, since a core's
  features depend on the pixels of its margin too.

The loss and the gradient therefore equal the whole image's up to floating-point rounding: the tiles agree by
construction, with no blending needed and nothing to leave a seam. Total variation is computed on the whole image.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ImpastoError
from .losses import GramStyleLoss, MeanCovStyleLoss, TVLoss, blend_grams, transposed_product
from .vgg import LAYER_NAMES, VGGFeatures
from .weights import CONV_SHAPES

if TYPE_CHECKING:  # gatys imports this module; the Options type is only for annotations
    from .gatys import Options

GiB = 1 << 30
MiB = 1 << 20
_UNITS = {"": 1, "k": 1 << 10, "m": MiB, "g": GiB, "t": 1 << 40}

# Memory model, calibrated on the project's machine (2-core Xeon with AMX, torch 2.13 CPU, default layers up to
# relu5_1: 610 activation values per pixel) from peak RSS (ru_maxrss):
# - one whole-image forward+backward, above the 341 MB of torch plus the VGG weights: 512x384 +438 MB (bf16),
#   +584 MB (fp32); 1024x768 +1154 MB (bf16), +1930 MB (fp32). That is 1273 B/px in bf16 (1.04 x the activations'
#   2 bytes each) and 2393 B/px in fp32 (0.98 x 4 bytes), plus 114-188 MB (autocast's weight copies, oneDNN
#   scratch). A tiled evaluation costs the same per window pixel: 1307 B/px (bf16) and 2530 B/px (fp32), fitted
#   over 1x2, 2x2 and 1x7 grids of a 1024x768 image. EVAL_FACTOR is 1.25: those ratios (1.04-1.07 in bf16,
#   0.98-1.04 in fp32) times a safety factor of about 1.2.
# - the command line's own runtime (imports, decoded inputs, a 64 px run): 481 MB peak; with the intercept above,
#   FIXED_BYTES = 768 MiB.
# - the optimizer's side at 2048x1536 (L-BFGS with 5 pairs, the tiled gradient, total variation): 16.2 image-sized
#   fp32 vectors above the images already held, i.e. 6.2 besides the history; STATE_VECTORS adds the content image,
#   the start, the final-size image and resizing temporaries, with some room.
# - end to end (`impasto stylize`, Tübingen 1024x768, --scales 1, 3 steps, bf16): whole image 1.68 GiB measured
#   against 2.07 GiB estimated (55 s); with --max-memory 1500M, 4 tiles and 5 L-BFGS pairs: 1173 MiB measured
#   against 1473 MiB estimated (77 s), with the same losses to 4 digits.
FIXED_BYTES = 768 * MiB
EVAL_FACTOR = 1.25
STATE_VECTORS = 12
DEFAULT_HISTORY = 100  # L-BFGS curvature pairs kept when memory allows
MIN_HISTORY = 5  # fewer makes L-BFGS little better than gradient descent
WHOLE_HISTORY = 20  # rather than tile a scale, its history may shrink down to this many pairs
MIN_CORE = 64  # smallest tile core side (px); smaller cores would be mostly margin


def parse_size(value: int | float | str) -> int:
    """Bytes from a number of bytes or a size like "6G", "6GB", "6GiB", "800M", "1.5g" (binary units)."""
    problem = (
        f"--max-memory: expected a size in bytes or with a unit K, M, G or T (6G, 6GB, 800M), got {value!r}"
    )
    if isinstance(value, bool):
        raise ImpastoError(problem)
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?\s*", str(value), re.IGNORECASE)
        if m is None or (m.group(3) and m.group(3).lower() == "ib" and not m.group(2)):
            raise ImpastoError(problem)
        number, unit = float(m.group(1)), m.group(2).lower()
    size = number * _UNITS[unit] if math.isfinite(number) else -1
    if not size >= 1:
        raise ImpastoError(f"--max-memory must be a positive size, got {value!r}")
    return int(size)


def physical_memory() -> int:
    """Bytes of RAM this process may use: the machine's, or a smaller cgroup (container) limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def default_max_memory(device: torch.device | None = None) -> int:
    """min(8 GiB, 60 % of RAM) on the CPU (leaves room for everything else); 60 % of the GPU's memory on CUDA."""
    if device is not None and device.type == "cuda":
        return int(0.6 * torch.cuda.get_device_properties(device).total_memory)
    return min(8 * GiB, int(0.6 * physical_memory()))


def resolve_max_memory(value: int | float | str | None, device: torch.device | None = None) -> int:
    """--max-memory in bytes: the value given (bytes or "6G"-style text), else the device's default budget."""
    return default_max_memory(device) if value is None else parse_size(value)


def format_size(n: int) -> str:
    """Bytes as "1.5 GiB" or "300 MiB", for messages and docs."""
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / MiB:.0f} MiB"


# ---------------------------------------------------------------------------------------------------------------
# Geometry of the network


def layer_stride(name: str) -> int:
    """Pixels per position of a layer: 2 to the number of pooling layers up to and including it."""
    return 2 ** sum(1 for n in LAYER_NAMES[: LAYER_NAMES.index(name) + 1] if n.startswith("pool"))


def receptive_margin(layers: Sequence[str]) -> int:
    """Context (px) a tile needs on each side so its core's features at `layers` equal the whole image's.

    The receptive field of the deepest layer's position m spans pixels [s*m - left, s*m + right]; the margin is
    the larger overhang, rounded up to the stride s so that tiles cut on the same grid at every layer.
    """
    last = max(LAYER_NAMES.index(n) for n in layers)
    s, left, right = 1, 0, 0
    for name in LAYER_NAMES[: last + 1]:
        if name.startswith("conv"):  # 3x3, padding 1: one more position each side
            left += s
            right += s
        elif name.startswith("pool"):  # 2x2, stride 2: output j covers inputs 2j and 2j+1
            right += s
            s *= 2
    need = max(left, right - s + 1)
    return -(-need // s) * s


def _alignment(layers: Sequence[str]) -> int:
    return max(layer_stride(n) for n in layers)


def _elements(h: int, w: int, layers: Sequence[str]) -> tuple[float, float]:
    """(activation values autograd keeps for a forward+backward, peak values alive in a no-grad forward)."""
    last = max(LAYER_NAMES.index(n) for n in layers)
    wanted = set(layers)
    c, hh, ww = 3, h, w
    total = kept = transient = 0.0
    for name in LAYER_NAMES[: last + 1]:
        before = c * hh * ww
        if name.startswith("conv"):
            c = CONV_SHAPES[name][0]
        elif name.startswith("pool"):
            hh, ww = hh // 2, ww // 2
        now = c * hh * ww
        total += now
        transient = max(transient, before + now)
        kept += now if name in wanted else 0
    return total, kept + transient


def evaluation_bytes(h: int, w: int, layers: Sequence[str], dtype: torch.dtype | None, grad: bool = True) -> int:
    """Estimated peak memory of one VGG pass over an h x w image (forward+backward, or a no-grad forward)."""
    size = 4 if dtype is None else torch.finfo(dtype).bits // 8
    with_grad, no_grad = _elements(h, w, layers)
    return int(EVAL_FACTOR * (with_grad if grad else no_grad) * size)


def state_bytes(h: int, w: int, history: int, optimizer: str, extra_per_pixel: float = 0.0) -> int:
    """Image-sized memory of a scale: STATE_VECTORS fp32 RGB vectors, the optimizer's state, any extras."""
    vector = 12 * h * w
    optimizer_vectors = 2 * history if optimizer == "lbfgs" else 2
    return int((STATE_VECTORS + optimizer_vectors) * vector + extra_per_pixel * h * w)


# ---------------------------------------------------------------------------------------------------------------
# Tiles and the per-scale plan


@dataclass(frozen=True)
class Tile:
    """A tile's core (its own pixels; the cores partition the image) and window (core plus margin), in pixels,
    each as (top, bottom, left, right), bottom and right exclusive."""

    core: tuple[int, int, int, int]
    window: tuple[int, int, int, int]


def _cuts(length: int, parts: int, align: int) -> list[int]:
    inner = {round(i * length / parts / align) * align for i in range(1, parts)}
    return [0, *sorted(c for c in inner if 0 < c < length), length]


def split_tiles(h: int, w: int, rows: int, cols: int, margin: int, align: int = 16) -> list[Tile]:
    """A rows x cols grid of cores cut on multiples of `align`, each with `margin` px of context (clipped)."""
    ys, xs = _cuts(h, rows, align), _cuts(w, cols, align)
    tiles = []
    for top, bottom in zip(ys, ys[1:]):
        for left, right in zip(xs, xs[1:]):
            window = (max(0, top - margin), min(h, bottom + margin), max(0, left - margin), min(w, right + margin))
            tiles.append(Tile((top, bottom, left, right), window))
    return tiles


def tiles_like(h: int, w: int, tiles: Sequence[Tile], margin: int, align: int = 16) -> list[Tile]:
    """Tiles of another image (a style image) with cores no bigger than those of `tiles`."""
    core_h = max(t.core[1] - t.core[0] for t in tiles)
    core_w = max(t.core[3] - t.core[2] for t in tiles)
    return split_tiles(h, w, -(-h // core_h), -(-w // core_w), margin, align)


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
    opts: "Options",
    dtype: torch.dtype | None,
    budget: int,
) -> ScalePlan:
    """Whole image if the estimate fits `budget`, also with an L-BFGS history shrunk to WHOLE_HISTORY pairs; else
    the fewest tiles that fit, the history taking at most half of what the image-sized state leaves. Below what the
    smallest tiles need, the smallest tiles (MIN_CORE px cores) and MIN_HISTORY are used, over the budget."""
    h, w = shape
    layers = list(dict.fromkeys([*opts.content_layers, *opts.style_layers]))
    n_masks = 0
    if getattr(opts, "masks", None) is not None or getattr(opts, "content_mask", None) is not None:
        n_masks = len(style_shapes) + 1
    styles_px = sum(s[0] * s[1] for s in style_shapes) / (h * w)
    # Content targets (fp32, every content layer) and masks (fp32 at full size and at each style layer).
    targets = sum(CONV_SHAPES[_conv_of(n)][0] * 4 / layer_stride(n) ** 2 for n in opts.content_layers)
    extra = targets + 24 * styles_px + 10 * n_masks
    history = min(DEFAULT_HISTORY, steps) if opts.optimizer == "lbfgs" else 0
    style_eval = max((evaluation_bytes(*s, layers, dtype, grad=False) for s in style_shapes), default=0)
    whole = FIXED_BYTES + state_bytes(h, w, history, opts.optimizer, extra) + max(
        evaluation_bytes(h, w, layers, dtype), style_eval
    )
    if whole <= budget:
        return ScalePlan(history=DEFAULT_HISTORY, estimate=whole)

    margin, align = receptive_margin(layers), _alignment(layers)
    free = budget - FIXED_BYTES - state_bytes(h, w, 0, opts.optimizer, extra)
    passes = max(evaluation_bytes(h, w, layers, dtype), style_eval)
    if opts.optimizer == "lbfgs":
        pair = 2 * 12 * h * w
        fits = int((free - passes) // pair)
        if fits >= min(history, WHOLE_HISTORY):
            # The passes fit with a shorter history: cheaper than tiles, which cost 1.3-2x the time per step.
            history = min(history, fits)
            return ScalePlan(history=history, estimate=FIXED_BYTES + state_bytes(h, w, history, "lbfgs", extra) + passes)
        history = max(MIN_HISTORY, min(history, int(free / 2 // pair)))
    base = FIXED_BYTES + state_bytes(h, w, history, opts.optimizer, extra)
    free = budget - base
    # The largest window of a grid decides its memory: the largest core plus its margins.
    def largest_window(n: int, parts: int) -> int:
        cuts = _cuts(n, parts, align)
        return min(n, max(b - a for a, b in zip(cuts, cuts[1:])) + 2 * margin)

    heights = {r: largest_window(h, r) for r in range(1, max(1, h // MIN_CORE) + 1)}
    widths = {c: largest_window(w, c) for c in range(1, max(1, w // MIN_CORE) + 1)}
    grids = sorted((r * c, evaluation_bytes(heights[r], widths[c], layers, dtype), r, c) for r in heights for c in widths)
    fitting = [g for g in grids if g[1] <= free]
    # The fewest tiles that fit, or else the most there can be.
    _, need, rows, cols = fitting[0] if fitting else max(grids)
    tiles = split_tiles(h, w, rows, cols, margin, align)
    if len(tiles) == 1 and style_eval <= evaluation_bytes(h, w, layers, dtype):
        # Too small an image to split, and not a style image too big to take whole: the plain objective.
        return ScalePlan(history=history, estimate=base + passes)
    return ScalePlan(tiles=tiles, history=history, estimate=base + need)


def _conv_of(layer: str) -> str:
    """The convolution whose channels a layer has (pool1 -> conv1_2)."""
    index = LAYER_NAMES.index(layer)
    return next(n for n in reversed(LAYER_NAMES[: index + 1]) if n.startswith("conv"))


# ---------------------------------------------------------------------------------------------------------------
# The tiled objective


def _core(t: Tile, stride: int, layer_shape: Sequence[int]) -> tuple[slice, slice, slice, slice]:
    """(rows, cols) of the tile's core in the whole layer's grid, and the same inside the window's feature map."""
    top, bottom, left, right = t.core
    wtop, _, wleft, _ = t.window
    r0, r1 = top // stride, min(bottom // stride, layer_shape[0])
    c0, c1 = left // stride, min(right // stride, layer_shape[1])
    ro, co = wtop // stride, wleft // stride
    return slice(r0, r1), slice(c0, c1), slice(r0 - ro, r1 - ro), slice(c0 - co, c1 - co)


def _sums(kind: str, f: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """Additive statistics of (1, C, h, w) features over their positions, weighted by a (1, 1, h, w) mask.

    gram: (sum f f^T,); mean-cov: (sum f, sum f f^T). The unmasked Gram product runs in the features' precision,
    accumulated in fp32, like losses.gram_matrix.
    """
    c = f.shape[1]
    rows = f.permute(0, 2, 3, 1).reshape(-1, c)
    if rows.dtype == torch.float16:
        rows = rows.float()  # fp16 would overflow, as in losses.gram_matrix
    if kind == "gram" and mask is None:
        return (transposed_product(rows).float(),)
    rows = rows.float()
    if mask is None:
        return (transposed_product(rows),) if kind == "gram" else (rows.sum(0), transposed_product(rows))
    weights = mask.float().reshape(-1, 1)
    product = transposed_product(rows * weights.sqrt())  # rows^T diag(m) rows, as in losses.gram_matrix
    return (product,) if kind == "gram" else ((rows * weights).sum(0), product)


def _statistic(kind: str, sums: Sequence[torch.Tensor], count: float) -> tuple[torch.Tensor, ...]:
    """Gram matrix, or (mean, covariance), from summed statistics over `count` (weighted) positions."""
    if kind == "gram":
        return ((sums[0] / count).float(),)
    mean = sums[0] / count
    cov = sums[1] / count - torch.outer(mean, mean)
    return mean.float(), cov.float()


class TiledObjective(nn.Module):
    """Same interface and value as gatys' whole-image objective, evaluated tile by tile (see the module's notes).

    ``forward(x)`` returns ``(total, terms)``; ``total.backward()`` puts the exact gradient into ``x.grad``.
    """

    def __init__(
        self,
        net: VGGFeatures,
        content: torch.Tensor,
        styles: list[torch.Tensor],
        opts: "Options",
        dtype: torch.dtype | None,
        masks: list[torch.Tensor] | None,
        tiles: Sequence[Tile],
    ) -> None:
        super().__init__()
        layers = list(dict.fromkeys([*opts.content_layers, *opts.style_layers]))
        self.net, self.dtype, self.kind = net, dtype, opts.style_loss
        self.tiles = list(tiles)
        self.loss_scale = 1.0
        margin, align = receptive_margin(layers), _alignment(layers)
        h, w = content.shape[-2:]
        self.strides = {n: layer_stride(n) for n in layers}
        self.layer_shapes = {n: (h // s, w // s) for n, s in self.strides.items()}
        self.content_w = dict(zip(opts.content_layers, _normalized(opts.content_layer_weights, len(opts.content_layers))))
        self.style_w = dict(zip(opts.style_layers, _normalized(opts.style_layer_weights, len(opts.style_layers))))
        self.weights = (opts.content_weight, opts.style_weight, opts.tv_weight)
        self.tv = TVLoss()

        # Content targets: every content layer's features of the whole content image, assembled from tile cores.
        self.targets: dict[str, torch.Tensor] = {}
        for t in self.tiles:
            for n, (rows, cols, core) in self._tile_content(content, t, opts.content_layers).items():
                if n not in self.targets:
                    self.targets[n] = core.new_zeros((1, core.shape[1], *self.layer_shapes[n]))
                self.targets[n][:, :, rows, cols] = core
        self.inv_norm = {n: 1.0 / (float(p.pow(2).mean()) + 1e-8) for n, p in self.targets.items()}

        # Style targets: each style image's statistics summed over its own tiles (no grad).
        per_style = []
        for s in styles:
            shapes = {n: (s.shape[-2] // self.strides[n], s.shape[-1] // self.strides[n]) for n in opts.style_layers}
            sums: dict = {}
            for t in tiles_like(*s.shape[-2:], self.tiles, margin, align):
                for key, part in self._tile_sums(s, t, shapes, lambda n: [(0, None)]).items():
                    _accumulate(sums, key, part)
            per_style.append(
                {n: _statistic(self.kind, sums[(n, 0)], shapes[n][0] * shapes[n][1]) for n in opts.style_layers}
            )
        # Losses per layer (and per style when masked), built exactly as the whole-image objective builds them.
        self.masks: dict[str, list[torch.Tensor]] = {}
        self.region_w: list[float] = [1.0]
        if masks is None or len(masks) == 1:  # one region (a --content-mask): the blend of all styles
            groups = [(per_style, opts.style_weights)]
        else:
            groups = [([stats], None) for stats in per_style]
            self.region_w = _normalized(opts.style_weights, len(styles))
        if masks is not None:
            for n in opts.style_layers:
                self.masks[n] = [F.adaptive_avg_pool2d(m, self.layer_shapes[n]) for m in masks]
        self.losses = nn.ModuleDict(
            {n: nn.ModuleList(_style_loss(self.kind, [g[n] for g in stats], wts) for stats, wts in groups) for n in opts.style_layers}
        )

    def features(self, x: torch.Tensor, grad: bool) -> dict[str, torch.Tensor]:
        """VGG features under autocast, as in gatys' objective."""
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.set_grad_enabled(grad), torch.autocast(
            x.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None
        ):
            return self.net(x)

    # One tile at a time, each in its own method so that its activations are freed before the next tile's pass.

    @staticmethod
    def _window(image: torch.Tensor, t: Tile) -> torch.Tensor:
        top, bottom, left, right = t.window
        return image.detach()[:, :, top:bottom, left:right]

    def _tile_content(self, image: torch.Tensor, t: Tile, layers: Sequence[str]) -> dict:
        """layer -> (rows, cols of the core in the whole layer, the core's features in fp32)."""
        feats = self.features(self._window(image, t), grad=False)
        out = {}
        for n in layers:
            rows, cols, lrows, lcols = _core(t, self.strides[n], self.layer_shapes[n])
            out[n] = (rows, cols, feats[n][:, :, lrows, lcols].float())
        return out

    def _tile_sums(self, image: torch.Tensor, t: Tile, shapes: dict, regions) -> dict:
        """(layer, region) -> the statistics' sums over the tile's core (no grad)."""
        feats = self.features(self._window(image, t), grad=False)
        out = {}
        for n in shapes:
            rows, cols, lrows, lcols = _core(t, self.strides[n], shapes[n])
            f = feats[n][:, :, lrows, lcols]
            for i, m in regions(n):
                out[(n, i)] = _sums(self.kind, f, None if m is None else m[:, :, rows, cols])
        return out

    def _tile_gradient(self, x: torch.Tensor, t: Tile, slopes: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The gradient over the tile's window of its share of the loss, and its share of the content loss."""
        cw, sw, _ = self.weights
        window = self._window(x, t).clone().requires_grad_(True)
        feats = self.features(window, grad=True)
        surrogate = window.new_zeros((), dtype=torch.float32)
        for n in self.losses:
            rows, cols, lrows, lcols = _core(t, self.strides[n], self.layer_shapes[n])
            f = feats[n][:, :, lrows, lcols]
            for i, _, m, _ in self._regions(n):
                part = _sums(self.kind, f, None if m is None else m[:, :, rows, cols])
                surrogate = surrogate + sum((p * r).sum() for p, r in zip(part, slopes[(n, i)]))
        share = window.new_zeros((), dtype=torch.float32)
        for n, target in self.targets.items():
            rows, cols, lrows, lcols = _core(t, self.strides[n], self.layer_shapes[n])
            diff = feats[n][:, :, lrows, lcols].float() - target[:, :, rows, cols]
            share = share + self.content_w[n] * diff.pow(2).sum() * (self.inv_norm[n] / target.numel())
        ((cw * share + sw * surrogate) * self.loss_scale).backward()  # loss_scale: fp16 (see gatys._optimize)
        return window.grad / self.loss_scale, share.detach()

    def _regions(self, layer: str):
        """(index, weight, mask at the layer's resolution or None, weighted count of positions) per style region."""
        shape = self.layer_shapes[layer]
        if not self.masks:
            yield 0, 1.0, None, float(shape[0] * shape[1])
            return
        for i, (w, m) in enumerate(zip(self.region_w, self.masks[layer])):
            total = float(m.sum())
            if total > 1e-3:  # a style whose region vanished at this resolution adds nothing, as in the whole objective
                yield i, w, m, total + 1e-8

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """(total, terms) as gatys._Objective returns them; total's gradient is the tiles' gradient, computed here."""
        cw, sw, tw = self.weights
        # Pass 1: the image's style statistics, summed over the tiles' cores.
        sums: dict = {}
        regions = lambda n: [(i, m) for i, _, m, _ in self._regions(n)]  # noqa: E731
        for t in self.tiles:
            for key, part in self._tile_sums(x, t, {n: self.layer_shapes[n] for n in self.losses}, regions).items():
                _accumulate(sums, key, part)
        # The style loss from the totals, and its gradient with respect to each sum (weights folded in).
        style = x.new_zeros((), dtype=torch.float32)
        slopes: dict[tuple[str, int], list[torch.Tensor]] = {}
        with torch.enable_grad():
            for n in self.losses:
                for i, w, _, count in self._regions(n):
                    leaves = [s.detach().requires_grad_(True) for s in sums[(n, i)]]
                    value = self.losses[n][i].distance(*_statistic(self.kind, leaves, count))
                    grads = torch.autograd.grad(value, leaves)
                    scale = self.style_w[n] * w
                    slopes[(n, i)] = [(g * scale).float() for g in grads]
                    style = style + scale * value.detach()
        # Pass 2: each tile's share of the gradient, over its whole window (a core's features see its margin).
        grad = torch.zeros_like(x, dtype=torch.float32)
        content = x.new_zeros((), dtype=torch.float32)
        for t in self.tiles:
            window_grad, share = self._tile_gradient(x, t, slopes)
            top, bottom, left, right = t.window
            grad[:, :, top:bottom, left:right] += window_grad
            content = content + share
            del window_grad
        tv = self.tv(x)
        # A scalar whose value is the exact loss and whose gradient is the tiles' gradient plus total variation's.
        dot = (x * grad).sum()
        total = dot - dot.detach() + (cw * content + sw * style) + tw * tv
        terms = {"content": float(content), "style": float(style), "tv": float(tv.detach()), "total": float(total.detach())}
        return total, terms


def _accumulate(store: dict, key, parts: Sequence[torch.Tensor]) -> None:
    """Add statistics into `store[key]` in float64 (mean-cov subtracts large numbers later)."""
    parts = [p.double() for p in parts]
    if key in store:
        store[key] = [a + b for a, b in zip(store[key], parts)]
    else:
        store[key] = parts


def _style_loss(kind: str, stats: list[tuple[torch.Tensor, ...]], weights: Sequence[float] | None) -> nn.Module:
    if kind == "gram":
        return GramStyleLoss(blend_grams([s[0] for s in stats], weights))
    return MeanCovStyleLoss.from_moments(stats, weights)


def _normalized(weights: Sequence[float] | None, n: int) -> list[float]:
    w = [1.0] * n if weights is None else [float(v) for v in weights]
    s = sum(w)
    return [v / s for v in w]
