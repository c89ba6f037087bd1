"""Loss terms as small modules: content, style statistics (Gram, mean-covariance, mean-std) and total variation.

The content and Gram style losses are normalized so that the same weights give the same balance at any resolution
and on any layer:
- content: mean squared feature difference divided by the mean square of the target features;
- style: squared Frobenius distance of Gram matrices (divided by the number of positions) relative to the
  target Gram's squared norm;
- total variation: mean squared difference of neighbouring pixels (RGB in [0, 1]), times the longest side / 512:
  edges span the same few pixels at any resolution, so the plain mean falls as 1/size; the factor undoes that.
The content and style losses are exactly the distances reported by :mod:`impasto.metrics`. Training losses (AdaIN's)
use plain mean squared errors: ``ContentLoss(relative=False)`` and :class:`MeanStdStyleLoss`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core.color import luminance
from .stats import EPS, blend_grams, gram_matrix, mean_cov, mean_std


class ContentLoss(nn.Module):
    """Relative squared error of features against a fixed target: mean((F - P)^2) / mean(P^2).

    With ``relative=False``, the plain mean squared error mean((F - P)^2).
    """

    def __init__(self, target: torch.Tensor, relative: bool = True) -> None:
        super().__init__()
        target = target.detach().float()
        self.register_buffer("target", target)
        self.relative = relative
        norm = 1.0 / (target.pow(2).mean() + EPS) if relative else torch.ones(())
        self.register_buffer("inv_norm", norm)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.relative:
            return F.mse_loss(features.float(), self.target)
        return (features.float() - self.target).pow(2).mean() * self.inv_norm

    def per_sample(self, features: torch.Tensor) -> torch.Tensor:
        """(B,) losses of a batch whose targets match it picture by picture, each relative to its own target."""
        err = (features.float() - self.target).pow(2).flatten(1).mean(1)
        if not self.relative:
            return err
        return err / (self.target.pow(2).flatten(1).mean(1) + EPS)


class GramStyleLoss(nn.Module):
    """Relative squared Gram error: ||G(F) - G_target||^2 / ||G_target||^2."""

    def __init__(self, target_gram: torch.Tensor) -> None:
        super().__init__()
        target_gram = target_gram.detach().float()
        self.register_buffer("target", target_gram)
        self.register_buffer("inv_norm", 1.0 / (target_gram.pow(2).sum() + EPS))

    @classmethod
    def from_features(cls, features: Sequence[torch.Tensor], weights: Sequence[float] | None = None) -> "GramStyleLoss":
        """Target = blend of the Gram matrices of several style images' features."""
        return cls(blend_grams([gram_matrix(f) for f in features], weights))

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.distance(gram_matrix(features, mask))

    def distance(self, gram: torch.Tensor) -> torch.Tensor:
        """The loss of a given Gram matrix (tiles sum their Gram matrices before taking it)."""
        return (gram - self.target).pow(2).sum() * self.inv_norm

    def per_sample(self, features: torch.Tensor) -> torch.Tensor:
        """(B,) losses of a batch, each relative to its own target (a (B, C, C) target: one per picture)."""
        target = self.target if self.target.dim() == 3 else self.target[None]
        err = (gram_matrix(features) - target).pow(2).sum((-1, -2))
        return err / (target.pow(2).sum((-1, -2)) + EPS)


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


class LaplacianLoss(nn.Module):
    """Li et al. 2017 ("Laplacian-steered neural style transfer"): mean squared difference between the Laplacians of
    two pictures' luminance, each average-pooled by every factor in `pools` (the mean over them).

    It holds the picture's edges where the photo has them: a light rim drawn along a dark-light edge, or a dark
    building filled with the sky's colour, changes the luminance's second derivative there, while restyling flat areas
    (any colour, any smooth shading) costs nothing. RGB in [0, 1].
    """

    def __init__(self, pools: Sequence[int] = (2, 4)) -> None:
        super().__init__()
        self.pools = tuple(int(p) for p in pools)
        kernel = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
        self.register_buffer("kernel", kernel[None, None])

    def laplacians(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The (B, 1, h, w) Laplacians of `image`'s luminance, one per pooling factor."""
        y = luminance(image.float())
        return [F.conv2d(F.avg_pool2d(y, p) if p > 1 else y, self.kernel) for p in self.pools]

    def forward(self, image: torch.Tensor, target: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """The loss of `image` against `target`: a picture, or its :meth:`laplacians` computed once."""
        want = self.laplacians(target) if isinstance(target, torch.Tensor) else target
        got = self.laplacians(image)
        return sum(F.mse_loss(g, w) for g, w in zip(got, want)) / len(got)


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
        self.register_buffer("inv_norm", 1.0 / (self.trace + self.mean.pow(2).sum() + EPS))

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


class MeanStdStyleLoss(nn.Module):
    """AdaIN's style loss: mean squared error of the channel means plus that of the standard deviations.

    Targets are (B, C, 1, 1): one per picture of a batch (or one for all).
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().float())
        self.register_buffer("std", std.detach().float())

    @classmethod
    def from_features(cls, features: torch.Tensor) -> "MeanStdStyleLoss":
        return cls(*mean_std(features))

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        m, s = mean_std(features, mask)
        return F.mse_loss(m, self.mean) + F.mse_loss(s, self.std)


def style_loss_from_stats(
    kind: str, stats: Sequence[tuple[torch.Tensor, ...]], weights: Sequence[float] | None = None
) -> nn.Module:
    """A style loss against the blend of several images' statistics: (gram,) or (mean, covariance) tuples."""
    if kind == "gram":
        return GramStyleLoss(blend_grams([s[0] for s in stats], weights))
    if kind == "mean-cov":
        return MeanCovStyleLoss.from_moments(stats, weights)
    raise ValueError(f"no blended statistics for style loss {kind!r}")


STYLE_LOSSES = {"gram": GramStyleLoss, "mean-cov": MeanCovStyleLoss, "mean-std": MeanStdStyleLoss}
