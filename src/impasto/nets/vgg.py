"""VGG-19 feature extraction by layer name (conv1_1, relu1_1, pool1, ... relu5_4): a pure, frozen module."""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

import torch
from torch import nn

from ..core.vgg_layers import CONV_SHAPES, LAYER_NAMES, POOLING, check_layers, min_input_side
from ..core.weights import VGGWeights
from ..errors import ImpastoError

__all__ = ["LAYER_NAMES", "POOLING", "Normalize", "VGGFeatures", "check_layers", "min_input_side"]

# Caffe's VGG was trained on BGR images in 0-255 with these per-channel means subtracted.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """Map RGB in [0, 1] to the input space the weights were trained on."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind == "caffe":
            mean_rgb = torch.tensor(CAFFE_MEAN_BGR[::-1])
            scale = torch.full((3,), 255.0)
            self.bgr = True
        elif kind == "torchvision":
            mean_rgb = torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)
            scale = 1.0 / torch.tensor(IMAGENET_STD)
            self.bgr = False
        else:
            raise ImpastoError(f"unknown normalization {kind!r}")
        self.kind = kind
        # y = x * scale - mean, per channel, then reorder channels if the network wants BGR.
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("mean", mean_rgb.view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * self.scale - self.mean
        return y.flip(1) if self.bgr else y


class VGGFeatures(nn.Module):
    """Frozen VGG-19, truncated after the deepest requested layer, returning a dict of named activations.

    Input: RGB in [0, 1], shape (B, 3, H, W). The weights' own normalization is applied inside.
    """

    def __init__(self, weights: VGGWeights, layers: Iterable[str], pooling: str = "max") -> None:
        super().__init__()
        if pooling not in POOLING:
            raise ImpastoError(f"unknown pooling {pooling!r}; choose from {', '.join(POOLING)}")
        self.layers = check_layers(layers)
        self.pooling = pooling
        self.normalization = weights.normalization
        self.normalize = Normalize(weights.normalization)
        last = max(LAYER_NAMES.index(n) for n in self.layers)
        modules: OrderedDict[str, nn.Module] = OrderedDict()
        for name in LAYER_NAMES[: last + 1]:
            if name.startswith("conv"):
                out_c, in_c, _, _ = CONV_SHAPES[name]
                conv = nn.Conv2d(in_c, out_c, 3, padding=1)
                with torch.no_grad():
                    conv.weight.copy_(weights.state[f"{name}.weight"])
                    conv.bias.copy_(weights.state[f"{name}.bias"])
                modules[name] = conv
            elif name.startswith("relu"):
                # Not in-place: a conv output may itself be a requested layer.
                modules[name] = nn.ReLU()
            else:
                modules[name] = nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
        self.net = nn.Sequential(modules)
        self.min_side = min_input_side(self.layers)
        self.deepest = LAYER_NAMES[last]
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGFeatures":
        # Always frozen in eval mode: there is nothing to train here.
        return super().train(False)

    def forward(self, x: torch.Tensor, layers: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """The activations at `layers` (default: the ones asked for at construction; a subset stops earlier)."""
        if min(x.shape[-2:]) < self.min_side:
            h, w = x.shape[-2:]
            raise ImpastoError(
                f"an image of {w}x{h} px is too small for VGG-19 up to {self.deepest}: "
                f"each side needs at least {self.min_side} px"
            )
        wanted = set(self.layers if layers is None else layers)
        out: dict[str, torch.Tensor] = {}
        x = self.normalize(x)
        for name, module in self.net.named_children():
            x = module(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out
