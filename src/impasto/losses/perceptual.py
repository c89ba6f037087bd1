"""The perceptual loss: content, style statistics and total variation over VGG-19 features, whole or tile by tile.

One object serves every user: the Gatys optimizer (whole images, masks and regions, or tiles for print sizes), the
measured distances of :mod:`impasto.metrics`, and training (AdaIN's decoder, batched targets, plain MSE terms). It
takes plain settings, never a method's options.

- :meth:`PerceptualLoss.set_targets` computes targets from images: the content's features, the styles' statistics
  (blended by weight, or one region per style with masks), over the whole image or summed over tiles (see
  :mod:`impasto.losses.tiled` for why the tiled statistics are exact).
- :meth:`PerceptualLoss.set_feature_targets` takes targets as features (training computes them itself).
- ``forward(x)`` returns ``(total, terms)`` with ``total`` differentiable (whole images);
  :meth:`PerceptualLoss.backward` evaluates and puts the gradient into ``x.grad``, whole or tiled alike.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core.vgg_layers import alignment, layer_stride, receptive_margin
from ..nets.vgg import VGGFeatures
from .stats import gram_matrix, mean_cov, normalized_weights
from .terms import STYLE_LOSSES, ContentLoss, GramStyleLoss, TVLoss, style_loss_from_stats
from .tiled import Tile, accumulate, core_slices, statistic_from_sums, tile_sums, tiles_like

_REGION_MIN = 1e-3  # a style whose region vanished at a layer's resolution adds nothing there


class PerceptualLoss(nn.Module):
    """Weighted content, style and total-variation losses of an image's features (see the module's notes).

    Layer weights are normalized to sum to 1 unless ``normalize_layer_weights`` is False (then a missing list means
    1 per layer). ``feature_scale`` multiplies a layer's features before its terms (training's per-layer
    normalizers). ``dtype`` is the autocast precision of the network passes (None: fp32).
    """

    def __init__(
        self,
        net: VGGFeatures,
        *,
        content_layers: Sequence[str] = (),
        style_layers: Sequence[str] = (),
        content_layer_weights: Sequence[float] | None = None,
        style_layer_weights: Sequence[float] | None = None,
        normalize_layer_weights: bool = True,
        style_loss: str = "gram",
        relative_content: bool = True,
        content_weight: float = 1.0,
        style_weight: float = 1.0,
        tv_weight: float = 0.0,
        feature_scale: dict[str, torch.Tensor | float] | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if style_loss not in STYLE_LOSSES:
            raise ValueError(f"unknown style loss {style_loss!r}")
        self.net, self.dtype, self.kind = net, dtype, style_loss
        self.content_layers, self.style_layers = list(content_layers), list(style_layers)

        def layer_weights(names: list[str], given: Sequence[float] | None) -> dict[str, float]:
            if normalize_layer_weights:
                return dict(zip(names, normalized_weights(given, len(names)))) if names else {}
            return dict(zip(names, [float(v) for v in given] if given is not None else [1.0] * len(names)))

        self.content_w = layer_weights(self.content_layers, content_layer_weights)
        self.style_w = layer_weights(self.style_layers, style_layer_weights)
        self.relative_content = relative_content
        self.weights = (content_weight, style_weight, tv_weight)
        self.feature_scale = feature_scale or {}
        self.tv = TVLoss()
        self.pixel_target: tuple[torch.Tensor, torch.Tensor, float] | None = None
        self.tiles: list[Tile] = []
        self.content = nn.ModuleDict()
        self.style = nn.ModuleDict()  # layer -> ModuleList of one loss per region
        self.region_w: list[float] = [1.0]
        self.masks: dict[str, list[torch.Tensor]] = {}

    @property
    def layers(self) -> list[str]:
        """Every layer the loss reads, content layers first."""
        return list(dict.fromkeys([*self.content_layers, *self.style_layers]))

    # -- features

    def features(self, x: torch.Tensor, grad: bool = True) -> dict[str, torch.Tensor]:
        """VGG features under autocast when a lower precision is chosen (the losses themselves run in fp32)."""
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with (
            torch.set_grad_enabled(grad and torch.is_grad_enabled()),
            torch.autocast(x.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None),
        ):
            feats = self.net(x)
        if self.feature_scale:
            feats = {k: (f.float() * self.feature_scale[k] if k in self.feature_scale else f) for k, f in feats.items()}
        return feats

    # -- targets

    @torch.no_grad()
    def set_targets(
        self,
        content: torch.Tensor | None = None,
        styles: Sequence[torch.Tensor] = (),
        style_weights: Sequence[float] | None = None,
        masks: Sequence[torch.Tensor] | None = None,
        tiles: Sequence[Tile] = (),
    ) -> "PerceptualLoss":
        """Targets from a (1, 3, H, W) content image and style images, evaluated whole or over `tiles`.

        Several styles blend by `style_weights` into one target per layer; with `masks` (one (1, 1, H, W) region per
        style, at the content's size) each style is matched over its own region, regions weighted by style weight.
        A single mask is one region where the blend of all styles applies.
        """
        self.tiles = list(tiles)
        if content is None and masks is not None:
            raise ValueError("masks need a content image (they are drawn at its size)")
        # Statistics of each style image, per style layer: whole, or summed over the style image's own tiles.
        per_style = [self._image_statistics(s) for s in styles]
        self.content = nn.ModuleDict()
        if content is not None:
            targets = self._content_features(content)
            self.content = nn.ModuleDict({n: ContentLoss(t, self.relative_content) for n, t in targets.items()})
            self.layer_shapes = {
                n: (content.shape[-2] // layer_stride(n), content.shape[-1] // layer_stride(n)) for n in self.layers
            }
        if masks is None or len(masks) == 1:
            groups = [(per_style, style_weights)]
            self.region_w = [1.0]
        else:
            groups = [([stats], None) for stats in per_style]
            self.region_w = normalized_weights(style_weights, len(per_style))
        self.style = nn.ModuleDict()
        if per_style:
            self.style = nn.ModuleDict(
                {
                    n: nn.ModuleList(
                        style_loss_from_stats(self.kind, [g[n] for g in stats], wts) for stats, wts in groups
                    )
                    for n in self.style_layers
                }
            )
        self.masks = {}
        if masks is not None:
            for n in self.style_layers:
                self.masks[n] = [F.adaptive_avg_pool2d(m, self.layer_shapes[n]) for m in masks]
        return self

    @torch.no_grad()
    def set_feature_targets(
        self,
        content: dict[str, torch.Tensor] | None = None,
        style: dict[str, torch.Tensor] | None = None,
        grams: dict[str, torch.Tensor] | None = None,
    ) -> "PerceptualLoss":
        """Targets given as features: content features per content layer, style features per style layer, or (for
        the Gram loss) target Gram matrices per style layer, (C, C) or one (B, C, C) per picture.

        Batches match picture by picture where the targets have a batch dimension (training).
        """
        self.tiles, self.masks, self.region_w = [], {}, [1.0]
        self.content = nn.ModuleDict({n: ContentLoss(t, self.relative_content) for n, t in (content or {}).items()})
        loss_cls = STYLE_LOSSES[self.kind]
        self.style = nn.ModuleDict(
            {
                n: nn.ModuleList(
                    [loss_cls.from_features(f) if self.kind == "mean-std" else loss_cls.from_features([f])]
                )
                for n, f in (style or {}).items()
            }
        )
        if grams:
            if self.kind != "gram":
                raise ValueError(f"Gram targets need the gram style loss, not {self.kind!r}")
            self.style.update({n: nn.ModuleList([GramStyleLoss(g)]) for n, g in grams.items()})
        return self

    def set_pixel_target(
        self, target: torch.Tensor | None, mask: torch.Tensor | None = None, weight: float = 1.0
    ) -> "PerceptualLoss":
        """A pixel term, `weight` x the mean over pixels of mask x (x - target)^2: video's short-term temporal loss
        (Ruder et al. 2016), with the previous frame's result warped into this one as the target and the pixels where
        the flow is reliable as the mask. None removes it."""
        if target is None:
            self.pixel_target = None
        else:
            mask = torch.ones_like(target[:, :1]) if mask is None else mask
            self.pixel_target = (target.detach().float(), mask.detach().float(), float(weight))
        return self

    def _pixel_term(self, x: torch.Tensor) -> torch.Tensor:
        if self.pixel_target is None:
            return x.new_zeros((), dtype=torch.float32)
        target, mask, weight = self.pixel_target
        return weight * (mask * (x.float() - target).pow(2)).mean()

    def _content_features(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.tiles:
            feats = self.features(content, grad=False)
            return {n: feats[n] for n in self.content_layers}
        # Every content layer's features of the whole content image, assembled from tile cores.
        h, w = content.shape[-2:]
        shapes = {n: (h // layer_stride(n), w // layer_stride(n)) for n in self.content_layers}
        targets: dict[str, torch.Tensor] = {}
        for t in self.tiles:
            feats = self.features(_window(content, t), grad=False)
            for n in self.content_layers:
                rows, cols, lrows, lcols = core_slices(t, layer_stride(n), shapes[n])
                core = feats[n][:, :, lrows, lcols].float()
                if n not in targets:
                    targets[n] = core.new_zeros((1, core.shape[1], *shapes[n]))
                targets[n][:, :, rows, cols] = core
        return targets

    def _image_statistics(self, image: torch.Tensor) -> dict[str, tuple[torch.Tensor, ...]]:
        """Per style layer: (gram,) or (mean, covariance) of a style image, whole or summed over tiles."""
        if not self.tiles:
            feats = self.features(image, grad=False)
            return {n: _whole_statistic(self.kind, feats[n]) for n in self.style_layers}
        layers = self.layers
        strides = {n: layer_stride(n) for n in self.style_layers}
        shapes = {n: (image.shape[-2] // s, image.shape[-1] // s) for n, s in strides.items()}
        sums: dict = {}
        for t in tiles_like(*image.shape[-2:], self.tiles, receptive_margin(layers), alignment(layers)):
            feats = self.features(_window(image, t), grad=False)
            for n in self.style_layers:
                _, _, lrows, lcols = core_slices(t, strides[n], shapes[n])
                accumulate(sums, n, tile_sums(self.kind, feats[n][:, :, lrows, lcols], None))
        return {n: statistic_from_sums(self.kind, sums[n], shapes[n][0] * shapes[n][1]) for n in self.style_layers}

    # -- evaluation

    def forward(self, x: torch.Tensor, per_layer: bool = False) -> tuple[torch.Tensor, dict]:
        """(total, terms) of a whole (B, 3, H, W) image: total differentiable, terms as floats (content, style, tv,
        total; with `per_layer`, also "content_layers" and "style_layers" dicts)."""
        if self.tiles:
            raise RuntimeError("a tiled loss is evaluated with backward(), which computes the gradient tile by tile")
        cw, sw, tw = self.weights
        feats = self.features(x)
        zero = x.new_zeros((), dtype=torch.float32)
        content_terms = {n: loss(feats[n]) for n, loss in self.content.items()}
        style_terms = {n: self._style_term(n, feats[n]) for n in self.style}
        content = sum((self.content_w[n] * v for n, v in content_terms.items()), zero)
        style = sum((self.style_w[n] * v for n, v in style_terms.items()), zero)
        tv = self.tv(x)
        pixel = self._pixel_term(x)
        total = cw * content + sw * style + tw * tv + pixel
        terms = _floats(content, style, tv, total)
        if self.pixel_target is not None:
            terms["temporal"] = float(pixel.detach())
        if per_layer:
            terms["content_layers"] = {n: float(v) for n, v in content_terms.items()}
            terms["style_layers"] = {n: float(v) for n, v in style_terms.items()}
        return total, terms

    def terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The differentiable (content, style) terms of a whole image, layer weights applied (for trainers)."""
        feats = self.features(x)
        zero = x.new_zeros((), dtype=torch.float32)
        content = sum((self.content_w[n] * loss(feats[n]) for n, loss in self.content.items()), zero)
        style = sum((self.style_w[n] * self._style_term(n, feats[n]) for n in self.style), zero)
        return content, style

    def sample_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per picture of a batch: the content loss (B,) (layer weights applied) and each style layer's loss (B, L)
        in ``style_layers`` order, unweighted, so that a trainer can weight every picture's layers differently."""
        feats = self.features(x)
        content = sum(
            (self.content_w[n] * loss.per_sample(feats[n]) for n, loss in self.content.items()),
            x.new_zeros(x.shape[0], dtype=torch.float32),
        )
        style = torch.stack([self.style[n][0].per_sample(feats[n]) for n in self.style_layers], dim=1)
        return content, style

    def _style_term(self, layer: str, features: torch.Tensor) -> torch.Tensor:
        losses = self.style[layer]
        if not self.masks:
            return losses[0](features)
        terms = []
        for w, region_loss, mask in zip(self.region_w, losses, self.masks[layer]):
            if float(mask.sum()) > _REGION_MIN:
                terms.append(w * region_loss(features, mask))
        return sum(terms) if terms else features.new_zeros((), dtype=torch.float32)

    def backward(self, x: torch.Tensor, scale: float = 1.0) -> tuple[torch.Tensor, dict]:
        """Evaluate at `x` (a leaf with requires_grad) and add the gradient of `scale` x total into ``x.grad``.

        Whole images backpropagate once; tiled ones run the two passes of :mod:`impasto.losses.tiled`. `scale` is
        fp16's loss scaling (the caller divides the gradient back). Returns (total, terms), total detached.
        """
        if not self.tiles:
            total, terms = self(x)
            (total * scale).backward()
            return total.detach(), terms
        return self._tiled_backward(x, scale)

    # -- tiled evaluation

    def _regions(self, layer: str) -> Iterator[tuple[int, float, torch.Tensor | None, float]]:
        """(index, weight, mask at the layer's resolution or None, weighted count of positions) per style region."""
        shape = self.layer_shapes[layer]
        if not self.masks:
            yield 0, 1.0, None, float(shape[0] * shape[1])
            return
        for i, (w, m) in enumerate(zip(self.region_w, self.masks[layer])):
            total = float(m.sum())
            if total > _REGION_MIN:
                yield i, w, m, total + 1e-8

    def _tile_sums(self, x: torch.Tensor, t: Tile) -> dict:
        """(layer, region) -> the statistics' sums over the tile's core (no grad)."""
        feats = self.features(_window(x, t), grad=False)
        out = {}
        for n in self.style:
            rows, cols, lrows, lcols = core_slices(t, layer_stride(n), self.layer_shapes[n])
            f = feats[n][:, :, lrows, lcols]
            for i, _, m, _ in self._regions(n):
                out[(n, i)] = tile_sums(self.kind, f, None if m is None else m[:, :, rows, cols])
        return out

    def _tile_gradient(self, x: torch.Tensor, t: Tile, slopes: dict, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The gradient over the tile's window of its share of the loss, and its share of the content loss."""
        cw, sw, _ = self.weights
        window = _window(x, t).clone().requires_grad_(True)
        feats = self.features(window, grad=True)
        surrogate = window.new_zeros((), dtype=torch.float32)
        for n in self.style:
            rows, cols, lrows, lcols = core_slices(t, layer_stride(n), self.layer_shapes[n])
            f = feats[n][:, :, lrows, lcols]
            for i, _, m, _ in self._regions(n):
                part = tile_sums(self.kind, f, None if m is None else m[:, :, rows, cols])
                surrogate = surrogate + sum((p * r).sum() for p, r in zip(part, slopes[(n, i)]))
        share = window.new_zeros((), dtype=torch.float32)
        for n, loss in self.content.items():
            target = loss.target
            rows, cols, lrows, lcols = core_slices(t, layer_stride(n), self.layer_shapes[n])
            diff = feats[n][:, :, lrows, lcols].float() - target[:, :, rows, cols]
            share = share + self.content_w[n] * diff.pow(2).sum() * (loss.inv_norm / target.numel())
        ((cw * share + sw * surrogate) * scale).backward()
        return window.grad / scale, share.detach()

    def _tiled_backward(self, x: torch.Tensor, scale: float) -> tuple[torch.Tensor, dict]:
        cw, sw, tw = self.weights
        # Pass 1: the image's style statistics, summed over the tiles' cores.
        sums: dict = {}
        for t in self.tiles:
            for key, part in self._tile_sums(x, t).items():
                accumulate(sums, key, part)
        # The style loss from the totals, and its gradient with respect to each sum (weights folded in).
        style = x.new_zeros((), dtype=torch.float32)
        slopes: dict[tuple[str, int], list[torch.Tensor]] = {}
        with torch.enable_grad():
            for n in self.style:
                for i, w, _, count in self._regions(n):
                    leaves = [s.detach().requires_grad_(True) for s in sums[(n, i)]]
                    value = self.style[n][i].distance(*statistic_from_sums(self.kind, leaves, count))
                    grads = torch.autograd.grad(value, leaves)
                    weight = self.style_w[n] * w
                    slopes[(n, i)] = [(g * weight).float() for g in grads]
                    style = style + weight * value.detach()
        # Pass 2: each tile's share of the gradient, over its whole window (a core's features see its margin).
        grad = torch.zeros_like(x, dtype=torch.float32)
        content = x.new_zeros((), dtype=torch.float32)
        for t in self.tiles:
            window_grad, share = self._tile_gradient(x, t, slopes, scale)
            top, bottom, left, right = t.window
            grad[:, :, top:bottom, left:right] += window_grad
            content = content + share
            del window_grad
        with torch.enable_grad():
            tv = self.tv(x)
            pixel = self._pixel_term(x)
            ((tw * tv + pixel) * scale).backward()
        x.grad.add_(grad * scale)
        total = cw * content + sw * style + tw * tv.detach() + pixel.detach()
        terms = _floats(content, style, tv, total)
        if self.pixel_target is not None:
            terms["temporal"] = float(pixel.detach())
        return total.detach(), terms


def _window(image: torch.Tensor, t: Tile) -> torch.Tensor:
    top, bottom, left, right = t.window
    return image.detach()[:, :, top:bottom, left:right]


def _whole_statistic(kind: str, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return (gram_matrix(features),) if kind == "gram" else mean_cov(features)


def _floats(content: torch.Tensor, style: torch.Tensor, tv: torch.Tensor, total: torch.Tensor) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in (("content", content), ("style", style), ("tv", tv), ("total", total))}
