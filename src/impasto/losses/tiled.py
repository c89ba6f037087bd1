"""Tiles: geometry, the memory model that decides them, and the additive statistics that make tiling exact.

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
:class:`impasto.losses.perceptual.PerceptualLoss` runs these passes; this module holds the pieces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..core.memory import MiB
from ..core.vgg_layers import CONV_SHAPES, LAYER_NAMES
from .stats import transposed_product

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


def activation_counts(h: int, w: int, layers: Sequence[str]) -> tuple[float, float]:
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
    with_grad, no_grad = activation_counts(h, w, layers)
    return int(EVAL_FACTOR * (with_grad if grad else no_grad) * size)


def state_bytes(h: int, w: int, history: int, optimizer: str, extra_per_pixel: float = 0.0) -> int:
    """Image-sized memory of a scale: STATE_VECTORS fp32 RGB vectors, the optimizer's state, any extras."""
    vector = 12 * h * w
    optimizer_vectors = 2 * history if optimizer == "lbfgs" else 2
    return int((STATE_VECTORS + optimizer_vectors) * vector + extra_per_pixel * h * w)


@dataclass(frozen=True)
class Tile:
    """A tile's core (its own pixels; the cores partition the image) and window (core plus margin), in pixels,
    each as (top, bottom, left, right), bottom and right exclusive."""

    core: tuple[int, int, int, int]
    window: tuple[int, int, int, int]


def cuts(length: int, parts: int, align: int) -> list[int]:
    inner = {round(i * length / parts / align) * align for i in range(1, parts)}
    return [0, *sorted(c for c in inner if 0 < c < length), length]


def split_tiles(h: int, w: int, rows: int, cols: int, margin: int, align: int = 16) -> list[Tile]:
    """A rows x cols grid of cores cut on multiples of `align`, each with `margin` px of context (clipped)."""
    ys, xs = cuts(h, rows, align), cuts(w, cols, align)
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


def core_slices(t: Tile, stride: int, layer_shape: Sequence[int]) -> tuple[slice, slice, slice, slice]:
    """(rows, cols) of the tile's core in the whole layer's grid, and the same inside the window's feature map."""
    top, bottom, left, right = t.core
    wtop, _, wleft, _ = t.window
    r0, r1 = top // stride, min(bottom // stride, layer_shape[0])
    c0, c1 = left // stride, min(right // stride, layer_shape[1])
    ro, co = wtop // stride, wleft // stride
    return slice(r0, r1), slice(c0, c1), slice(r0 - ro, r1 - ro), slice(c0 - co, c1 - co)


def tile_sums(kind: str, f: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
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


def statistic_from_sums(kind: str, sums: Sequence[torch.Tensor], count: float) -> tuple[torch.Tensor, ...]:
    """Gram matrix, or (mean, covariance), from summed statistics over `count` (weighted) positions."""
    if kind == "gram":
        return ((sums[0] / count).float(),)
    mean = sums[0] / count
    cov = sums[1] / count - torch.outer(mean, mean)
    return mean.float(), cov.float()


def accumulate(store: dict, key, parts: Sequence[torch.Tensor]) -> None:
    """Add statistics into `store[key]` in float64 (mean-cov subtracts large numbers later)."""
    parts = [p.double() for p in parts]
    if key in store:
        store[key] = [a + b for a, b in zip(store[key], parts)]
    else:
        store[key] = parts
