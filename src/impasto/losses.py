"""Style-transfer losses as small modules: content, Gram style and total variation.

All three are normalized so that the same weights give the same balance at any resolution and on any layer:
- content: mean squared feature difference divided by the mean square of the target features;
- style: squared Frobenius distance of Gram matrices (divided by the number of positions) relative to the
  target Gram's squared norm;
- total variation: mean squared difference of neighbouring pixels (RGB in [0, 1]), times the longest side / 512:
  edges span the same few pixels at any resolution, so the plain mean falls as 1/size; the factor undoes that.
The content and style losses are exactly the distances reported by :mod:`impasto.metrics`.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

_EPS = 1e-8


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
    return transposed_product(f.float() * m.sqrt()) / (m.sum() + _EPS)


def blend_grams(grams: Sequence[torch.Tensor], weights: Sequence[float] | None = None) -> torch.Tensor:
    """Weighted mean of Gram matrices (weights are normalized to sum to 1)."""
    if weights is None:
        weights = [1.0] * len(grams)
    total = float(sum(weights))
    return sum(g * (w / total) for g, w in zip(grams, weights))


class ContentLoss(nn.Module):
    """Relative squared error of features against a fixed target: mean((F - P)^2) / mean(P^2)."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        target = target.detach().float()
        self.register_buffer("target", target)
        self.register_buffer("inv_norm", 1.0 / (target.pow(2).mean() + _EPS))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features.float() - self.target).pow(2).mean() * self.inv_norm


class GramStyleLoss(nn.Module):
    """Relative squared Gram error: ||G(F) - G_target||^2 / ||G_target||^2."""

    def __init__(self, target_gram: torch.Tensor) -> None:
        super().__init__()
        target_gram = target_gram.detach().float()
        self.register_buffer("target", target_gram)
        self.register_buffer("inv_norm", 1.0 / (target_gram.pow(2).sum() + _EPS))

    @classmethod
    def from_features(
        cls, features: Sequence[torch.Tensor], weights: Sequence[float] | None = None
    ) -> "GramStyleLoss":
        """Target = blend of the Gram matrices of several style images' features."""
        return cls(blend_grams([gram_matrix(f) for f in features], weights))

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.distance(gram_matrix(features, mask))

    def distance(self, gram: torch.Tensor) -> torch.Tensor:
        """The loss of a given Gram matrix (tiles sum their Gram matrices before taking it)."""
        return (gram - self.target).pow(2).sum() * self.inv_norm


class TVLoss(nn.Module):
    """Total variation: mean squared difference of adjacent pixels, scaled by (longest side / reference_size)."""

    def __init__(self, reference_size: int = 512) -> None:
        super().__init__()
        self.reference_size = reference_size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        dx = image[..., :, 1:] - image[..., :, :-1]
        dy = image[..., 1:, :] - image[..., :-1, :]
        scale = max(image.shape[-2:]) / self.reference_size
        return (dx.pow(2).mean() + dy.pow(2).mean()) * scale


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
        weights = m / (m.sum() + _EPS)
    mu = weights @ f
    return mu, transposed_product((f - mu) * weights.sqrt()[:, None])


def _sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T


class MeanCovStyleLoss(nn.Module):
    """Wasserstein-2 distance between the Gaussians fitted to the features and to the style, relative to the style.

    W2^2 = |mu - mu_s|^2 + tr(C) + tr(C_s) - 2 tr((C_s^1/2 C C_s^1/2)^1/2), divided by E|x_s|^2 = tr(C_s) + |mu_s|^2.
    Several styles are blended as the moment-matched Gaussian of their mixture.
    """

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().float())
        self.register_buffer("cov_sqrt", _sqrtm_psd(cov.detach().double()).float())
        self.register_buffer("trace", torch.trace(cov).float())
        self.register_buffer("inv_norm", 1.0 / (self.trace + self.mean.pow(2).sum() + _EPS))

    @classmethod
    def from_features(
        cls, features: Sequence[torch.Tensor], weights: Sequence[float] | None = None
    ) -> "MeanCovStyleLoss":
        return cls.from_moments([mean_cov(f) for f in features], weights)

    @classmethod
    def from_moments(
        cls, stats: Sequence[tuple[torch.Tensor, torch.Tensor]], weights: Sequence[float] | None = None
    ) -> "MeanCovStyleLoss":
        """Target = the moment-matched Gaussian of the mixture of several (mean, covariance) pairs."""
        weights = [1.0] * len(stats) if weights is None else list(weights)
        total = float(sum(weights))
        mu = sum(m * (w / total) for (m, _), w in zip(stats, weights))
        second = sum((c + torch.outer(m, m)) * (w / total) for (m, c), w in zip(stats, weights))
        return cls(mu, second - torch.outer(mu, mu))

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.distance(*mean_cov(features, mask))

    def distance(self, mu: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        """The loss of a given mean and covariance (tiles sum their moments before taking it)."""
        middle = self.cov_sqrt @ cov @ self.cov_sqrt
        # Eigenvalues of a PSD matrix: clamp the tiny negative ones rounding makes, and keep sqrt's gradient finite.
        root_trace = torch.linalg.eigvalsh(middle).clamp_min(1e-8).sqrt().sum()
        w2 = (mu - self.mean).pow(2).sum() + torch.trace(cov) + self.trace - 2 * root_trace
        return w2.clamp_min(0) * self.inv_norm
