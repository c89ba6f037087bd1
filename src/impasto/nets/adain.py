"""AdaIN's networks and maths (Huang & Belongie 2017): the operation, the decoder, and the whole stylizing network.

Pure modules: no files, no images. :class:`AdaINNet`'s ``forward`` is what inference runs, margins and padding
included, so it can be exported as it is.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..losses.stats import mean_std, normalized_weights
from .vgg import VGGFeatures

# The encoder's layers whose statistics the training's style loss matches; relu4_1 alone drives inference.
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
BOTTLENECK = "relu4_1"
STRIDE = 8  # three poolings before relu4_1
MIN_STYLE_SIDE = 2 * STRIDE  # a compact encoder's reflection padding needs two relu4_1 positions a side
MARGIN = 16  # px of reflected picture around the content while stylizing (see pad_margin); a multiple of STRIDE
_EPS = 1e-5


def adain(
    content: torch.Tensor,
    style_mean: torch.Tensor,
    style_std: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Normalize `content` features per channel and give them the style's mean and std (fp32).

    With a mask, the content's statistics are taken over the masked region only (the region is restyled as a whole).
    """
    mean, std = mean_std(content, mask)
    return (content.float() - mean) / std * style_std + style_mean


def target_features(
    content: torch.Tensor,
    codes: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    strength: float = 1.0,
    style_weights: Sequence[float] | None = None,
    masks: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """The decoder's input: the content's relu4_1 features restyled by one or more (mean, std) style codes.

    Several codes blend by `style_weights` (the AdaIN targets are interpolated) or, with `masks` ((1, 1, h, w) in
    [0, 1] at the features' resolution), each applies in its own region, with the content's statistics taken over
    that region; where regions overlap (soft edges, or a --content-mask with no region masks) they share the pixel in
    proportion to mask x style weight, and where the masks add up to less than one the photo's own features show
    through. `strength` (alpha) mixes the result with the photo's features: 0 gives the content features back.
    """
    weights = normalized_weights(style_weights, len(codes))
    if masks is None:
        target = sum(wi * adain(content, *c) for wi, c in zip(weights, codes))
    else:
        # A style with weight 0 claims no pixels, so its region falls back to the photo.
        masks = [m if wi > 0 else torch.zeros_like(m) for m, wi in zip(masks, weights)]
        coverage = sum(masks).clamp(0, 1)
        denom = sum(m * wi for m, wi in zip(masks, weights)).clamp_min(_EPS)
        target = content.float() * (1 - coverage)
        for m, wi, c in zip(masks, weights, codes):
            if float(m.sum()) > 1e-6:  # a region too small to survive at 1/8 resolution adds nothing
                target = target + coverage * (m * wi / denom) * adain(content, *c, m)
    return strength * target + (1 - strength) * content.float()


class Decoder(nn.Module):
    """relu4_1 features (512 channels, 1/8 resolution) -> RGB in about [0, 1], mirroring VGG-19's first 21 layers.

    ``in_scale`` multiplies the features on the way in: Caffe VGG activations are in the hundreds, and bringing them
    near 1 lets the decoder start from a standard initialization.
    """

    def __init__(self, in_scale: float = 1.0) -> None:
        super().__init__()

        def conv(cin: int, cout: int, relu: bool = True) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
            return layers + [nn.ReLU(inplace=True)] if relu else layers

        up = nn.Upsample(scale_factor=2, mode="nearest")
        self.net = nn.Sequential(
            *conv(512, 256),
            up,
            *conv(256, 256),
            *conv(256, 256),
            *conv(256, 256),
            *conv(256, 128),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *conv(128, 128),
            *conv(128, 64),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *conv(64, 64),
            *conv(64, 3, relu=False),
        )
        self.register_buffer("in_scale", torch.tensor(float(in_scale)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 512, h, w) relu4_1 features -> (B, 3, 8h, 8w) image, not clamped."""
        return self.net(features * self.in_scale.to(features.dtype))


def pad_margin(x: torch.Tensor) -> torch.Tensor:
    """Reflect-pad every edge by MARGIN px, cropped off after decoding.

    The encoder's zero padding makes edge features unlike any inside a picture, and the decoder answers them with a
    frame a dozen pixels wide; with the picture continued past its edges, that frame falls outside the crop.
    """
    h, w = x.shape[-2:]
    return F.pad(x, (MARGIN,) * 4, mode="reflect" if MARGIN < min(h, w) else "replicate")


def pad_to_stride(x: torch.Tensor) -> torch.Tensor:
    """Reflect-pad the bottom and right edges up to multiples of 8 (never crop, never square)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % STRIDE, (-w) % STRIDE
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class AdaINNet(nn.Module):
    """The whole stylizing network: encoder (VGG-19 to relu4_1), AdaIN, decoder, with the margins and padding.

    ``forward(content, style_mean, style_std, strength)`` takes (B, 3, H, W) pictures in [0, 1] of any size and a
    style code ((1 or B, 512, 1, 1) mean and std of a painting's relu4_1 features, see :meth:`style_code`) and
    returns the stylized (B, 3, H, W) pictures in [0, 1]. Callers choose the precision with autocast.
    """

    def __init__(self, encoder: VGGFeatures, decoder: Decoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """relu4_1 features (fp32) of pictures padded by the margin and to multiples of 8."""
        return self.encoder(_channels_last(pad_to_stride(pad_margin(images))))[BOTTLENECK].float()

    def decode(self, target: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """Decoded pictures cropped back to `size` (h, w), fp32, clamped to [0, 1]."""
        h, w = size
        out = self.decoder(_channels_last(target)).float().clamp(0, 1)
        return out[..., MARGIN : MARGIN + h, MARGIN : MARGIN + w]

    def style_code(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of a painting's relu4_1 features: all AdaIN needs of it."""
        return mean_std(self.encoder(_channels_last(style))[BOTTLENECK].float())

    def forward(
        self, content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor, strength: float = 1.0
    ) -> torch.Tensor:
        features = self.encode(content)
        target = adain(features, style_mean, style_std)
        target = strength * target + (1 - strength) * features
        return self.decode(target, content.shape[-2:])


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    # oneDNN's fast path on CPUs; a no-op elsewhere.
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


class AdaINGraph(nn.Module):
    """The whole arbitrary-style model as one graph for export: ``forward(content, style, strength)`` with two
    pictures in [0, 1] of any size (each side at least MARGIN + 1 px) and a (1,) strength; no branch on the sizes, so
    one traced graph serves every size. The same computation as :class:`AdaINNet` with the style code taken inside.
    """

    def __init__(self, net: AdaINNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, content: torch.Tensor, style: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
        return self.transfer(content, *self.code(style), strength)

    def code(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A painting's style code: its (mean, std) at the bottleneck, each (1, C, 1, 1)."""
        return mean_std(self.net.encoder(style)[BOTTLENECK].float())

    def transfer(
        self, content: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, strength: torch.Tensor
    ) -> torch.Tensor:
        """The content stylized with a style code from :meth:`code`."""
        h, w = content.shape[-2], content.shape[-1]
        x = F.pad(content, (MARGIN,) * 4, mode="reflect")
        hp, wp = h + 2 * MARGIN, w + 2 * MARGIN
        x = F.pad(x, (0, (STRIDE - wp % STRIDE) % STRIDE, 0, (STRIDE - hp % STRIDE) % STRIDE), mode="reflect")
        features = self.net.encoder(x)[BOTTLENECK].float()
        target = adain(features, mean, std)
        target = strength * target + (1 - strength) * features
        out = self.net.decoder(target).float().clamp(0, 1)
        return out[..., MARGIN : MARGIN + h, MARGIN : MARGIN + w]


class AdaINCodeGraph(nn.Module):
    """:meth:`AdaINGraph.code` as a graph of its own: ``forward(style) -> (mean, std)``."""

    def __init__(self, graph: AdaINGraph) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.graph.code(style)


class AdaINTransferGraph(nn.Module):
    """:meth:`AdaINGraph.transfer` as a graph of its own: ``forward(content, mean, std, strength)``; with
    :class:`AdaINCodeGraph` a runtime encodes each painting once for many pictures or frames."""

    def __init__(self, graph: AdaINGraph) -> None:
        super().__init__()
        self.graph = graph

    def forward(
        self, content: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, strength: torch.Tensor
    ) -> torch.Tensor:
        return self.graph.transfer(content, mean, std, strength)
