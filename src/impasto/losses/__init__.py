"""Losses: feature statistics, loss terms, their tiled evaluation and the one perceptual loss built from them."""

from .perceptual import PerceptualLoss
from .stats import blend_grams, gram_matrix, mean_cov, mean_std, normalized_weights, transposed_product
from .terms import ContentLoss, GramStyleLoss, LaplacianLoss, MeanCovStyleLoss, MeanStdStyleLoss, TVLoss

__all__ = [
    "PerceptualLoss",
    "ContentLoss",
    "GramStyleLoss",
    "LaplacianLoss",
    "MeanCovStyleLoss",
    "MeanStdStyleLoss",
    "TVLoss",
    "blend_grams",
    "gram_matrix",
    "mean_cov",
    "mean_std",
    "normalized_weights",
    "transposed_product",
]
