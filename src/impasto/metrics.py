"""Measured content and style distances, always with fp32 Caffe VGG-19 and max pooling.

- content distance: mean squared relu4_2 difference between the output and the content image resized to the
  output's size, divided by the mean square of the content features (0 = the photo itself);
- style distance: mean over relu1_1..relu5_1 of ||G(out) - G(style)||^2 / ||G(style)||^2, Gram matrices divided
  by the number of positions, each style image resized to the output's pixel count (several styles: blended Grams).

Both come from :class:`impasto.losses.PerceptualLoss`. :class:`Evaluator` keeps its network for many pictures.

Besides, two tone ratios against the painting(s), where washed-out results show (1 = the painting's): contrast, the
standard deviation of the output's luma over the painting's, and saturation, the output's mean HSV saturation over
the painting's (several paintings: their blend-weighted means).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .core.image import ImageLike, as_pil, fit_area, pil_to_tensor
from .core.weights import load_weights
from .errors import ImpastoError
from .losses import PerceptualLoss
from .nets.vgg import VGGFeatures

CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


class Evaluator:
    """fp32 Caffe VGG-19 with max pooling, loaded once, measuring many outputs."""

    def __init__(self) -> None:
        net = VGGFeatures(load_weights("caffe"), (CONTENT_LAYER, *STYLE_LAYERS), pooling="max")
        # channels_last: oneDNN's fast path on CPUs (several times faster than NCHW for small images).
        self.net = net.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def evaluate(
        self,
        output: ImageLike,
        content: ImageLike | None = None,
        styles: ImageLike | Sequence[ImageLike] = (),
        style_weights: Sequence[float] | None = None,
    ) -> dict:
        """Return {"content": float|None, "style": float|None, "style_layers": {layer: float}}."""
        out_pil = as_pil(output)
        if not isinstance(styles, (list, tuple)):
            styles = [styles]
        if style_weights is not None:
            if len(style_weights) != len(styles):
                raise ImpastoError(f"style weights: got {len(style_weights)} values for {len(styles)} style images")
            if any(not math.isfinite(w) or w < 0 for w in style_weights) or sum(style_weights) <= 0:
                raise ImpastoError("style weights must be finite numbers >= 0, at least one positive")
        content_t = None
        if content is not None:
            c = as_pil(content)
            if c.size != out_pil.size:
                c = c.resize(
                    out_pil.size, Image.Resampling.BICUBIC
                )  # as in reference.md's figures (2.35 for the painting)
            content_t = pil_to_tensor(c)
        area = out_pil.width * out_pil.height
        # A very narrow painting is enlarged so it still has one position at relu5_1.
        style_ts = [pil_to_tensor(fit_area(as_pil(s), area, self.net.min_side)) for s in styles]
        loss = PerceptualLoss(
            self.net,
            content_layers=[CONTENT_LAYER] if content is not None else [],
            style_layers=STYLE_LAYERS if styles else [],
        ).set_targets(content_t, style_ts, style_weights)
        _, terms = loss(pil_to_tensor(out_pil), per_layer=True)
        result: dict = {"content": None, "style": None, "style_layers": {}}
        if content is not None:
            result["content"] = terms["content_layers"][CONTENT_LAYER]
        if styles:
            per_layer = terms["style_layers"]
            result["style_layers"] = per_layer
            result["style"] = sum(per_layer.values()) / len(per_layer)
            result.update(tone(out_pil, styles, style_weights))
        return result


def _tone(image: Image.Image) -> tuple[float, float]:
    """(std of luma, mean HSV saturation), both in [0, 1] units."""
    luma = np.asarray(image.convert("L"), dtype=np.float64) / 255
    saturation = np.asarray(image.convert("HSV"), dtype=np.float64)[..., 1] / 255
    return float(luma.std()), float(saturation.mean())


def tone(
    output: ImageLike, styles: ImageLike | Sequence[ImageLike], style_weights: Sequence[float] | None = None
) -> dict[str, float]:
    """{"contrast", "saturation"}: the output's luma spread and mean saturation over the painting's (1 = the same)."""
    if not isinstance(styles, (list, tuple)):
        styles = [styles]
    weights = np.asarray(style_weights if style_weights is not None else [1.0] * len(styles), dtype=np.float64)
    weights = weights / weights.sum()
    ref = np.sum([w * np.asarray(_tone(as_pil(s).convert("RGB"))) for w, s in zip(weights, styles)], axis=0)
    out = np.asarray(_tone(as_pil(output).convert("RGB")))
    ratio = out / np.maximum(ref, 1e-6)
    return {"contrast": float(ratio[0]), "saturation": float(ratio[1])}


def evaluate(
    output: ImageLike,
    content: ImageLike | None = None,
    styles: ImageLike | Sequence[ImageLike] = (),
    style_weights: Sequence[float] | None = None,
) -> dict:
    """Measure one output (loads the network for this call; for many, use :class:`Evaluator`)."""
    return Evaluator().evaluate(output, content, styles, style_weights)


def content_distance(output: ImageLike, content: ImageLike) -> float:
    """Relative relu4_2 error of `output` against `content` (see module docstring)."""
    return evaluate(output, content)["content"]


def style_distance(
    output: ImageLike, styles: ImageLike | Sequence[ImageLike], style_weights: Sequence[float] | None = None
) -> float:
    """Mean relative Gram error of `output` against one or more styles (see module docstring)."""
    return evaluate(output, None, styles, style_weights)["style"]
