"""Feature statistics the style losses compare: Gram matrices, mean and covariance, channel mean and spread.

Every statistic is computed in fp32 from (B, C, H, W) features, optionally weighted by a (1, 1, H, W) mask in [0, 1].
"""

from __future__ import annotations

from typing import Sequence

import torch

EPS = 1e-8
MEAN_STD_EPS = 1e-5  # added to the variance before the square root (as AdaIN does)


class _TransposedProduct(torch.autograd.Function):
    """x^T x over the last two dimensions, with a one-product backward: x (G + G^T).

    Autograd's own backward of `x.mT @ x` runs two products and sums their results in different memory layouts; at
    512 px that sum alone took 12 % of a Gatys step.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        # bmm/mm take the transposed view as it is; matmul would first copy it (100 ms for relu1_1 at 512 px).
        product = torch.bmm if x.dim() == 3 else torch.mm
        with torch.autocast(x.device.type, enabled=False):  # keep the caller's precision choice
            return product(x.transpose(-1, -2), x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        grad = grad.float()
        product = torch.bmm if x.dim() == 3 else torch.mm
        return product(x, (grad + grad.transpose(-1, -2)).to(x.dtype))


def transposed_product(x: torch.Tensor) -> torch.Tensor:
    """x^T x for (B, N, C) or (N, C) positions-by-channels x: the sum of outer products over positions."""
    return _TransposedProduct.apply(x)


def gram_matrix(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrix divided by the number of positions H*W, in fp32.

    With a (1, 1, H, W) mask in [0, 1], positions are weighted by it and the sum of the mask replaces H*W.
    """
    b, c, h, w = features.shape
    # Positions-by-channels is a free view of a channels_last map, so the gradient flowing back has the conv
    # path's layout too; mixing layouts makes autograd's gradient sums several times slower.
    f = features.permute(0, 2, 3, 1).reshape(b, h * w, c)
    if f.dtype == torch.float16:
        # fp16 cannot hold the sums: Caffe VGG activations reach 1e4, so their products overflow 65504 (bf16 has
        # fp32's range and stays in its own precision, which is what makes it fast).
        f = f.float()
    if mask is None:
        return transposed_product(f).float() / (h * w)
    m = mask.float().reshape(1, h * w, 1)
    # f^T diag(m) f = (sqrt(m) f)^T (sqrt(m) f): masks are non-negative.
    return transposed_product(f.float() * m.sqrt()) / (m.sum() + EPS)


def blend_grams(grams: Sequence[torch.Tensor], weights: Sequence[float] | None = None) -> torch.Tensor:
    """Weighted mean of Gram matrices (weights are normalized to sum to 1)."""
    if weights is None:
        weights = [1.0] * len(grams)
    total = float(sum(weights))
    return sum(g * (w / total) for g, w in zip(grams, weights))


def mean_cov(features: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean (C,) and covariance (C, C) over positions, in fp32, of a (1, C, H, W) feature map.

    With a (1, 1, H, W) mask in [0, 1], the statistics are weighted by it.
    """
    _, c, h, w = features.shape
    # Positions-by-channels, a free view of a channels_last map, as in gram_matrix (mixed layouts make autograd's
    # gradient sums several times slower). No indexing of the batch: its backward would allocate an NCHW gradient.
    f = features.permute(0, 2, 3, 1).reshape(h * w, c).float()
    if mask is None:
        weights = torch.full((h * w,), 1.0 / (h * w), device=f.device)
    else:
        m = mask.float().flatten()
        weights = m / (m.sum() + EPS)
    mu = weights @ f
    return mu, transposed_product((f - mu) * weights.sqrt()[:, None])


def mean_std(features: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-wise mean and standard deviation of (B, C, H, W) features, each (B, C, 1, 1), in fp32.

    With a (B or 1, 1, H, W) mask in [0, 1], positions are weighted by it.
    """
    f = features.float()
    if mask is None:
        mean = f.mean(dim=(2, 3), keepdim=True)
        var = f.var(dim=(2, 3), keepdim=True, unbiased=False)
    else:
        m = mask.float()
        total = m.sum(dim=(2, 3), keepdim=True).clamp_min(MEAN_STD_EPS)
        mean = (f * m).sum(dim=(2, 3), keepdim=True) / total
        var = ((f - mean).pow(2) * m).sum(dim=(2, 3), keepdim=True) / total
    return mean, (var + MEAN_STD_EPS).sqrt()


def normalized_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """`n` weights scaled to sum to 1 (None: equal weights)."""
    w = [1.0] * n if weights is None else [float(v) for v in weights]
    s = sum(w)
    return [v / s for v in w]
