"""A compact arbitrary-style model: a slim encoder distilled from VGG-19 and a slim decoder for it.

The encoder keeps VGG-19's four stages and strides up to relu4_1 (so it drops into :class:`impasto.nets.adain.AdaINNet`
and its export graph in place of VGG, margins and padding included) with far fewer channels; it is trained to carry
what VGG's relu1_1..relu4_1 carry (each stage's features map onto VGG's through a learnt 1x1 projection, as in Wang et
al., "Collaborative Distillation for Ultra-Resolution Universal Style Transfer", CVPR 2020), while the decoder learns
to paint from its AdaIN-restyled bottleneck under VGG's own content and style losses.

With ``skip`` (a "joint" encoder and a decoder with a skip), the bottleneck also carries the relu3_1 stage, folded
to 1/8 resolution by a space-to-depth (:func:`joint_bottleneck`): AdaIN then restyles both stages with the painting's
statistics at each (per channel and 2x2 phase), and the decoder adds the relu3_1 part back after its first doubling.
Everything downstream (style codes, masks, blends, the exported graphs) sees one tensor at 1/8 resolution, as before.

Pure modules: no files, no images.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import conv_in_blocks

STAGES = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
WIDTHS = (16, 32, 64, 128)  # VGG-19: 64, 128, 256, 512
SKIP = "relu3_1"  # the stage a decoder with a skip also paints from


def joint_bottleneck(relu4_1: torch.Tensor, relu3_1: torch.Tensor) -> torch.Tensor:
    """relu4_1 (C4 channels, 1/8 resolution) and relu3_1 (C3, 1/4) as one (C4 + 4 C3)-channel tensor at 1/8.

    relu3_1 is cropped to twice relu4_1's size first: on a picture whose sides are not multiples of 8 it has an odd
    row or column that relu4_1's pooling dropped.
    """
    h, w = relu4_1.shape[-2], relu4_1.shape[-1]
    return torch.cat([relu4_1, F.pixel_unshuffle(relu3_1[..., : 2 * h, : 2 * w], 2)], 1)


def _conv(cin: int, cout: int, relu: bool = True) -> list[nn.Module]:
    # Reflection, not VGG's zeros: no frame of odd features at the edges for the decoder to answer.
    layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


def check_widths(widths: Sequence[int]) -> tuple[int, int, int, int]:
    widths = tuple(int(w) for w in widths)
    if len(widths) != 4 or min(widths) < 4:
        raise ValueError(f"a student needs four stage widths of at least 4, got {widths}")
    return widths  # type: ignore[return-value]


class StudentEncoder(nn.Module):
    """RGB in [0, 1] -> {stage: features} for the asked `layers` of STAGES (relu4_1 at 1/8 resolution).

    ``joint``: relu4_1's entry is :func:`joint_bottleneck` of relu4_1 and relu3_1 (the input of a decoder with a skip).
    """

    def __init__(self, widths: Sequence[int] = WIDTHS, layers: Sequence[str] = STAGES, joint: bool = False) -> None:
        super().__init__()
        self.joint = bool(joint)
        w1, w2, w3, w4 = self.widths = check_widths(widths)
        unknown = [name for name in layers if name not in STAGES]
        if unknown:
            raise ValueError(f"no stage {unknown[0]!r} in a student encoder (it has {', '.join(STAGES)})")
        self.layers = tuple(layers)
        pool = nn.MaxPool2d(2)
        # Each stage starts after the pooling of the one before and ends at its relu*_1, as in VGG-19.
        self.stages = nn.ModuleList(
            [
                nn.Sequential(*_conv(3, w1)),
                nn.Sequential(*_conv(w1, w1), pool, *_conv(w1, w2)),
                nn.Sequential(*_conv(w2, w2), pool, *_conv(w2, w3)),
                nn.Sequential(*_conv(w3, w3), pool, *_conv(w3, w4)),
            ]
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        y = (x - 0.5) * 2
        last = max(STAGES.index(name) for name in self.layers)
        skip = y
        for name, stage in zip(STAGES[: last + 1], self.stages):
            y = stage(y)
            if name == SKIP:
                skip = y
            if name in self.layers:
                out[name] = joint_bottleneck(y, skip) if self.joint and name == STAGES[-1] else y
        return out


class StudentDecoder(nn.Module):
    """Bottleneck features (widths[3] channels, 1/8 resolution) -> RGB in about [0, 1], mirroring the encoder.

    ``in_scale`` as in :class:`impasto.nets.adain.Decoder`: it multiplies the features on the way in. With ``skip``
    the input is a :func:`joint_bottleneck` (widths[3] + 4 widths[2] channels) and its relu3_1 part is added after the
    first doubling through a 1x1 convolution that starts at zero (so a decoder trained without it starts unchanged).
    """

    def __init__(self, widths: Sequence[int] = WIDTHS, in_scale: float = 1.0, skip: bool = False) -> None:
        super().__init__()
        w1, w2, w3, w4 = self.widths = check_widths(widths)
        self.skip = None
        if skip:
            self.skip = nn.Conv2d(w3, w3, 1)
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)
        up = nn.Upsample(scale_factor=2, mode="nearest")
        self.net = nn.Sequential(
            *_conv(w4, w3),
            up,
            *_conv(w3, w3),
            *_conv(w3, w2),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv(w2, w2),
            *_conv(w2, w1),
            nn.Upsample(scale_factor=2, mode="nearest"),
            *_conv(w1, w1),
            *_conv(w1, 3, relu=False),
        )
        self.register_buffer("in_scale", torch.tensor(float(in_scale)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        y = features * self.in_scale.to(features.dtype)
        layers = list(self.net)
        skip = None
        if self.skip is not None:
            w4 = self.widths[3]
            y, skip = y[:, :w4], F.pixel_shuffle(y[:, w4:], 2)
        # The RGB output in 2x2 blocks (impasto.nets.blocks: the same result; int8 pass at 1024 px, one thread,
        # 348 -> 316 ms). The doublings are left plain: in 2x2 blocks they ran slower here (441 ms), unlike the fast
        # network's.
        for i, layer in enumerate(layers[:-2]):
            y = layer(y)
            if i == _FIRST_DOUBLING and skip is not None:
                y = y + self.skip(skip)
        return conv_in_blocks(y, layers[-1], layers[-2].padding[0])


_FIRST_DOUBLING = 3  # index in StudentDecoder.net: after pad, conv, relu


class Projections(nn.Module):
    """Training only: 1x1 maps from each student stage to the teacher's channels at the same layer."""

    def __init__(self, widths: Sequence[int], teacher_channels: Sequence[int] = (64, 128, 256, 512)) -> None:
        super().__init__()
        self.maps = nn.ModuleList(nn.Conv2d(w, c, 1) for w, c in zip(check_widths(widths), teacher_channels))

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: m(features[name]) for name, m in zip(STAGES, self.maps) if name in features}
