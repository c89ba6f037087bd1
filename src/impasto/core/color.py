"""Colour control (Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving Color in Neural Artistic Style Transfer").

- luminance: transfer style on luminance only, then put the content's chroma back (YIQ);
- histogram: recolour the style image so its colour mean and covariance match the content's, before transfer.
Images are (B, 3, H, W) RGB tensors in [0, 1].
"""

from __future__ import annotations

import torch

_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _apply(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", matrix.to(image), image)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> YIQ (Y: luminance; I, Q: chroma), the space luminance-only transfer works in."""
    return _apply(_RGB_TO_YIQ, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) YIQ -> RGB, the inverse of :func:`rgb_to_yiq` (not clamped)."""
    return _apply(_YIQ_TO_RGB, image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luminance Y."""
    return rgb_to_yiq(image)[:, :1]


def as_gray_rgb(image: torch.Tensor) -> torch.Tensor:
    """Luminance repeated into three channels, so the network sees a grey picture."""
    return luminance(image).expand(-1, 3, -1, -1).clamp(0, 1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Grey version of `style` whose luminance mean and std match the content's (the paper's luminance matching)."""
    ys, yc = luminance(style), luminance(content)
    matched = (ys - ys.mean()) * (yc.std() / (ys.std() + 1e-6)) + yc.mean()
    return matched.expand(-1, 3, -1, -1).clamp(0, 1).contiguous()


def combine_luminance(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The stylized picture's luminance with the content's chroma (I and Q), back in RGB."""
    yiq = rgb_to_yiq(content)
    yiq = torch.cat([luminance(stylized), yiq[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)


def _sqrtm(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(cov)
    values = values.clamp_min(1e-8)
    values = values.rsqrt() if inverse else values.sqrt()
    return vectors @ torch.diag(values) @ vectors.T


def match_histogram(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Recolour `style` with the affine map that gives it the content's colour mean and covariance.

    Uses the symmetric matrix square roots (the "image analogies" variant in the paper): A = C_c^1/2 C_s^-1/2.
    """
    s = style[0].reshape(3, -1).double()
    c = content[0].reshape(3, -1).double()
    mu_s, mu_c = s.mean(1, keepdim=True), c.mean(1, keepdim=True)
    eye = torch.eye(3, dtype=torch.float64) * 1e-5
    cov_s = torch.cov(s) + eye
    cov_c = torch.cov(c) + eye
    a = _sqrtm(cov_c) @ _sqrtm(cov_s, inverse=True)
    out = a @ (s - mu_s) + mu_c
    return out.reshape(style.shape).to(style.dtype).clamp(0, 1)


def color_inputs(
    content: torch.Tensor, styles: list[torch.Tensor], mode: str
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """What a method should see under a --preserve-color mode: grey images (luminance) or recoloured styles
    (histogram); unchanged for "none". After a luminance run, put the chroma back with :func:`combine_luminance`."""
    if mode == "luminance":
        return as_gray_rgb(content), [match_luminance(s, content) for s in styles]
    if mode == "histogram":
        return content, [match_histogram(s, content) for s in styles]
    return content, styles
